"""Chip read efficiency: jointssl's loader vs raw rasterio window reads of the same windows.

Both sides read the same chips of the same sites from the same store, with the same number of
threads. The raw side opens each asset and reads the chip's window (resampled to the chip grid) and
nothing else; the loader also applies scaling, nodata and quality masks and normalisation, and
handles failures. The ratio loader/raw says what that costs (goal >= 0.8). Each side runs twice and
the faster run counts, so a cold OS page cache does not favour the side that runs second.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd

from jointssl.data.chips import Reader, WindowRead, chip_grid, plan_reads
from jointssl.data.dataset import ChipBatchLoader
from jointssl.data.window_read import ChipGrid, read_window
from jointssl.sensors.spec import Modality


def raw_windows(table: pd.DataFrame, modalities: list[Modality]) -> list[tuple[WindowRead, ChipGrid]]:
    """Every window read the loader would make for ``table``."""
    windows: list[tuple[WindowRead, ChipGrid]] = []
    for row in table.itertuples(index=False):
        for m in modalities:
            item_json = getattr(row, f"{m.name}_item")
            if item_json:
                item = json.loads(item_json)
                grid = chip_grid(item, m, row.lon, row.lat)
                windows.extend((read, grid) for read in plan_reads(item, m))
    return windows


def bench_chip_read(table: pd.DataFrame, modalities: list[Modality], threads: int = 8,
                    reader: Reader = "rasterio") -> dict[str, Any]:
    chips = int(sum(table[f"{m.name}_item"].notna().sum() for m in modalities))
    windows = raw_windows(table, modalities)

    def raw() -> None:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(lambda w: read_window(w[0].href, w[0].indexes, w[1], w[0].resampling, 0), windows))

    loader = ChipBatchLoader(modalities, reader=reader, threads=threads)

    def ours() -> None:
        loader(table)

    raw_s = min(_timed(raw) for _ in range(2))
    ours_s = min(_timed(ours) for _ in range(2))
    return {
        "sites": len(table),
        "chips": chips,
        "windows": len(windows),
        "threads": threads,
        "reader": reader,
        "raw_chips_per_s": round(chips / raw_s, 1),
        "loader_chips_per_s": round(chips / ours_s, 1),
        "ratio": round(raw_s / ours_s, 3),
    }


def _timed(fn: Callable[[], None]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started
