"""The detection product for review: one row per detection, ranked, as GeoParquet and GeoJSON.

``_candidates.parquet`` and ``_candidates.geojson`` in the run folder (the leading '_' keeps them out of
``geopandas.read_parquet(<run folder>)``). A detection is a (tile, class) pair in the partitions'
``detected`` column; columns: ``rank`` (1 = highest probability), ``class``, ``probability`` (calibrated),
``operating_point``, ``threshold``, ``ood_score`` (units of the classifier's OOD threshold),
``out_of_distribution``, ``tile_id``, ``lon``/``lat`` (tile centre), per sensor ``<m>_item_id`` and
``<m>_datetime``, the model and run, and the tile's polygon (EPSG:4326). Both open in QGIS and geopandas.
Only the detections are read from each partition, so memory grows with the detections, not the area.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from jointssl import storage
from jointssl.infer.decision import Decision
from jointssl.infer.writer import map_partitions

PARQUET = "_candidates.parquet"
GEOJSON = "_candidates.geojson"


def candidate_rows(partitions: Sequence[str], decision: Decision, modalities: Sequence[str]) -> pd.DataFrame:
    """The detections of a run's partitions, one row per (tile, class), ranked by calibrated probability.

    Partitions are read a few at a time in threads (:func:`jointssl.infer.writer.map_partitions`) and only
    their rows with a detection are kept, as Arrow tables turned into one frame at the end (a frame per
    partition cost ~10 ms each: seconds for a few hundred cells)."""
    import pyarrow as pa

    thresholds = dict(zip(decision.classes, decision.thresholds))
    kept = [t for t in map_partitions(_detected_rows, partitions) if t.num_rows]
    if not kept:
        return pd.DataFrame(columns=["rank", "class", "probability", "operating_point", "threshold", "ood_score",
                                     "out_of_distribution", "tile_id", "lon", "lat", "geometry"])
    hits = pa.concat_tables(kept, promote_options="permissive").to_pandas()
    hits = hits.assign(**{"class": hits["detected"]}).explode("class", ignore_index=True)
    keep = ["tile_id", "lon", "lat", "ood_score", "out_of_distribution", "model_name", "model_version", "run",
            "geometry", *[f"{m}_{k}" for m in modalities for k in ("item_id", "datetime")]]
    out = hits[[c for c in keep if c in hits.columns]].copy()
    out.insert(0, "class", hits["class"].astype(str))
    out.insert(1, "probability", [float(hits.at[i, f"prob_{c}"]) for i, c in enumerate(hits["class"])])
    out.insert(2, "operating_point", decision.point)
    out.insert(3, "threshold", [thresholds.get(c) for c in out["class"]])
    out = out.sort_values(["probability", "tile_id"], ascending=[False, True], ignore_index=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out


def _detected_rows(url: str) -> Any:
    """The rows of one partition with at least one detected class (an Arrow table)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    fs, path = storage.filesystem(url)
    with fs.open(path, "rb") as handle:
        table = pq.read_table(handle)
    return table.filter(pc.greater(pc.list_value_length(table["detected"]), 0))


def write_candidates(run_url: str, partitions: Sequence[str], decision: Decision, modalities: Sequence[str],
                     remote: bool) -> dict[str, Any]:
    """Write both files next to the partitions; returns their paths and the number of detections."""
    import geopandas as gpd
    import shapely

    from jointssl.infer.writer import write_atomic

    rows = candidate_rows(partitions, decision, modalities)
    geometry = shapely.from_wkb(rows["geometry"].to_numpy()) if len(rows) else []
    frame = gpd.GeoDataFrame(rows.drop(columns=["geometry"]), geometry=geometry, crs="EPSG:4326")
    fs, path = storage.filesystem(run_url)
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    write_atomic(f"{path}/{PARQUET}", fs, buffer.getvalue(), remote)
    text = frame.copy()
    for column in text.columns:
        if str(text[column].dtype).startswith("datetime64"):  # GeoJSON has no time type: ISO strings
            text[column] = text[column].map(lambda t: t.isoformat() if pd.notna(t) else None)
    write_atomic(f"{path}/{GEOJSON}", fs, text.to_json(na="null", drop_id=True).encode(), remote)
    return {"detections": len(frame), "parquet": f"{run_url}/{PARQUET}", "geojson": f"{run_url}/{GEOJSON}",
            "top": json.loads(frame.drop(columns="geometry").head(5).to_json(orient="records"))}
