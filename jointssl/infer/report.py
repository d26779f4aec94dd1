"""What a finished run reports: the summary (counts per class above threshold, skipped tiles per reason,
modalities used), a map of detections (PNG), both written next to the partitions and logged to MLflow.

The summary adds up the per-partition statistics stored in each partition's metadata (no rows read);
the map reads five columns of each partition in turn, so neither grows with the area in memory beyond
the detections themselves.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np

from jointssl import storage


def summarise(stats: Sequence[dict[str, Any]], classes: Sequence[str]) -> dict[str, Any]:
    """Totals over a run's partition statistics (see :meth:`jointssl.infer.writer.PartitionWriter.table`)."""
    skipped: Counter = Counter()
    detections: Counter = Counter()
    modalities: Counter = Counter()
    missing: dict[str, Counter] = {}
    newest = [s["newest"] for s in stats if s.get("newest")]
    for s in stats:
        skipped.update(s.get("skipped", {}))
        detections.update(s.get("detections", {}))
        modalities.update(s.get("modalities", {}))
        for m, reasons in s.get("missing", {}).items():
            missing.setdefault(m, Counter()).update(reasons)
    return {
        "cells": len(stats),
        "cells_with_tiles": sum(1 for s in stats if s["tiles"]),
        "tiles": sum(s["tiles"] for s in stats),
        "classified": sum(s.get("classified", 0) for s in stats),
        "detections": {c: int(detections.get(c, 0)) for c in classes},
        "skipped": dict(sorted(skipped.items())),
        "modalities_used": dict(sorted(modalities.items(), key=lambda kv: -kv[1])),
        "modality_missing": {m: dict(sorted(c.items())) for m, c in sorted(missing.items()) if c},
        "newest_acquisition": max(newest) if newest else None,
    }


def render_map(partitions: Sequence[str], area_geometry: Any, classes: Sequence[str], threshold: float,
               path: str, title: str) -> str:
    """PNG of the run: classified tiles below threshold in grey, tiles with a detection coloured by their
    top class (the legend counts them). One artist per class and one for the area's outline, whatever
    the number of tiles and polygons (a plot call per polygon took seconds for a few thousand)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    below, hits = detection_points(partitions, classes, threshold)
    fig, ax = plt.subplots(figsize=(10, 6), dpi=110)
    rings = outline_rings(area_geometry)
    if rings:
        ax.add_collection(LineCollection(rings, colors="#444444", linewidths=0.8, zorder=0))
        ax.autoscale_view()
    colours = plt.get_cmap("tab10")
    if len(below):
        ax.scatter(below[:, 0], below[:, 1], s=4, c="#bbbbbb", linewidths=0, zorder=1)
    for k, c in enumerate(classes):
        if len(hits[c]):
            ax.scatter(hits[c][:, 0], hits[c][:, 1], s=18, color=colours(k), edgecolors="black", linewidths=0.3,
                       zorder=2)
    handles = [plt.Line2D([], [], marker="o", ls="", color=colours(k), label=f"{c} ({len(hits[c])})")
               for k, c in enumerate(classes)]
    handles.append(plt.Line2D([], [], marker="o", ls="", color="#bbbbbb", label="classified, below threshold"))
    ax.legend(handles=handles, loc="lower left", fontsize=7, framealpha=0.9)
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal", adjustable="datalim")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def detection_points(partitions: Sequence[str], classes: Sequence[str], threshold: float
                     ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Lon/lat of the classified tiles below ``threshold`` ``[n 2]`` and of the detections by top class
    (class -> ``[n_c 2]``), read five columns of one partition at a time."""
    import pyarrow.parquet as pq

    below: list[np.ndarray] = []
    hits: dict[str, list[np.ndarray]] = {c: [] for c in classes}
    for url in partitions:
        fs, p = storage.filesystem(url)
        with fs.open(p, "rb") as handle:
            table = pq.read_table(handle, columns=["lon", "lat", "status", "top_class", "top_score"])
        lonlat = np.column_stack([table["lon"].to_numpy(), table["lat"].to_numpy()])  # [n 2]
        ok = table["status"].to_numpy(zero_copy_only=False) == "ok"  # [n]
        hit = ok & (np.nan_to_num(table["top_score"].to_numpy(zero_copy_only=False), nan=-np.inf) >= threshold)
        top = table["top_class"].to_numpy(zero_copy_only=False)  # [n] class names, None where unclassified
        below.append(lonlat[ok & ~hit])
        for c in classes:
            hits[c].append(lonlat[hit & (top == c)])
    empty = np.zeros((0, 2))
    return (np.concatenate(below) if below else empty,
            {c: np.concatenate(points) if points else empty for c, points in hits.items()})


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
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
    for path in files:
        client.log_artifact(run_id, path, artifact_path)
    client.set_terminated(run_id, status="FINISHED")
