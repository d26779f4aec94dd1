"""Chips of many neighbouring tiles: one window read per item and asset for a whole block of tiles.

Overlapping tiles (``infer.overlap``) read the same pixels several times, and every chip of a small
COG costs a file open per asset; the training loader (:class:`jointssl.data.dataset.ChipBatchLoader`)
reads chip by chip, which is right for scattered sites but wasteful for a grid. Here the tiles of a
batch that use the same item are read as one square window covering all of their chips (on the same
GSD grid, so each chip is an exact slice of it), then each chip is cut out and assembled by the data
plane's own :func:`jointssl.data.chips.assemble` (scaling, nodata and quality masks, normalisation).
Tiles whose union window would cost more pixels than their separate chips (scattered candidate sites
on a large scene) are read chip by chip. Every read of a batch runs in one thread pool (reads are
latency bound); every failure is a per-tile, per-modality reason, never a failed batch.

Output (numpy, one row per tile): the planned tile columns, and per modality ``m`` ([B C H W] float32),
``m_present`` (bool), ``m_reason``, ``m_item`` (item id) and ``m_datetime`` (ISO acquisition time).

With an embedding cache (:mod:`jointssl.infer.embedding_cache`), tiles whose item of a sensor is cached
are not read for that sensor: their chip stays zeros, ``m_present`` is True, and ``m_cached`` (bool),
``m_embedding`` ([B F] float32) and ``m_chip_stats`` ([B 2C] float64) carry what the predictor needs;
``m_item_key`` (the item's cache key, '' without item) lets the driver cache what gets encoded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from jointssl.data.chips import Chip, ChipPlan, ChipSkip, WindowRead, assemble, chip_grid, map_reads, plan_reads
from jointssl.data.window_read import ChipGrid, read_windows
from jointssl.infer.embedding_cache import CacheReader, CacheSpec, item_key, tile_key
from jointssl.sensors.spec import Modality
from jointssl.stac.items import UnusableItem

PASSTHROUGH = ["tile_id", "cell", "cell_tiles", "cell_newest", "lon", "lat", "epsg", "x", "y"]


@dataclass
class _Group:
    """Tiles (row numbers) of one batch that read one item of one modality, through one window."""

    modality: Modality
    item: dict[str, Any]
    rows: list[int]
    grids: list[ChipGrid]
    window: ChipGrid | None = None
    reads: list[WindowRead] | None = None
    failure: ChipSkip | None = None


class TileChipLoader:
    """``map_batches`` callable: planned tiles (pandas) -> tiles with chips (numpy)."""

    def __init__(self, modalities: Sequence[Modality], threads: int | None = None, cache: CacheSpec | None = None):
        self.modalities = list(modalities)
        self.threads = threads
        self.cache = CacheReader(cache) if cache is not None else None
        self._parsed: dict[str, dict[str, Any]] = {}

    def __call__(self, batch: pd.DataFrame) -> dict[str, np.ndarray]:
        n = len(batch)
        out: dict[str, np.ndarray] = {c: batch[c].to_numpy() for c in PASSTHROUGH}
        self._parsed = {}  # item JSON -> item, for this batch
        cached = self._cached(batch)
        groups = self._groups(batch, {m: set(c) for m, c in cached.items()})
        by_file: dict[tuple[str, tuple[int, ...], str], tuple[list[_Group], WindowRead]] = {}
        for group in (g for g in groups if g.failure is None):
            for read in group.reads or []:
                key = (read.href, tuple(read.indexes), read.resampling)
                by_file.setdefault(key, ([], read))[0].append(group)
        jobs = list(by_file.values())  # one job per file: every window of the batch from one open
        results = map_reads(_execute, jobs, self.threads)
        by_group: dict[int, dict[str, np.ndarray | Exception]] = {}
        for (file_groups, read), arrays in zip(jobs, results, strict=True):
            for group, array in zip(file_groups, arrays, strict=True):
                by_group.setdefault(id(group), {})[read.asset] = array
        for m in self.modalities:
            size = m.chip_size
            pixels = np.zeros((n, len(m.bands), size, size), dtype=np.float32)  # [B C H W]
            reasons = np.array([str(r) for r in batch[f"{m.name}_reason"]], dtype=object)
            items = np.full(n, "", dtype=object)
            times = np.full(n, "", dtype=object)
            for group in (g for g in groups if g.modality is m):
                chips = _cut(group, by_group.get(id(group), {}))
                item_id = str(group.item.get("id", ""))
                when = str(group.item.get("properties", {}).get("datetime") or "")
                for row, chip in zip(group.rows, chips, strict=True):
                    items[row], times[row] = item_id, when
                    if isinstance(chip, Chip):
                        pixels[row], reasons[row] = chip.pixels, "ok"
                    else:
                        reasons[row] = chip.reason
            for row, (item, _) in cached.get(m.name, {}).items():
                props = item.get("properties", {}) or {}
                items[row], times[row] = str(item.get("id", "")), str(props.get("datetime") or "")
                reasons[row] = "ok"
            out[m.name] = pixels
            out[f"{m.name}_present"] = reasons == "ok"
            out[f"{m.name}_reason"] = reasons
            out[f"{m.name}_item"] = items
            out[f"{m.name}_datetime"] = times
            if self.cache is not None:
                out.update(self._cache_columns(batch, m, cached.get(m.name, {})))
        self._parsed = {}
        return out

    def _item(self, text: str) -> dict[str, Any]:
        """The item of a planned tile's JSON, parsed once per batch (neighbouring tiles share items)."""
        item = self._parsed.get(text)
        if item is None:
            item = self._parsed[text] = json.loads(text)
        return item

    def _cached(self, batch: pd.DataFrame) -> dict[str, dict[int, tuple[dict[str, Any], Any]]]:
        """m -> row -> (item, cached entry) for the tiles whose item of ``m`` is in the cache."""
        if self.cache is None:
            return {}
        hits: dict[str, dict[int, tuple[dict[str, Any], Any]]] = {}
        ids, cells = batch["tile_id"].to_numpy(), batch["cell"].to_numpy()
        lon, lat = batch["lon"].to_numpy(), batch["lat"].to_numpy()
        for m in self.modalities:
            if self.cache.spec.of(m.name) is None:
                continue
            for row, text in enumerate(batch[f"{m.name}_item"]):
                if isinstance(text, str) and text:
                    item = self._item(text)
                    if newer_than(item, self.cache.spec.new_after):
                        continue  # new since the watermark: never cached
                    entry = self.cache.lookup(m.name, str(cells[row]), tile_key(str(ids[row]), float(lon[row]),
                                                                                 float(lat[row])), item_key(item))
                    if entry is not None:
                        hits.setdefault(m.name, {})[row] = (item, entry)
        return hits

    def _cache_columns(self, batch: pd.DataFrame, m: Modality, hits: dict[int, tuple[dict[str, Any], Any]]
                       ) -> dict[str, np.ndarray]:
        """``m_cached``, ``m_embedding`` [B F], ``m_chip_stats`` [B 2C] and ``m_item_key`` of a batch."""
        assert self.cache is not None
        version = self.cache.spec.of(m.name)
        n = len(batch)
        dim, stats_dim = (version.dim, version.stats_dim) if version else (0, 0)
        flags = np.zeros(n, dtype=bool)
        emb = np.zeros((n, dim), dtype=np.float32)  # [B F]
        stats = np.zeros((n, stats_dim), dtype=np.float64)  # [B 2C]
        for row, (_, entry) in hits.items():
            flags[row], emb[row], stats[row] = True, entry.embedding, entry.chip_stats
        keys = np.array([item_key(self._item(t)) if isinstance(t, str) and t else "" for t in batch[f"{m.name}_item"]],
                        dtype=object)
        return {f"{m.name}_cached": flags, f"{m.name}_embedding": emb, f"{m.name}_chip_stats": stats,
                f"{m.name}_item_key": keys}

    def _groups(self, batch: pd.DataFrame, skip: dict[str, set[int]] | None = None) -> list[_Group]:
        groups: list[_Group] = []
        lon, lat = batch["lon"].to_numpy(), batch["lat"].to_numpy()
        for m in self.modalities:
            by_item: dict[str, list[int]] = {}
            cached = (skip or {}).get(m.name, set())
            for row, text in enumerate(batch[f"{m.name}_item"]):
                if isinstance(text, str) and text and row not in cached:
                    by_item.setdefault(text, []).append(row)
            for text, rows in by_item.items():
                item = self._item(text)
                try:
                    grids = [chip_grid(item, m, float(lon[r]), float(lat[r])) for r in rows]
                    reads = plan_reads(item, m)
                except UnusableItem as err:
                    groups.append(_Group(m, item, rows, [], failure=ChipSkip(err.reason, str(err))))
                    continue
                for part_rows, part_grids, window in _windows(rows, grids):
                    groups.append(_Group(m, item, part_rows, part_grids, window, reads))
        return groups


