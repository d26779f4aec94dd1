"""Partitions of a run, each written exactly once and atomically: the run's resume state is its output.

A run folder holds ``part-<cell>.parquet`` (GeoParquet, one per partition cell with tiles) and
``_empty/<cell>`` (a small JSON marker per cell that has none). A partition is written only when every
tile of its cell has arrived (the planner says how many there are), as one object: on S3 a PUT is
atomic, locally the bytes go to a hidden temp file that is then renamed. So a reader never sees half a
partition, a crash loses at most the partitions in flight, and a re-run plans only the cells with
neither file nor marker. Names derive from the cell, so a partition written twice replaces itself:
never a duplicate. Per-partition statistics travel in the file's Parquet metadata (``jointssl``),
which the summary reads without reading the rows.

Columns beside the predictions: ``detected`` (the classes above the run's per-class thresholds, on tiles
not out of distribution unless ``infer.ood_detections``), ``ood_<m>`` per sensor and ``ood_score`` (the
largest; units of the classifier's threshold) and ``out_of_distribution`` (any sensor above 1).

Readers: ``geopandas.read_parquet(<run folder>)`` (files starting with '_' or '.' are ignored).
"""

from __future__ import annotations

import io
import json
import logging
import os
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd

from jointssl import storage

T = TypeVar("T")

