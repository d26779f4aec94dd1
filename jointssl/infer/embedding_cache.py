"""Per-sensor embeddings of tiles, kept in object storage so that a run re-encodes only what changed.

The classifier is encoders + fusion + head, and a tile's embedding for one sensor depends only on that
sensor's encoder (and input contract), the STAC item the chip is cut from, and the tile. Nightly runs
see new Sentinel-2 / Sentinel-1 scenes while NAIP changes every 2-3 years: with this cache a run reads
and encodes only the sensors whose co-located item changed, and the head runs on the fused result.

Layout (``infer.embedding_cache_url``, default ``<infer.out>/_embeddings``; folders starting with '_'
are invisible to ``geopandas.read_parquet(<out>)``)::

    <root>/<sensor>-<digest>/_version.json     what the digest stands for, when it was last used
    <root>/<sensor>-<digest>/<cell>.parquet    one row per tile: tile_id, lon, lat, item, embedding, chip_stats

``digest`` hashes the sensor's encoder weights, its input contract (bands, chip size, GSD, scaling) and the
tile grid (side, stride, cell size), so a new encoder, a re-normalised sensor or another grid never reuses
a stale embedding, while a new head on the same encoder (a re-fitted linear probe) does. A row is reused
only for the same tile (id and centre) *and* the same item key (collection, id, datetime, updated): a
re-processed item (new ``updated``) is re-encoded. ``chip_stats`` are the chip's per-band mean and std
(:func:`jointssl.classify.ood.chip_statistics`), what the OOD guard scores besides the embedding, so a
cached sensor gets the same OOD score as an encoded one.

Writes: the driver commits a cell's rows together with the cell's prediction partition, merging with what
the cell held (one row per tile: the newest written wins), as one atomic object (S3 PUT / local rename).
Two runs committing the same cell at once may lose one's rows: a lost row is only re-encoded later.

Bounded size: at most one row per tile per sensor per version, and at most ``infer.embedding_cache_versions``
versions per sensor (the current one and the most recently used others; older ones are deleted when a run
finishes). ``jointssl infer --drop-embedding-cache`` deletes the whole cache of a config.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from jointssl import storage
from jointssl.infer.writer import write_atomic

log = logging.getLogger("jointssl.infer")

VERSION_FILE = "_version.json"
CACHED_CELLS = 8
"""Cells a chip loader keeps read (tiles arrive in block order: a batch rarely spans more than two)."""


@dataclass(frozen=True)
class SensorCache:
    """What one sensor's cache version is: name, digest and row widths."""

    sensor: str
    digest: str
    dim: int
    """Embedding width F."""
    stats_dim: int
    """Chip statistics width 2C."""

    @property
    def folder(self) -> str:
        return f"{self.sensor}-{self.digest}"


@dataclass(frozen=True)
class CacheSpec:
    """The cache a run uses: where, and one version per sensor it reads."""

    url: str
    sensors: tuple[SensorCache, ...]
    model: str
    """The model URI the digests were computed from (recorded in _version.json)."""
    new_after: str | None = None
    """The incremental run's watermark (UTC ISO): items acquired after it are new to this area and are not
    looked up (a lookup would read the cell file for a certain miss)."""

    def of(self, sensor: str) -> SensorCache | None:
        return next((s for s in self.sensors if s.sensor == sensor), None)


def encoder_digests(model: Any, modalities: Sequence[str], grid: Sequence[float]) -> dict[str, str]:
    """m -> 16 hex digits over the sensor's encoder weights, its contract entry and the grid
    ``(side_m, stride_m, cell_deg)`` (see the module docstring)."""
    contract = {m["name"]: m for m in model.sensors.get("modalities", [])}
    out: dict[str, str] = {}
    for m in modalities:
        h = hashlib.sha256(json.dumps({"contract": contract.get(m), "grid": [float(g) for g in grid]},
                                      sort_keys=True, default=str).encode())
        for name, tensor in sorted(model.encoder.encoders[m].state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        out[m] = h.hexdigest()[:16]
    return out


def cache_spec(model: Any, modalities: Sequence[str], grid: Sequence[float], url: str, model_uri: str) -> CacheSpec:
    """The run's cache versions: digests and widths read off the loaded classifier."""
    digests = encoder_digests(model, modalities, grid)
    sensors = []
    for m in modalities:
        spec = model.encoder.inputs[m]
        dim = int(model.encoder.encoders[m].out_dim)
        sensors.append(SensorCache(m, digests[m], dim, 2 * int(spec.bands)))
    return CacheSpec(url, tuple(sensors), model_uri)


def spec_key(model_path: str, modalities: Sequence[str], grid: Sequence[float]) -> str:
    """What a run's digests depend on, without loading the model: the bytes of the downloaded model (a
    file, or every file of a saved-model folder, by relative path), the sensors and the grid."""
    h = hashlib.sha256(json.dumps([list(modalities), [float(g) for g in grid]]).encode())
    root = Path(model_path)
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    for file in files:
        h.update(str(file.relative_to(root) if root.is_dir() else file.name).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 24), b""):
                h.update(block)
    return h.hexdigest()[:24]