def newer_than(item: dict[str, Any], mark: str | None) -> bool:
    """Whether the item was acquired after the watermark ``mark`` (UTC ISO; None: nothing is new)."""
    if mark is None:
        return False
    from datetime import timezone

    from jointssl.stac.items import item_datetime

    try:
        when = item_datetime(item)
    except (UnusableItem, KeyError, ValueError, TypeError):
        return False
    when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ") > mark


def union_window(grids: Sequence[ChipGrid]) -> ChipGrid:
    """The square window on the chips' pixel grid that holds every chip of ``grids`` (same CRS and GSD)."""
    gsd = grids[0].gsd
    west = min(g.bounds[0] for g in grids)
    north = max(g.bounds[3] for g in grids)
    east = max(g.bounds[2] for g in grids)
    south = min(g.bounds[1] for g in grids)
    size = round(max(east - west, north - south) / gsd)
    return ChipGrid(grids[0].epsg, (west, north - size * gsd, west + size * gsd, north), size, gsd)


def _windows(rows: list[int], grids: list[ChipGrid]) -> list[tuple[list[int], list[ChipGrid], ChipGrid]]:
    """One shared window when it costs no more pixels than the chips apart, else one window per chip."""
    window = union_window(grids)
    if len(grids) > 1 and window.size ** 2 <= sum(g.size ** 2 for g in grids):
        return [(rows, grids, window)]
    return [([r], [g], g) for r, g in zip(rows, grids, strict=True)]


