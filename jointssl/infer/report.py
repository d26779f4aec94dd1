"""What a finished run reports: the summary (detections per class at the run's operating point, tiles out
of distribution per sensor, skipped tiles per reason, modalities used), a map of detections by class
with the out-of-distribution tiles apart (PNG), both written next to the partitions and logged to MLflow.

The summary adds up the per-partition statistics stored in each partition's metadata (no rows read);
the map reads five columns of each partition in turn, so neither grows with the area in memory beyond
the detections themselves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from jointssl import storage


def summarise(stats: Sequence[dict[str, Any]], classes: Sequence[str]) -> dict[str, Any]:
    """Totals over a run's partition statistics (see :meth:`jointssl.infer.writer.PartitionWriter.table`)."""
    skipped: Counter[str] = Counter()
    detections: Counter[str] = Counter()
    modalities: Counter[str] = Counter()
    missing: dict[str, Counter[str]] = {}
    ood: dict[str, Counter[str]] = {}
    newest = [s["newest"] for s in stats if s.get("newest")]
    for s in stats:
        for m, counts in s.get("ood", {}).items():
            ood.setdefault(m, Counter()).update(counts)
        skipped.update(s.get("skipped", {}))
        detections.update(s.get("detections", {}))
        modalities.update(s.get("modalities", {}))
        for m, reasons in s.get("missing", {}).items():
            missing.setdefault(m, Counter()).update(reasons)
    classified = sum(s.get("classified", 0) for s in stats)
    ood_tiles = sum(s.get("ood_tiles", 0) for s in stats)
    return {
        "cells": len(stats),
        "cells_with_tiles": sum(1 for s in stats if s["tiles"]),
        "tiles": sum(s["tiles"] for s in stats),
        "classified": classified,
        "out_of_distribution": {
            "tiles": ood_tiles, "share": round(ood_tiles / classified, 4) if classified else 0.0,
            "sensors": {m: {"tiles": c["flagged"], "scored": c["scored"],
                            "share": round(c["flagged"] / c["scored"], 4) if c["scored"] else 0.0}
                        for m, c in sorted(ood.items()) if c["scored"]}},
        "detections": {c: int(detections.get(c, 0)) for c in classes},
        "skipped": dict(sorted(skipped.items())),
        "modalities_used": dict(sorted(modalities.items(), key=lambda kv: -kv[1])),
        "modality_missing": {m: dict(sorted(c.items())) for m, c in sorted(missing.items()) if c},
        "newest_acquisition": max(newest) if newest else None,
    }


def render_map(partitions: Sequence[str], area_geometry: Any, classes: Sequence[str], path: str, title: str) -> str:
    """PNG of the run: classified tiles without a detection in grey, detections coloured by class (a tile
    with several classes appears in each), out-of-distribution tiles as red crosses (the legend counts
    each). One artist per class and one for the area's outline, whatever the number of tiles and polygons
    (a plot call per polygon took seconds for a few thousand)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    points = detection_points(partitions, classes)
    fig, ax = plt.subplots(figsize=(10, 6), dpi=110)
    rings = outline_rings(area_geometry)
    if rings:
        ax.add_collection(LineCollection(rings, colors="#444444", linewidths=0.8, zorder=0))
        ax.autoscale_view()
    colours = plt.get_cmap("tab10")
    if len(points.below):
        ax.scatter(points.below[:, 0], points.below[:, 1], s=4, c="#bbbbbb", linewidths=0, zorder=1)
    if len(points.ood):
        ax.scatter(points.ood[:, 0], points.ood[:, 1], s=14, marker="x", c="#d62728", linewidths=0.8, zorder=1.5)
    for k, c in enumerate(classes):
        if len(points.hits[c]):
            ax.scatter(points.hits[c][:, 0], points.hits[c][:, 1], s=18, color=colours(k), edgecolors="black",
                       linewidths=0.3, zorder=2)
    handles = [Line2D([], [], marker="o", ls="", color=colours(k), label=f"{c} ({len(points.hits[c])})")
               for k, c in enumerate(classes)]
    handles.append(Line2D([], [], marker="o", ls="", color="#bbbbbb", label="classified, no detection"))
    handles.append(Line2D([], [], marker="x", ls="", color="#d62728", label=f"out of distribution ({len(points.ood)})"))
    ax.legend(handles=handles, loc="lower left", fontsize=7, framealpha=0.9)
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal", adjustable="datalim")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


@dataclass(frozen=True)
class MapPoints:
    below: np.ndarray
    """[n 2] lon/lat of classified tiles without a detection (out-of-distribution ones excluded)."""
    hits: dict[str, np.ndarray]
    """Class -> [n_c 2] lon/lat of the tiles where the class is detected."""
    ood: np.ndarray
    """[n 2] lon/lat of the classified tiles marked out of distribution."""


def detection_points(partitions: Sequence[str], classes: Sequence[str]) -> MapPoints:
    """The map's points from the partitions' ``detected`` and ``out_of_distribution`` columns, read a few
    columns of a few partitions at a time (:func:`jointssl.infer.writer.map_partitions`)."""
    from jointssl.infer.writer import map_partitions

    parts = map_partitions(lambda url: _partition_points(url, classes), partitions)
    empty = np.zeros((0, 2))

    def joined(arrays: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(arrays) if arrays else empty

    return MapPoints(joined([p.below for p in parts]), {c: joined([p.hits[c] for p in parts]) for c in classes},
                     joined([p.ood for p in parts]))


def _partition_points(url: str, classes: Sequence[str]) -> MapPoints:
    import pyarrow.parquet as pq

    fs, p = storage.filesystem(url)
    with fs.open(p, "rb") as handle:
        table = pq.read_table(handle, columns=["lon", "lat", "status", "detected", "out_of_distribution"])
    lonlat = np.column_stack([table["lon"].to_numpy(), table["lat"].to_numpy()])  # [n 2]
    ok = table["status"].to_numpy(zero_copy_only=False) == "ok"  # [n]
    far = table["out_of_distribution"].to_numpy(zero_copy_only=False).astype(bool)  # [n]
    detected = table["detected"].to_pylist()  # [n] lists of class names
    found = np.array([bool(d) for d in detected], dtype=bool)
    hits = {c: lonlat[np.array([c in (d or ()) for d in detected], dtype=bool)] for c in classes}
    return MapPoints(lonlat[ok & ~found & ~far], hits, lonlat[ok & far])


def map_title(key: str, summary: dict[str, Any], decision: str, model_uri: str) -> str:
    """The map's title: tiles, the decision, and the out-of-distribution share overall and per sensor."""
    ood = summary.get("out_of_distribution") or {"tiles": 0, "share": 0.0, "sensors": {}}
    sensors = ", ".join(f"{m} {v['share']:.0%}" for m, v in ood["sensors"].items())
    return (f"{key}: {summary['tiles']:,} tiles, detections at {decision}; {model_uri}\n"
            f"out of distribution: {ood['tiles']:,} tiles ({ood['share']:.0%})" + (f"; by sensor {sensors}" if sensors
                                                                                   else ""))