def remembered_spec(url: str, key: str, model_uri: str) -> CacheSpec | None:
    """The spec computed before for ``key`` (:func:`spec_key`), kept under ``<url>/_specs``: a nightly run
    need not load the classifier in its driver to know its digests."""
    fs, path = storage.filesystem(storage.join(url, "_specs", f"{key}.json"))
    if not fs.exists(path):
        return None
    try:
        sensors = tuple(SensorCache(**s) for s in json.loads(fs.cat_file(path))["sensors"])
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return CacheSpec(url, sensors, model_uri)


def remember_spec(spec: CacheSpec, key: str) -> None:
    url = storage.join(spec.url, "_specs", f"{key}.json")
    fs, path = storage.filesystem(url)
    body = {"model": spec.model, "sensors": [asdict(s) for s in spec.sensors]}
    write_atomic(path, fs, json.dumps(body).encode(), storage.is_remote(url))


def item_key(item: Mapping[str, Any]) -> str:
    """'<collection>/<id>@<datetime>/<updated>': a re-published or re-processed item is another key."""
    props = item.get("properties", {}) or {}
    return f"{item.get('collection', '')}/{item.get('id', '')}@{props.get('datetime', '')}/{props.get('updated', '')}"


def tile_key(tile_id: str, lon: float, lat: float) -> str:
    """A tile by id and centre (site ids of two site lists may name different places)."""
    return f"{tile_id}|{lon:.7f}|{lat:.7f}"


@dataclass(frozen=True)
class Entry:
    item: str
    embedding: np.ndarray
    """[F] float32"""
    chip_stats: np.ndarray
    """[2C] float64"""


class CacheReader:
    """Cached rows by cell, for a chip loader: the last :data:`CACHED_CELLS` cells read are kept."""

    def __init__(self, spec: CacheSpec):
        self.spec = spec
        self._cells: OrderedDict[tuple[str, str], dict[str, Entry]] = OrderedDict()

    def lookup(self, sensor: str, cell: str, tile: str, item: str) -> Entry | None:
        entries = self._cell(sensor, cell)
        entry = entries.get(tile)
        return entry if entry is not None and entry.item == item else None

    def _cell(self, sensor: str, cell: str) -> dict[str, Entry]:
        key = (sensor, cell)
        if key in self._cells:
            self._cells.move_to_end(key)
            return self._cells[key]
        version = self.spec.of(sensor)
        entries = read_cell(self.spec.url, version, cell) if version else {}
        self._cells[key] = entries
        if len(self._cells) > CACHED_CELLS:
            self._cells.popitem(last=False)
        return entries


def cell_url(root: str, version: SensorCache, cell: str) -> str:
    return storage.join(root, version.folder, f"{cell}.parquet")


def read_cell(root: str, version: SensorCache, cell: str) -> dict[str, Entry]:
    """tile key -> entry of one sensor version's cell ({} when nothing is cached; a damaged file is logged
    and ignored: its tiles are encoded again)."""
    import pyarrow.parquet as pq

    fs, path = storage.filesystem(cell_url(root, version, cell))
    if not fs.exists(path):
        return {}
    try:
        table = pq.read_table(io.BytesIO(fs.cat_file(path)))
        emb = np.asarray(table["embedding"].combine_chunks().flatten(), dtype=np.float32).reshape(-1, version.dim)
        stats = np.asarray(table["chip_stats"].combine_chunks().flatten(), dtype=np.float64
                           ).reshape(-1, version.stats_dim)
    except Exception as err:  # a cache never fails a run
        log.warning("embedding cache %s unreadable (%s): its tiles are encoded again", path, err)
        return {}
    keys = [tile_key(t, x, y) for t, x, y in zip(table["tile_id"].to_pylist(), table["lon"].to_pylist(),
                                                   table["lat"].to_pylist(), strict=True)]
    return {k: Entry(i, emb[r], stats[r]) for r, (k, i) in enumerate(zip(keys, table["item"].to_pylist(), strict=True))}


