"""Partitions of a run, each written exactly once and atomically: the run's resume state is its output.

A run folder holds ``part-<cell>.parquet`` (GeoParquet, one per partition cell with tiles) and
``_empty/<cell>`` (a small JSON marker per cell that has none). A partition is written only when every
tile of its cell has arrived (the planner says how many there are), as one object: on S3 a PUT is
atomic, locally the bytes go to a hidden temp file that is then renamed. So a reader never sees half a
partition, a crash loses at most the partitions in flight, and a re-run plans only the cells with
neither file nor marker. Names derive from the cell, so a partition written twice replaces itself:
never a duplicate. Per-partition statistics travel in the file's Parquet metadata (``jointssl``),
which the summary reads without reading the rows.

Readers: ``geopandas.read_parquet(<run folder>)`` (files starting with '_' or '.' are ignored).
"""

from __future__ import annotations

import io
import json
import logging
import os
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from jointssl import storage

log = logging.getLogger(__name__)

STATS_KEY = b"jointssl"
PART_PREFIX = "part-"
EMPTY_DIR = "_empty"


@dataclass(frozen=True)
class RunConstants:
    """Columns every row of a run carries."""

    run: str
    """The run key (the run folder's name)."""
    run_id: str
    """The MLflow run id."""
    model_name: str
    model_version: str


class PartitionWriter:
    """Buffers predictions per cell and commits a cell's partition as soon as it is complete."""

    def __init__(self, run_url: str, constants: RunConstants, classes: Sequence[str], modalities: Sequence[str],
                 side_m: float, threshold: float):
        self.run_url = run_url
        self.constants = constants
        self.classes = list(classes)
        self.modalities = list(modalities)
        self.side_m = side_m
        self.threshold = threshold
        self.fs, self.path = storage.filesystem(run_url)
        self.pending: dict[str, list[pd.DataFrame]] = {}
        self.expected: dict[str, int] = {}
        self.done: set[str] = set()

    def committed(self) -> set[str]:
        """Cells already written (partition or empty marker), by this or an earlier attempt."""
        parts = self.fs.glob(f"{self.path}/{PART_PREFIX}*.parquet")
        empty = self.fs.glob(f"{self.path}/{EMPTY_DIR}/*")
        cells = {os.path.basename(p)[len(PART_PREFIX):-len(".parquet")] for p in parts}
        return cells | {os.path.basename(p) for p in empty}

    @property
    def open_cells(self) -> int:
        return len(self.pending)

    def add(self, frame: pd.DataFrame) -> tuple[int, list[str]]:
        """Take a batch of predictions: (tiles taken, cells committed by this call)."""
        committed: list[str] = []
        tiles = 0
        for cell, rows in frame.groupby("cell", sort=False):
            if cell in self.done:
                raise RuntimeError(f"rows for cell {cell} arrived after its partition was written (a duplicate)")
            total = int(rows["cell_tiles"].iloc[0])
            if total == 0:
                self._commit_empty(str(cell), rows["cell_newest"].iloc[0])
                committed.append(str(cell))
                continue
            self.expected[cell] = total
            self.pending.setdefault(cell, []).append(rows)
            tiles += len(rows)
            have = sum(len(p) for p in self.pending[cell])
            if have > total:
                raise RuntimeError(f"cell {cell} got {have} rows for {total} tiles (a duplicate)")
            if have == total:
                self._commit(str(cell), pd.concat(self.pending.pop(cell), ignore_index=True))
                committed.append(str(cell))
        return tiles, committed

    def _commit(self, cell: str, rows: pd.DataFrame) -> None:
        if rows["tile_id"].duplicated().any():
            raise RuntimeError(f"cell {cell} holds tile {rows.loc[rows['tile_id'].duplicated(), 'tile_id'].iloc[0]} twice")
        frame = self.table(rows.sort_values("tile_id", ignore_index=True))
        stats = partition_stats(frame, self.classes, self.modalities)
        newest = [str(v) for v in rows["cell_newest"] if isinstance(v, str) and v]
        stats["newest"] = max(newest) if newest else None
        write_atomic(f"{self.path}/{PART_PREFIX}{cell}.parquet", self.fs, geoparquet_bytes(frame, stats),
                     storage.is_remote(self.run_url))
        self.done.add(cell)

    def _commit_empty(self, cell: str, newest: Any) -> None:
        body = json.dumps({"cell": cell, "tiles": 0, "newest": newest if isinstance(newest, str) and newest else None})
        write_atomic(f"{self.path}/{EMPTY_DIR}/{cell}", self.fs, body.encode(), storage.is_remote(self.run_url))
        self.done.add(cell)

    def table(self, rows: pd.DataFrame):
        """Predictions -> the partition's GeoDataFrame (geometry: the tile square in EPSG:4326)."""
        import geopandas as gpd

        from jointssl.infer.tiles import tile_polygons

        probs = rows[[f"prob_{c}" for c in self.classes]].to_numpy(dtype=np.float32)  # [N K]
        out = pd.DataFrame({
            "tile_id": rows["tile_id"].astype(str),
            "cell": rows["cell"].astype(str),
            "lon": rows["lon"].astype(float),
            "lat": rows["lat"].astype(float),
            "status": rows["status"].astype(str),
            "top_class": rows["top_class"].where(rows["status"] == "ok", None),
            "top_score": rows["top_score"].astype(np.float32),
        })
        for k, c in enumerate(self.classes):
            out[f"prob_{c}"] = probs[:, k]
        out["detected"] = [[c for c, p in zip(self.classes, row) if p >= self.threshold] for row in probs]
        out["modalities"] = [[m for m in str(v).split("+") if m] for v in rows["modalities"]]
        for m in self.modalities:
            out[f"{m}_item_id"] = rows[f"{m}_item"].replace("", None)
            out[f"{m}_datetime"] = pd.to_datetime(rows[f"{m}_datetime"].replace("", None), utc=True, format="ISO8601")
            out[f"{m}_reason"] = rows[f"{m}_reason"].astype(str)
        out["model_name"] = self.constants.model_name
        out["model_version"] = self.constants.model_version
        out["run_id"] = self.constants.run_id
        out["run"] = self.constants.run
        geometry = tile_polygons(rows["epsg"].to_numpy(dtype=np.int64), rows["x"].to_numpy(dtype=float),
                                 rows["y"].to_numpy(dtype=float), self.side_m)
        return gpd.GeoDataFrame(out, geometry=list(geometry), crs="EPSG:4326")


