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
the cell held (one row per tile: the newest written wins), as one atomic object (S3 PUT / local rename;
not fsynced: a file a crash tore is unreadable, logged, and its tiles are encoded again).
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


PARQUET_OPTIONS: dict[str, Any] = {"compression": "none", "use_dictionary": False, "write_statistics": False}
"""How cell files are written: embeddings are float noise to a compressor and to a dictionary (6 rows of 512
floats: 18,957 bytes with zstd and dictionaries, 14,923 with neither, for a fifth of the CPU to write), and
nobody filters on column statistics."""


def read_table(root: str, version: SensorCache, cell: str) -> Any:
    """One sensor version's cell as an Arrow table (None when nothing is cached; a damaged file is logged
    and ignored: its tiles are encoded again). Read as one file, without pyarrow's dataset machinery
    (``pq.read_table`` cost 10x the CPU of reading a few-row cell)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fs, path = storage.filesystem(cell_url(root, version, cell))
    try:
        data = fs.cat_file(path)
    except FileNotFoundError:
        return None
    try:
        return pq.ParquetFile(pa.BufferReader(data)).read(use_threads=False)
    except Exception as err:  # a cache never fails a run
        log.warning("embedding cache %s unreadable (%s): its tiles are encoded again", path, err)
        return None


def read_cell(root: str, version: SensorCache, cell: str) -> dict[str, Entry]:
    """tile key -> entry of one sensor version's cell ({} when nothing is cached or the file is damaged)."""
    table = read_table(root, version, cell)
    if table is None:
        return {}
    try:
        emb = np.asarray(table["embedding"].combine_chunks().flatten(), dtype=np.float32).reshape(-1, version.dim)
        stats = np.asarray(table["chip_stats"].combine_chunks().flatten(), dtype=np.float64
                           ).reshape(-1, version.stats_dim)
    except Exception as err:  # a cache never fails a run
        log.warning("embedding cache %s/%s unreadable (%s): its tiles are encoded again", version.folder, cell, err)
        return {}
    return {k: Entry(i, emb[r], stats[r]) for r, (k, i) in enumerate(zip(_keys(table), table["item"].to_pylist(),
                                                                         strict=True))}


def _keys(table: Any) -> list[str]:
    return [tile_key(t, x, y) for t, x, y in zip(table["tile_id"].to_pylist(), table["lon"].to_pylist(),
                                                 table["lat"].to_pylist(), strict=True)]


def commit_cell(spec: CacheSpec, cell: str, rows: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Merge the rows a run encoded (``m_encoded``) into each sensor's cell file (a cached tile's row is
    replaced, the cell's other rows kept), as Arrow tables: no per-row objects; sensor -> rows written."""
    import pyarrow as pa

    written: dict[str, int] = {}
    for version in spec.sensors:
        m = version.sensor
        fresh = np.flatnonzero(np.asarray(rows.get(f"{m}_encoded", []), dtype=bool))
        if not len(fresh):
            continue
        new = _table(version, np.asarray(rows["tile_id"])[fresh].astype(str), np.asarray(rows["lon"], float)[fresh],
                     np.asarray(rows["lat"], float)[fresh], np.asarray(rows[f"{m}_item_key"])[fresh].astype(str),
                     np.asarray(rows[f"{m}_embedding"])[fresh], np.asarray(rows[f"{m}_chip_stats"])[fresh])
        old = read_table(spec.url, version, cell)
        if old is not None:
            replaced = set(_keys(new))
            try:
                kept = old.filter(pa.array([k not in replaced for k in _keys(old)], pa.bool_())).cast(new.schema)
                new = pa.concat_tables([kept, new])
            except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError) as err:  # another layout: start the cell anew
                log.warning("embedding cache %s/%s not merged (%s): rewritten", version.folder, cell, err)
        _write_table(spec.url, version, cell, new.sort_by([("tile_id", "ascending"), ("lon", "ascending"),
                                                           ("lat", "ascending")]))
        written[m] = len(fresh)
    return written


def _table(version: SensorCache, tile_id: np.ndarray, lon: np.ndarray, lat: np.ndarray, item: np.ndarray,
           emb: np.ndarray, stats: np.ndarray) -> Any:
    """A cell table from columns: ids [N], lon [N], lat [N], item keys [N], embeddings [N F], chip stats [N 2C]."""
    import pyarrow as pa

    emb = np.ascontiguousarray(emb, dtype=np.float32).reshape(-1)  # [N*F]
    stats = np.ascontiguousarray(stats, dtype=np.float64).reshape(-1)  # [N*2C]
    return pa.table({
        "tile_id": pa.array(tile_id.tolist(), pa.string()),
        "lon": pa.array(lon, pa.float64()),
        "lat": pa.array(lat, pa.float64()),
        "item": pa.array(item.tolist(), pa.string()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb), version.dim),
        "chip_stats": pa.FixedSizeListArray.from_arrays(pa.array(stats), version.stats_dim),
    })


def _write_table(root: str, version: SensorCache, cell: str, table: Any) -> None:
    """The cell's file, replaced as one object; not fsynced: a file a crash tore is unreadable, and its
    tiles are encoded again."""
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(table, out, **PARQUET_OPTIONS)
    url = cell_url(root, version, cell)
    fs, path = storage.filesystem(url)
    write_atomic(path, fs, out.getvalue(), storage.is_remote(url), durable=False)


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