if TYPE_CHECKING:
    from jointssl.infer.embedding_cache import CacheSpec

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
    """Buffers predictions per cell and commits a cell's partition as soon as it is complete.

    Rows are kept as numpy columns (a batch's rows of one cell), and a partition goes from them to an
    Arrow table and one Parquet write: with small partitions (scattered sites, fine cells) a pandas /
    geopandas round trip per partition cost more driver CPU than the rest of the driver's loop."""

    def __init__(self, run_url: str, constants: RunConstants, classes: Sequence[str], modalities: Sequence[str],
                 side_m: float, threshold: float | Sequence[float | None], ood_detections: bool = False):
        self.run_url = run_url
        self.constants = constants
        self.classes = list(classes)
        self.modalities = list(modalities)
        self.side_m = side_m
        per_class = [threshold] * len(self.classes) if isinstance(threshold, (int, float)) else list(threshold)
        self.thresholds = np.array([np.nan if t is None else t for t in per_class], dtype=np.float64)  # [K]
        """Per class; NaN: the class is never detected (an operating point validation did not support)."""
        self.ood_detections = ood_detections
        self.fs, self.path = storage.filesystem(run_url)
        self.embeddings: CacheSpec | None = None
        """The run's embedding cache: a committed cell's newly encoded embeddings are cached with it."""
        self.sensor_rows: dict[str, Counter[str]] = {"encoded": Counter(), "cached": Counter()}
        """Sensor -> rows encoded by the predictors / taken from the cache, this attempt."""
        self.pending: dict[str, list[dict[str, np.ndarray]]] = {}
        self.have: dict[str, int] = {}
        self.done: set[str] = set()

    def committed(self) -> set[str]:
        """Cells already written (partition or empty marker), by this or an earlier attempt."""
        parts = self.fs.glob(f"{self.path}/{PART_PREFIX}*.parquet")
        cells = {os.path.basename(p)[len(PART_PREFIX):-len(".parquet")] for p in parts}
        return cells | {os.path.basename(p) for p in empty_markers(self.fs, self.path)}

    @property
    def open_cells(self) -> int:
        return len(self.pending)

    def add(self, batch: Mapping[str, Any]) -> tuple[int, list[str]]:
        """Take a batch of predictions (a DataFrame or a dict of columns): (tiles taken, cells committed
        by this call)."""
        columns = {str(k): np.asarray(batch[k]) for k in batch}
        if self.embeddings is not None:
            for how in ("encoded", "cached"):
                self.sensor_rows[how].update({m: int(columns[f"{m}_{how}"].sum()) for m in self.modalities
                                              if f"{m}_{how}" in columns})
        committed: list[str] = []
        tiles = 0
        cells, first, inverse = np.unique(columns["cell"].astype(str), return_index=True, return_inverse=True)
        for k in np.argsort(first):  # cells in order of arrival
            cell = str(cells[k])
            rows = np.flatnonzero(inverse == k)
            if cell in self.done:
                raise RuntimeError(f"rows for cell {cell} arrived after its partition was written (a duplicate)")
            total = int(columns["cell_tiles"][rows[0]])
            if total == 0:
                self._commit_empty(cell, columns["cell_newest"][rows[0]])
                committed.append(cell)
                continue
            self.pending.setdefault(cell, []).append({c: v[rows] for c, v in columns.items()})
            self.have[cell] = self.have.get(cell, 0) + len(rows)
            tiles += len(rows)
            if self.have[cell] > total:
                raise RuntimeError(f"cell {cell} got {self.have[cell]} rows for {total} tiles (a duplicate)")
            if self.have[cell] == total:
                parts = self.pending.pop(cell)
                del self.have[cell]
                self._commit(cell, {c: np.concatenate([p[c] for p in parts]) for c in parts[0]})
                committed.append(cell)
        return tiles, committed

    def _commit(self, cell: str, rows: dict[str, np.ndarray]) -> None:
        ids = rows["tile_id"].astype(str)
        order = np.argsort(ids, kind="stable")
        ids = ids[order]
        if len(ids) > 1 and (twice := ids[1:][ids[1:] == ids[:-1]]).size:
            raise RuntimeError(f"cell {cell} holds tile {twice[0]} twice")
        table, stats = self.table({c: v[order] for c, v in rows.items()})
        newest = [str(v) for v in rows["cell_newest"] if isinstance(v, str) and v]
        stats["newest"] = max(newest) if newest else None
        write_atomic(f"{self.path}/{PART_PREFIX}{cell}.parquet", self.fs, parquet_bytes(table, stats),
                     storage.is_remote(self.run_url))
        if self.embeddings is not None:
            from jointssl.infer.embedding_cache import commit_cell

            commit_cell(self.embeddings, cell, {c: v[order] for c, v in rows.items()})
        self.done.add(cell)

    def _commit_empty(self, cell: str, newest: Any) -> None:
        body = json.dumps({"cell": cell, "tiles": 0, "newest": newest if isinstance(newest, str) and newest else None})
        write_atomic(f"{self.path}/{EMPTY_DIR}/{cell}", self.fs, body.encode(), storage.is_remote(self.run_url))
        self.done.add(cell)

    def table(self, rows: dict[str, np.ndarray]) -> tuple[Any, dict[str, Any]]:
        """A cell's predictions -> (its GeoParquet table, its statistics). Geometry: the tile square in
        EPSG:4326, WKB, with the GeoParquet 'geo' metadata geopandas reads."""
        import pyarrow as pa
        import shapely

        from jointssl.infer.tiles import tile_polygons

        n = len(rows["tile_id"])
        status = rows["status"].astype(str)
        ok = status == "ok"
        probs = np.stack([np.asarray(rows[f"prob_{c}"], dtype=np.float32) for c in self.classes], axis=1
                         ) if self.classes else np.zeros((n, 0), np.float32)  # [N K]
        ood = {m: np.asarray(rows.get(f"ood_{m}", np.full(n, np.nan)), dtype=np.float32) for m in self.modalities}
        flagged = {m: np.nan_to_num(v, nan=0.0) > 1.0 for m, v in ood.items()}  # m -> [N]
        out_of_distribution = ok & np.any(np.stack(list(flagged.values())), axis=0) if flagged else np.zeros(n, bool)
        hits = probs >= self.thresholds  # [N K]; NaN (not classified, or no threshold) is never a hit
        if not self.ood_detections:
            hits &= ~out_of_distribution[:, None]
        detected = [[c for c, hit in zip(self.classes, row) if hit] for row in hits]
        used = [[m for m in str(v).split("+") if m] for v in rows["modalities"]]
        columns: dict[str, Any] = {
            "tile_id": pa.array(rows["tile_id"].astype(str)),
            "cell": pa.array(rows["cell"].astype(str)),
            "lon": pa.array(rows["lon"].astype(np.float64)),
            "lat": pa.array(rows["lat"].astype(np.float64)),
            "status": pa.array(status),
            "top_class": pa.array([str(v) if good and v is not None else None
                                   for v, good in zip(rows["top_class"], ok)], pa.string()),
            "top_score": pa.array(rows["top_score"].astype(np.float32)),
        }
        for k, c in enumerate(self.classes):
            columns[f"prob_{c}"] = pa.array(probs[:, k])
        columns["detected"] = pa.array(detected, pa.list_(pa.string()))
        columns["modalities"] = pa.array(used, pa.list_(pa.string()))
        for m in self.modalities:
            columns[f"ood_{m}"] = pa.array(ood[m])
        scored = np.stack(list(ood.values()), axis=1) if ood else np.full((n, 1), np.nan)  # [N M]
        top_ood = np.where(np.isnan(scored).all(axis=1), np.nan, np.nan_to_num(scored, nan=-np.inf).max(axis=1))
        columns["ood_score"] = pa.array(top_ood.astype(np.float32))
        columns["out_of_distribution"] = pa.array(out_of_distribution)
        missing: dict[str, dict[str, int]] = {}
        for m in self.modalities:
            reason = rows[f"{m}_reason"].astype(str)
            columns[f"{m}_item_id"] = pa.array([str(v) if v else None for v in rows[f"{m}_item"]], pa.string())
            columns[f"{m}_datetime"] = pa.array(_utc_times(rows[f"{m}_datetime"]), pa.timestamp("ns", tz="UTC"))
            columns[f"{m}_reason"] = pa.array(reason)
            missing[m] = dict(Counter(reason[ok & (reason != "ok")]))
        for name in ("model_name", "model_version", "run_id", "run"):
            columns[name] = pa.array([getattr(self.constants, name)] * n, pa.string())
        polygons = tile_polygons(rows["epsg"].astype(np.int64), rows["x"].astype(float), rows["y"].astype(float),
                                 self.side_m)
        columns["geometry"] = pa.array(shapely.to_wkb(polygons), pa.binary())
        geo = geo_metadata(shapely.total_bounds(polygons) if n else None)
        table = pa.table(columns).replace_schema_metadata({b"geo": json.dumps(geo).encode()})
        detections = Counter(c for row, good in zip(detected, ok) for c in row if good)
        stats = {
            "cell": str(rows["cell"][0]),
            "tiles": int(n),
            "classified": int(ok.sum()),
            "skipped": dict(Counter(status[~ok])),
            "detections": {c: int(detections.get(c, 0)) for c in self.classes},
            "modalities": dict(Counter("+".join(v) for v, good in zip(used, ok) if good)),
            "missing": missing,
            "ood_tiles": int(out_of_distribution.sum()),
            "ood": {m: {"scored": int((ok & ~np.isnan(ood[m])).sum()), "flagged": int((ok & flagged[m]).sum())}
                    for m in self.modalities},
        }
        return table, stats


