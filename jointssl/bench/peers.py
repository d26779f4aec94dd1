"""Against what a user would pick instead: TorchGeo for chip loading (same COGs, same machine, same run).

The peer is what a TorchGeo user would write to get site-centred, multi-sensor chips from these COGs:
one ``RasterDataset`` per (sensor, UTM zone) over the co-located items' files (TorchGeo datasets have
one CRS each; querying every site in its own zone is the fastest TorchGeo can be, no reprojection),
the sensor's bands as separate files where they are (``separate_files``), the same target grid and
resampling as jointssl, a sampler that yields each site's chip bounds (TorchGeo's built-in samplers
draw random or gridded windows, not given points), a ``torch.utils.data.Dataset`` that returns a
site's chips of every sensor, and a ``DataLoader``. It gets its best of ``num_workers`` in (0, 2).

jointssl's side is :class:`jointssl.data.dataset.ChipBatchLoader` (what each Ray Data loader actor
runs), batch after batch in one process. It does more per chip than TorchGeo does (scaling, nodata and
quality masks, normalisation); TorchGeo returns raw values. Ratio = jointssl chips/s / TorchGeo
chips/s (goal > 1). Building TorchGeo's index (it opens every file) is timed apart and not in the
ratio; jointssl's counterpart, the STAC co-location index, is not timed either.

TorchGeo is an optional extra: ``pip install 'jointssl[bench]'``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pandas as pd

from jointssl.errors import JointsslError
from jointssl.sensors.spec import Modality

EXTRA_HINT = "install the bench extra into a separate environment: pip install 'jointssl[bench]' (torchgeo)"


def require_torchgeo():
    try:
        import torchgeo
    except ImportError:
        raise JointsslError("'jointssl bench peers' compares against TorchGeo, which is not installed",
                            hint=EXTRA_HINT) from None
    return torchgeo


def site_queries(table: pd.DataFrame, modalities: list[Modality]) -> tuple[list[list[tuple[str, int, tuple] | None]],
                                                                           dict[tuple[str, int], list[str]]]:
    """Per site and sensor the (sensor, EPSG, chip bounds) to query (None: no item), and the files of
    every (sensor, EPSG) dataset: the first asset of each co-located item (TorchGeo finds the others)."""
    from jointssl.data.chips import chip_grid, plan_reads

    queries: list[list[tuple[str, int, tuple] | None]] = []
    files: dict[tuple[str, int], set[str]] = {}
    for row in table.itertuples(index=False):
        per_site: list[tuple[str, int, tuple] | None] = []
        for m in modalities:
            text = getattr(row, f"{m.name}_item")
            if not text:
                per_site.append(None)
                continue
            item = json.loads(text)
            grid = chip_grid(item, m, float(row.lon), float(row.lat))
            files.setdefault((m.name, grid.epsg), set()).add(plan_reads(item, m)[0].href)
            per_site.append((m.name, grid.epsg, grid.bounds))
        queries.append(per_site)
    return queries, {k: sorted(v) for k, v in files.items()}


def torchgeo_dataset(modality: Modality, epsg: int, files: list[str]):
    """A TorchGeo ``RasterDataset`` over ``files`` in EPSG:``epsg`` at the sensor's target GSD."""
    from rasterio.crs import CRS
    from rasterio.enums import Resampling
    from torchgeo.datasets import RasterDataset

    assets = list(dict.fromkeys([b.asset for b in modality.bands]
                                + ([modality.quality.asset] if modality.quality else [])))
    separate = len(assets) > 1
    finer = any(b.native_gsd_m < modality.target_gsd_m * 0.75 for b in modality.bands)

    class SensorChips(RasterDataset):
        filename_glob = "*.tif"
        filename_regex = r"^(?P<band>[^.]+)\.tif$"
        separate_files = separate
        all_bands = tuple(assets) if separate else tuple(b.name for b in modality.bands)
        is_image = True

        @property
        def resampling(self) -> Resampling:  # as jointssl reads them: finer bands averaged, others nearest
            return Resampling.average if finer else Resampling.nearest

    return SensorChips(paths=files, crs=CRS.from_epsg(epsg), res=modality.target_gsd_m)


