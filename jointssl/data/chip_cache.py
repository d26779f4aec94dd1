"""The chip cache: chips read once from the COGs, kept as Parquet in object storage, read back by site.

Decoding COG windows costs CPU per site every epoch (docs/benchmarks.md); a cached chip is a memory copy.
Pre-training's first epoch that reads the COGs writes each batch of chips it reads as one Parquet part;
when every site of the table is in some part, rank 0 commits the cache (an index of row -> part and row
group, then ``manifest.json`` last): readers only trust a cache with a manifest, so a run killed while
writing leaves no half cache anyone reads. Later epochs and later runs read the chips of any site
directly (one row group per site), so the seeded global shuffle works on the cache too.

Layout under ``<base>/<key>/``: ``parts/part-<first row>-<count>.parquet`` (columns ``row``, ``site_id``
and, per modality ``m``, ``m`` as fixed-size binary float32 ``[C H W]``, ``m_present``, ``m_reason``),
``index.parquet``, ``manifest.json``. The key (:func:`cache_key`) hashes the site table's chips sources
(site, location, each modality's STAC item and status, row order) and the sensor contract (every field of
each :class:`Modality`: bands, chip size, scaling, normalisation) with :data:`CACHE_FORMAT`, so a changed
index, band set or normalisation gets a new folder and never reads stale chips. Validity masks
(``m_valid``) are not cached: training does not use them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from jointssl import storage
from jointssl.sensors.spec import Modality

CACHE_FORMAT = 1
"""Bump when the layout or the meaning of cached pixels changes: old caches are then never read."""
MANIFEST = "manifest.json"
INDEX = "index.parquet"
PARTS = "parts"
REMOTE_THREADS = 16
"""Concurrent part reads from object storage (latency bound); local parts are read in the calling thread."""


def cache_key(table: pd.DataFrame, modalities: Sequence[Modality]) -> str:
    """16 hex digits naming the chips of ``table`` (a :func:`jointssl.data.dataset.site_table`) under the
    sensor contract of ``modalities``."""
    columns = ["site_id", "lon", "lat", *[f"{m.name}_{c}" for m in modalities for c in ("item", "reason")]]
    rows = pd.util.hash_pandas_object(table[columns].astype(str), index=True).to_numpy()
    contract = json.dumps({"format": CACHE_FORMAT, "modalities": [dataclasses.asdict(m) for m in modalities]},
                          sort_keys=True, default=str)
    digest = hashlib.sha256(contract.encode())
    digest.update(rows.tobytes())
    return digest.hexdigest()[:16]


def cache_location(base: str, table: pd.DataFrame, modalities: Sequence[Modality]) -> str:
    """``<base>/<key>``: where the cache of ``table``'s chips lives (written or not)."""
    return storage.join(base, cache_key(table, modalities))


def is_committed(url: str) -> bool:
    fs, path = storage.filesystem(storage.join(url, MANIFEST))
    return bool(fs.exists(path))


def _put(url: str, data: bytes) -> None:
    """Write ``data`` at ``url`` whole or not at all (an object PUT; a rename for local files)."""
    fs, path = storage.filesystem(url)
    if storage.is_remote(url):
        fs.pipe_file(path, data)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    with open(temporary, "wb") as f:
        f.write(data)
    os.replace(temporary, path)


def _pixels_type(modality: Modality) -> pa.DataType:
    return pa.binary(4 * len(modality.bands) * modality.chip_size ** 2)  # float32 [C H W]


class ChipCacheWriter:
    """Writes chip batches (as :class:`jointssl.data.dataset.ChipBatchLoader` returns them) as cache parts."""

    def __init__(self, url: str, modalities: Sequence[Modality]):
        self.url = url
        self.modalities = list(modalities)

    def write(self, rows: np.ndarray, batch: Mapping[str, np.ndarray]) -> None:
        """``rows`` [N] table rows of the ``N`` sites of ``batch``, in the same order."""
        n = len(rows)
        columns: dict[str, pa.Array] = {"row": pa.array(np.asarray(rows, dtype=np.int64)),
                                        "site_id": pa.array([str(s) for s in batch["site_id"]], pa.string())}
        for m in self.modalities:
            pixels = np.ascontiguousarray(batch[m.name], dtype=np.float32)  # [N C H W]
            columns[m.name] = pa.FixedSizeBinaryArray.from_buffers(_pixels_type(m), n, [None, pa.py_buffer(pixels)])
            columns[f"{m.name}_present"] = pa.array(np.asarray(batch[f"{m.name}_present"], dtype=bool))
            columns[f"{m.name}_reason"] = pa.array([str(r) for r in batch[f"{m.name}_reason"]], pa.string())
        buffer = io.BytesIO()
        pq.write_table(pa.table(columns), buffer, row_group_size=1, compression="none")  # one site per row group
        _put(storage.join(self.url, PARTS, f"part-{int(rows[0]):09d}-{n:05d}.parquet"), buffer.getvalue())