def _utc_times(values: np.ndarray) -> np.ndarray:
    """ISO datetimes ('' or None: missing) -> datetime64[ns] in UTC (NaT where missing)."""
    text = pd.Series([v if isinstance(v, str) and v else None for v in values], dtype=object)
    times: np.ndarray = pd.to_datetime(text, utc=True, format="ISO8601").dt.tz_convert(None).to_numpy(
        dtype="datetime64[ns]")
    return times


def geo_metadata(bbox: Sequence[float] | None) -> dict[str, Any]:
    """GeoParquet 1.1 file metadata of a WKB polygon column in EPSG:4326 (what geopandas writes)."""
    column: dict[str, Any] = {"encoding": "WKB", "crs": _wgs84_projjson(), "geometry_types": ["Polygon"]}
    if bbox is not None:
        column["bbox"] = [float(v) for v in bbox]
    return {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": column},
            "creator": {"library": "jointssl"}}


@lru_cache(maxsize=1)
def _wgs84_projjson() -> dict[str, Any]:
    from pyproj import CRS

    return CRS.from_epsg(4326).to_json_dict()


def parquet_bytes(table: Any, stats: dict[str, Any]) -> bytes:
    """One Parquet file (zstd) of ``table`` with ``stats`` added under the 'jointssl' metadata key."""
    import pyarrow.parquet as pq

    table = table.replace_schema_metadata({**(table.schema.metadata or {}), STATS_KEY: json.dumps(stats).encode()})
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def write_atomic(path: str, fs: Any, data: bytes, remote: bool, durable: bool = True) -> None:
    """The whole object or nothing: an S3 PUT; locally a hidden temp file renamed into place (fsynced
    first unless ``durable`` is False: what a crash may tear is then only worth less, e.g. a cache)."""
    if remote:  # a store that restarts is waited for (storage.patiently), not a failed run
        storage.patiently(f"s3://{path}", f"writing s3://{path}", lambda: fs.pipe_file(path, data))
        return
    folder, name = os.path.split(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-{name}-{uuid.uuid4().hex[:8]}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(tmp, path)


def empty_markers(fs: Any, path: str) -> list[str]:
    """The committed empty-cell markers of a run folder, sorted. fsspec's ``*`` also matches hidden
    names, so the temp file of a write that a kill interrupted (``.tmp-<cell>-<hex>``, possibly empty)
    is skipped here: it is not a commit, and its cell is planned again on resume."""
    return sorted(p for p in fs.glob(f"{path}/{EMPTY_DIR}/*") if not os.path.basename(p).startswith("."))


def read_stats(run_url: str) -> list[dict[str, Any]]:
    """The statistics of every committed cell of a run (partitions' metadata and empty markers)."""
    import pyarrow.parquet as pq

    fs, path = storage.filesystem(run_url)
    stats: list[dict[str, Any]] = []
    for part in sorted(fs.glob(f"{path}/{PART_PREFIX}*.parquet")):
        with fs.open(part, "rb") as handle:
            meta = pq.read_metadata(handle).metadata or {}
        stats.append(json.loads(meta[STATS_KEY]))
    for marker in empty_markers(fs, path):
        stats.append(json.loads(fs.cat_file(marker)))
    return stats


def partition_urls(run_url: str) -> list[str]:
    fs, path = storage.filesystem(run_url)
    prefix = "s3://" if storage.is_remote(run_url) else ""
    return [prefix + p for p in sorted(fs.glob(f"{path}/{PART_PREFIX}*.parquet"))]


PARTITION_READ_THREADS = 8
"""Partitions a run's finishing passes (candidates, map) read at once: on object storage each read mostly
waits on requests, and locally Parquet's decoding leaves the GIL."""


def map_partitions(fn: Callable[[str], T], urls: Sequence[str]) -> list[T]:
    """``fn`` of every partition URL, in order, :data:`PARTITION_READ_THREADS` at a time."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(PARTITION_READ_THREADS, max(1, len(urls))), thread_name_prefix="partitions") as pool:
        return list(pool.map(fn, urls))
