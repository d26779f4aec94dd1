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

    def __init__(self, modalities: Sequence[Modality], threads: int | None = None):
        self.modalities = list(modalities)
        self.threads = threads

    def __call__(self, batch: pd.DataFrame) -> dict[str, np.ndarray]:
        n = len(batch)
        out: dict[str, np.ndarray] = {c: batch[c].to_numpy() for c in PASSTHROUGH}
        groups = self._groups(batch)
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
            out[m.name] = pixels
            out[f"{m.name}_present"] = reasons == "ok"
            out[f"{m.name}_reason"] = reasons
            out[f"{m.name}_item"] = items
            out[f"{m.name}_datetime"] = times
        return out

    def _groups(self, batch: pd.DataFrame) -> list[_Group]:
        groups: list[_Group] = []
        lon, lat = batch["lon"].to_numpy(), batch["lat"].to_numpy()
        for m in self.modalities:
            by_item: dict[str, list[int]] = {}
            for row, text in enumerate(batch[f"{m.name}_item"]):
                if isinstance(text, str) and text:
                    by_item.setdefault(text, []).append(row)
            for text, rows in by_item.items():
                item = json.loads(text)
                try:
                    grids = [chip_grid(item, m, float(lon[r]), float(lat[r])) for r in rows]
                    reads = plan_reads(item, m)
                except UnusableItem as err:
                    groups.append(_Group(m, item, rows, [], failure=ChipSkip(err.reason, str(err))))
                    continue
                for part_rows, part_grids, window in _windows(rows, grids):
                    groups.append(_Group(m, item, part_rows, part_grids, window, reads))
        return groups


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
    return read_windows(read.href, read.indexes, windows, read.resampling, fill)  # type: ignore[arg-type]


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