def commit_cell(spec: CacheSpec, cell: str, rows: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Merge the rows a run encoded (``m_encoded``) into each sensor's cell file; sensor -> rows written."""
    written: dict[str, int] = {}
    for version in spec.sensors:
        m = version.sensor
        fresh = np.flatnonzero(np.asarray(rows.get(f"{m}_encoded", []), dtype=bool))
        if not len(fresh):
            continue
        old = read_cell(spec.url, version, cell)
        new = {tile_key(str(rows["tile_id"][r]), float(rows["lon"][r]), float(rows["lat"][r])):
               Entry(str(rows[f"{m}_item_key"][r]), np.asarray(rows[f"{m}_embedding"][r], np.float32),
                     np.asarray(rows[f"{m}_chip_stats"][r], np.float64)) for r in fresh}
        merged = {**old, **new}
        _write_cell(spec.url, version, cell, merged)
        written[m] = len(fresh)
    return written


def _write_cell(root: str, version: SensorCache, cell: str, entries: Mapping[str, Entry]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    keys = sorted(entries)
    parts = [k.split("|") for k in keys]
    emb = np.stack([entries[k].embedding for k in keys]).astype(np.float32)  # [N F]
    stats = np.stack([entries[k].chip_stats for k in keys]).astype(np.float64)  # [N 2C]
    table = pa.table({
        "tile_id": pa.array([p[0] for p in parts], pa.string()),
        "lon": pa.array([float(p[1]) for p in parts], pa.float64()),
        "lat": pa.array([float(p[2]) for p in parts], pa.float64()),
        "item": pa.array([entries[k].item for k in keys], pa.string()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), version.dim),
        "chip_stats": pa.FixedSizeListArray.from_arrays(pa.array(stats.reshape(-1)), version.stats_dim),
    })
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    url = cell_url(root, version, cell)
    fs, path = storage.filesystem(url)
    write_atomic(path, fs, out.getvalue(), storage.is_remote(url))


def touch_versions(spec: CacheSpec) -> None:
    """Record (or refresh) each sensor version's _version.json: what it is and when it was last used."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for version in spec.sensors:
        url = storage.join(spec.url, version.folder, VERSION_FILE)
        fs, path = storage.filesystem(url)
        body = {**asdict(version), "model": spec.model, "last_used": now}
        write_atomic(path, fs, json.dumps(body, indent=2).encode(), storage.is_remote(url))


def apply_retention(spec: CacheSpec, keep: int) -> list[str]:
    """Delete, per sensor, all but the current version and the ``keep - 1`` most recently used others;
    returns the folders deleted."""
    fs, root = storage.filesystem(spec.url)
    if not fs.exists(root):
        return []
    deleted: list[str] = []
    for version in spec.sensors:
        others = []
        for folder in fs.ls(root, detail=False):
            name = str(folder).rstrip("/").rsplit("/", 1)[-1]
            if name.startswith(f"{version.sensor}-") and name != version.folder and fs.isdir(folder):
                others.append((_last_used(fs, f"{folder}/{VERSION_FILE}"), str(folder)))
        for _, folder in sorted(others, reverse=True)[max(0, keep - 1):]:
            fs.rm(folder, recursive=True)
            deleted.append(folder)
    if deleted:
        log.info("embedding cache: deleted %d old encoder versions (%s)", len(deleted), ", ".join(deleted))
    return deleted


def _last_used(fs: Any, path: str) -> str:
    try:
        return str(json.loads(fs.cat_file(path)).get("last_used", ""))
    except (OSError, ValueError):
        return ""


def embedding_cache_url(config: Any) -> str:
    """infer.embedding_cache_url, else <infer.out or its default>/_embeddings (a JobConfig)."""
    infer = config.infer
    out = infer.out or config.storage.url("inference", config.run.name)
    return str(infer.embedding_cache_url or storage.join(out, "_embeddings"))


def drop_cache(url: str) -> bool:
    """Delete the whole cache under ``url``; False when there was none."""
    fs, path = storage.filesystem(url)
    if not fs.exists(path):
        return False
    fs.rm(path, recursive=True)
    return True