class TorchGeoSites:
    """``torch.utils.data.Dataset``: site i -> {sensor: [C H W] raw chip} via the TorchGeo datasets."""

    def __init__(self, datasets: dict[tuple[str, int], Any], queries, modalities: list[Modality]):
        self.datasets, self.queries = datasets, queries
        self.shapes = {m.name: (len(m.bands) + (1 if m.quality else 0), m.chip_size, m.chip_size) for m in modalities}

    def __len__(self) -> int:
        return len(self.queries)

    def __getitem__(self, i: int):
        import torch

        out = {}
        for name, shape in self.shapes.items():
            q = next((q for q in self.queries[i] if q is not None and q[0] == name), None)
            if q is None:
                out[name] = torch.zeros(shape)
                continue
            _, epsg, (west, south, east, north) = q
            ds = self.datasets[(name, epsg)]
            out[name] = ds[west:east:ds.res[0], south:north:ds.res[1]]["image"]  # [C H W]
        return out


def bench_torchgeo(table: pd.DataFrame, modalities: list[Modality], batch_size: int = 16, threads: int = 16,
                   worker_counts: tuple[int, ...] = (0, 2), repeats: int = 2) -> dict[str, Any]:
    """jointssl's chip loader vs TorchGeo over the same sites' chips; best of ``repeats`` each."""
    torchgeo = require_torchgeo()
    from torch.utils.data import DataLoader

    from jointssl.data.dataset import ChipBatchLoader

    queries, files = site_queries(table, modalities)
    chips = sum(q is not None for per_site in queries for q in per_site)
    began = time.perf_counter()
    by_name = {m.name: m for m in modalities}
    datasets = {key: torchgeo_dataset(by_name[key[0]], key[1], paths) for key, paths in files.items()}
    index_s = time.perf_counter() - began

    loader = ChipBatchLoader(modalities, threads=threads)
    batches = [table.iloc[i:i + batch_size].reset_index(drop=True) for i in range(0, len(table), batch_size)]

    def ours() -> None:
        for batch in batches:
            loader(batch)

    def peer(workers: int):
        def run() -> None:
            sites = TorchGeoSites(datasets, queries, modalities)
            for _ in DataLoader(sites, batch_size=batch_size, num_workers=workers):
                pass
        return run

    timings = {"jointssl": min(_timed(ours) for _ in range(repeats))}
    for workers in worker_counts:
        timings[f"torchgeo_workers_{workers}"] = min(_timed(peer(workers)) for _ in range(repeats))
    best_peer = min((k for k in timings if k.startswith("torchgeo")), key=timings.__getitem__)
    return {
        "torchgeo": torchgeo.__version__,
        "sites": len(table), "chips": chips, "batch_size": batch_size, "jointssl_threads": threads,
        "torchgeo_datasets": len(datasets), "torchgeo_index_s": round(index_s, 2),
        "chips_per_s": {k: round(chips / v, 1) for k, v in timings.items()},
        "best_peer": best_peer,
        "ratio": round(timings[best_peer] / timings["jointssl"], 3),
        "same_pixels": same_pixels(table, modalities, datasets, queries),
    }


def same_pixels(table: pd.DataFrame, modalities: list[Modality], datasets, queries) -> bool:
    """Both sides read the same windows: TorchGeo's raw first band of each sensor of the first site
    equals jointssl's window read of it."""
    from jointssl.data.chips import chip_grid, plan_reads, read_window

    row = table.iloc[0]
    sites = TorchGeoSites(datasets, queries[:1], modalities)[0]
    for m in modalities:
        text = row[f"{m.name}_item"]
        if not text:
            continue
        item = json.loads(text)
        read = plan_reads(item, m)[0]
        ours = read_window(read.href, read.indexes[:1], chip_grid(item, m, row["lon"], row["lat"]), read.resampling, 0)
        if not np.allclose(sites[m.name][0].numpy(), ours[0].astype(np.float32), atol=0.5):
            return False
    return True


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started