def _execute(job: tuple[list[_Group], WindowRead]) -> list[np.ndarray | Exception]:
    """Every group's window of one file ([len(indexes) S S] each), or per group why not."""
    groups, read = job
    m = groups[0].modality
    is_class_map = m.quality is not None and read.asset == m.quality.asset
    fill = 0 if is_class_map or m.nodata is None else m.nodata
    windows = [g.window for g in groups]
    return read_windows(read.href, read.indexes, windows, read.resampling, fill)  # type: ignore[arg-type]  # grids


def _cut(group: _Group, arrays: dict[str, np.ndarray | Exception]) -> list[Chip | ChipSkip]:
    """Each tile's chip sliced out of the group's window reads, then assembled and finished by the data
    plane itself (band order, quality mask, scaling, nodata, normalisation, failure reasons)."""
    if group.failure is not None:
        return [group.failure] * len(group.rows)
    window = group.window
    assert window is not None and group.reads is not None
    chips: list[Chip | ChipSkip] = []
    for grid in group.grids:
        r0 = round((window.bounds[3] - grid.bounds[3]) / window.gsd)
        c0 = round((grid.bounds[0] - window.bounds[0]) / window.gsd)
        rows, cols = slice(r0, r0 + grid.size), slice(c0, c0 + grid.size)
        sliced = {asset: a if isinstance(a, Exception) else a[:, rows, cols] for asset, a in arrays.items()}  # [k H W]
        chips.append(assemble(ChipPlan(group.item, group.modality, grid, group.reads), sliced))
    return chips