def partition_stats(frame: pd.DataFrame, classes: Sequence[str], modalities: Sequence[str]) -> dict[str, Any]:
    """Counts the summary adds up: tiles, classified, skipped per reason, detections per class,
    modality combinations used."""
    ok = frame["status"] == "ok"
    detections = Counter(c for row in frame.loc[ok, "detected"] for c in row)
    return {
        "cell": str(frame["cell"].iloc[0]),
        "tiles": int(len(frame)),
        "classified": int(ok.sum()),
        "skipped": dict(Counter(frame.loc[~ok, "status"])),
        "detections": {c: int(detections.get(c, 0)) for c in classes},
        "modalities": dict(Counter("+".join(v) for v in frame.loc[ok, "modalities"])),
        "missing": {m: dict(Counter(frame.loc[ok & (frame[f"{m}_reason"] != "ok"), f"{m}_reason"]))
                    for m in modalities},
    }


def geoparquet_bytes(frame, stats: dict[str, Any]) -> bytes:
    """GeoParquet (geopandas' 'geo' metadata) with ``stats`` added under the 'jointssl' key."""
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    table = pq.read_table(io.BytesIO(buffer.getvalue()))
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), STATS_KEY: json.dumps(stats).encode()})
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def write_atomic(path: str, fs: Any, data: bytes, remote: bool) -> None:
    """The whole object or nothing: an S3 PUT; locally a hidden temp file renamed into place."""
    if remote:
        fs.pipe_file(path, data)
        return
    folder, name = os.path.split(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-{name}-{uuid.uuid4().hex[:8]}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_stats(run_url: str) -> list[dict[str, Any]]:
    """The statistics of every committed cell of a run (partitions' metadata and empty markers)."""
    import pyarrow.parquet as pq

    fs, path = storage.filesystem(run_url)
    stats: list[dict[str, Any]] = []
    for part in sorted(fs.glob(f"{path}/{PART_PREFIX}*.parquet")):
        with fs.open(part, "rb") as handle:
            meta = pq.read_metadata(handle).metadata or {}
        stats.append(json.loads(meta[STATS_KEY]))
    for marker in sorted(fs.glob(f"{path}/{EMPTY_DIR}/*")):
        stats.append(json.loads(fs.cat_file(marker)))
    return stats


def partition_urls(run_url: str) -> list[str]:
    fs, path = storage.filesystem(run_url)
    prefix = "s3://" if storage.is_remote(run_url) else ""
    return [prefix + p for p in sorted(fs.glob(f"{path}/{PART_PREFIX}*.parquet"))]