def commit(url: str, sites: int) -> list[int]:
    """Index every part and write the manifest if the parts hold all ``sites`` rows; returns the missing rows
    (empty: committed). Parts of an attempt killed before its commit are reused when they hold rows."""
    fs, path = storage.filesystem(storage.join(url, PARTS))
    found: dict[int, tuple[str, int]] = {}
    for file in sorted(fs.glob(f"{path}/part-*.parquet")):
        with fs.open(file, "rb") as f:
            rows = pq.read_table(f, columns=["row"])["row"].to_numpy()
        name = file.rsplit("/", 1)[-1]
        found.update({int(row): (name, group) for group, row in enumerate(rows)})
    missing = [row for row in range(sites) if row not in found]
    if missing:
        return missing
    index = pa.table({"row": pa.array(range(sites), pa.int64()),
                      "part": pa.array([found[r][0] for r in range(sites)], pa.string()),
                      "group": pa.array([found[r][1] for r in range(sites)], pa.int32())})
    buffer = io.BytesIO()
    pq.write_table(index, buffer)
    _put(storage.join(url, INDEX), buffer.getvalue())
    _put(storage.join(url, MANIFEST), json.dumps({"format": CACHE_FORMAT, "sites": sites}).encode())
    return []


class ChipCacheReader:
    """Reads the chips of any table rows from a committed cache, as the model's numpy batch columns."""

    def __init__(self, url: str, modalities: Sequence[Modality], threads: int | None = None):
        if not is_committed(url):
            raise FileNotFoundError(f"no committed chip cache at {url} (no {MANIFEST})")
        self.url = url
        self.modalities = list(modalities)
        fs, path = storage.filesystem(storage.join(url, INDEX))
        with fs.open(path, "rb") as f:
            index = pq.read_table(f)
        self.part = index["part"].to_numpy(zero_copy_only=False)  # [sites] part file of each row
        self.group = index["group"].to_numpy()  # [sites] its row group in that part
        self.threads = threads or (REMOTE_THREADS if storage.is_remote(url) else 1)
        self._footers: dict[str, pq.FileMetaData] = {}

    def read(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """``rows`` [N] -> ``{site_id: [N], m: [N C H W] float32, m_present: [N], m_reason: [N]}``."""
        rows = np.asarray(rows, dtype=np.int64)
        parts = sorted(set(self.part[rows].tolist()))
        jobs = [(part, sorted(set(self.group[rows][self.part[rows] == part].tolist()))) for part in parts]
        if self.threads > 1 and len(jobs) > 1:
            with ThreadPoolExecutor(min(self.threads, len(jobs))) as pool:
                tables = list(pool.map(self._read_groups, jobs))
        else:
            tables = [self._read_groups(job) for job in jobs]
        table = pa.concat_tables(tables)
        where = {int(r): i for i, r in enumerate(table["row"].to_numpy())}
        order = pa.array([where[int(r)] for r in rows])
        table = table.take(order)
        out: dict[str, np.ndarray] = {"site_id": np.array(table["site_id"].to_pylist(), dtype=object)}
        for m in self.modalities:
            shape = (len(rows), len(m.bands), m.chip_size, m.chip_size)
            column = table[m.name].combine_chunks()
            out[m.name] = np.frombuffer(column.buffers()[1], dtype=np.float32,
                                        count=int(np.prod(shape)), offset=4 * column.offset * int(np.prod(shape[1:]))
                                        ).reshape(shape).copy()  # [N C H W]
            out[f"{m.name}_present"] = table[f"{m.name}_present"].to_numpy(zero_copy_only=False).astype(bool)
            out[f"{m.name}_reason"] = np.array(table[f"{m.name}_reason"].to_pylist(), dtype=object)
        return out

    def _read_groups(self, job: tuple[str, list[int]]) -> pa.Table:
        part, groups = job
        fs, path = storage.filesystem(storage.join(self.url, PARTS, part))
        with fs.open(path, "rb") as f:
            file = pq.ParquetFile(f, metadata=self._footers.get(part))
            self._footers.setdefault(part, file.metadata)
            return file.read_row_groups(groups)


def cache_summary(url: str) -> dict[str, Any]:
    """``{"url", "committed", "sites"}`` for logs and run summaries."""
    committed = is_committed(url)
    sites = None
    if committed:
        fs, path = storage.filesystem(storage.join(url, MANIFEST))
        sites = json.loads(fs.cat_file(path))["sites"]
    return {"url": url, "committed": committed, "sites": sites}
