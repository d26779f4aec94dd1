"""The ``infer`` section of a job config: what to classify, with which model, where results go."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class InferConfig:
    model: str = "models:/methane-classifier@champion"
    """The classifier: an MLflow model URI (registered by 'jointssl evaluate') or an MLflow model folder."""
    area: str | None = field(default=None, metadata={"url": True})
    """Area of interest: a GeoJSON file (Polygon/MultiPolygon features, EPSG:4326); null: use ``bbox``."""
    bbox: list[float] | None = None
    """[west, south, east, north] in degrees when no area file is given."""
    out: str | None = field(default=None, metadata={"url": True})
    """Where predictions go (GeoParquet partitions); null: <storage.root>/inference/<run.name>."""