def ood_warning(summary: dict[str, Any], majority: float = 0.5) -> str | None:
    """A warning when most classified tiles are out of distribution: which sensors, the likely causes and
    what to do (None otherwise)."""
    ood = summary.get("out_of_distribution") or {}
    if not summary.get("classified") or ood.get("share", 0.0) <= majority:
        return None
    sensors = [f"{m} ({v['share']:.0%} of its tiles)" for m, v in ood.get("sensors", {}).items() if v["share"] > 0]
    return (f"{ood['share']:.0%} of the classified tiles ({ood['tiles']} of {summary['classified']}) are out of "
            f"distribution: their imagery is unlike the classifier's training inputs, by sensor: "
            f"{', '.join(sensors) or 'none'}. Likely causes: a different catalog than training (e.g. real imagery "
            "for a model trained on the synthetic world), another processing baseline (Sentinel-2 offsets), or "
            "other units (SAR in linear power instead of dB, reflectance scaled differently). Their probabilities "
            "are not detections. What to do: check index.preset against the catalog the model was trained on "
            "(scale/offset/transform per band), run on the sensors that are in distribution "
            "(infer.modalities), or evaluate and register a classifier trained on this imagery.")


def outline_rings(geometry: Any) -> list[np.ndarray]:
    """The rings (exteriors and holes) of a polygon or multipolygon as ``[k 2]`` coordinate arrays."""
    if geometry is None:
        return []
    rings: list[np.ndarray] = []
    for part in getattr(geometry, "geoms", [geometry]):
        if part.geom_type == "Polygon":
            rings += [np.asarray(ring.coords)[:, :2] for ring in (part.exterior, *part.interiors)]
    return rings


def log_to_mlflow(tracking_uri: str, run_id: str, summary: dict[str, Any], files: Sequence[str],
                  artifact_path: str) -> None:
    """Metrics (tiles, classified, tiles/s, detections and skips per class/reason) and the files."""
    import time

    import mlflow
    from mlflow.entities import Metric

    client = mlflow.MlflowClient(tracking_uri)
    now = int(time.time() * 1000)
    metrics = {"infer_tiles": summary["tiles"], "infer_classified": summary["classified"],
               "infer_tiles_per_s": summary.get("tiles_per_s") or 0.0}
    metrics.update({f"infer_detections_{c}": n for c, n in summary["detections"].items()})
    metrics.update({f"infer_skipped_{r}": n for r, n in summary["skipped"].items()})
    ood = summary.get("out_of_distribution") or {}
    metrics["infer_ood_tiles"] = ood.get("tiles", 0)
    metrics.update({f"infer_ood_share_{m}": v["share"] for m, v in ood.get("sensors", {}).items()})
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
    for path in files:
        client.log_artifact(run_id, path, artifact_path)
    client.set_terminated(run_id, status="FINISHED")
