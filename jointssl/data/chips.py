"""Cut one site-centred chip per modality from the COGs of its co-located item.

The chip grid: the item's native CRS (UTM for every sensor here), ``target_gsd_m`` pixels, centred on
the site and snapped to whole multiples of the target GSD, so a 10 m chip of a 10 m band is the stored
pixels themselves and coarser bands (20 m, 60 m) are repeated by nearest neighbour. Finer bands (NAIP's
~1 m) are averaged down.

Two readers stand behind :func:`read_chip`: ``rasterio`` (windowed reads of every asset, including
multi-band ones such as NAIP's 4-band ``image``: :mod:`jointssl.data.window_read`), and ``stackstac``
(single-band assets: :mod:`jointssl.data.stackstac_reader`). A modality whose bands share an asset
always uses rasterio. Many chips at once (:func:`read_chips`) are planned together (:func:`plan_chip`,
one :class:`WindowRead` per asset) and their reads mapped over threads where the files are remote.

No href is opened before :func:`jointssl.sensors.hrefs.checked_href` allows it (the modality's
``allowed_hrefs``): anything else is the skip ``href_not_allowed``. Every failure becomes a
:class:`ChipSkip` with a short reason that the pipeline counts (named by
:mod:`jointssl.data.read_faults`): the rest of the batch goes on. Two failures stop the batch instead:
object storage that does not answer after its retries (:class:`~jointssl.data.window_read.StoreUnavailable`),
and a signer that fails (:class:`~jointssl.sensors.signing.SigningFailed`): both would otherwise skip every chip.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, TypeVar

import numpy as np

from jointssl import storage
from jointssl.data.read_faults import skip_reason
from jointssl.data.stackstac_reader import quality_mask, read_stackstac
from jointssl.data.window_read import ChipGrid, StoreUnavailable, read_window
from jointssl.sensors.hrefs import checked_href
from jointssl.sensors.radiometry import band_scaling
from jointssl.sensors.signing import SigningFailed, resolve, signer
from jointssl.sensors.spec import Modality
from jointssl.stac.items import Item, UnusableItem, item_epsg

Reader = Literal["rasterio", "stackstac"]
T = TypeVar("T")
MIN_VALID_FRACTION = 0.05
REMOTE_READ_THREADS = 16
"""Concurrent window reads per loader from object storage or HTTP: a read there mostly waits on range
requests, so threads overlap the waits."""
LOCAL_READ_THREADS = 1
"""Concurrent window reads per loader from local files: a read is CPU (decode, resample), and more
threads only contend for the GIL and GDAL's locks. Measured on the demo world (150 sites, one process,
2 cores): 1 thread 2.4 s and 16.7 ms CPU per site, 4 threads 3.1 s / 23.1 ms, 16 threads 3.7 s / 27.7 ms.
Parallelism over local files comes from more loader processes (Ray Data actors)."""
REMOTE_SCHEMES = ("s3", "http", "https", "gs", "gcs", "az", "abfs")


@dataclass(frozen=True)
class Chip:
    pixels: np.ndarray
    """[C H W] float32, normalised ((physical - mean) / std); invalid pixels are 0."""
    valid: np.ndarray
    """[H W] bool: not nodata, not NaN, not rejected by the quality mask."""


@dataclass(frozen=True)
class ChipSkip:
    reason: str
    """Short, countable: missing_asset, read_error, all_nodata, nan, no_projection, ..."""
    detail: str


def chip_grid(item: Item, modality: Modality, lon: float, lat: float) -> ChipGrid:
    epsg = item_epsg(item)
    x, y = _from_lonlat(epsg).transform(lon, lat)
    half = modality.chip_extent_m / 2.0
    gsd = modality.target_gsd_m
    west = math.floor((x - half) / gsd) * gsd  # snapped: chip pixels sit on the target grid
    south = math.floor((y - half) / gsd) * gsd
    return ChipGrid(epsg, (west, south, west + modality.chip_extent_m, south + modality.chip_extent_m),
                    modality.chip_size, gsd)


def read_chip(item: Item, modality: Modality, lon: float, lat: float, reader: Reader = "rasterio") -> Chip | ChipSkip:
    """The normalised chip of ``modality`` from ``item`` around (lon, lat), or why there is none."""
    if reader == "stackstac" and len(modality.assets) == len(modality.bands):
        try:
            grid = chip_grid(item, modality, lon, lat)
            for asset in [*modality.assets, *_quality_assets(modality)]:
                checked_href(item, modality, asset)  # before anything is signed or opened
            sign = signer(modality, resolve(modality.href_modifier))
            raw = read_stackstac(item, modality, grid, sign)
            valid = quality_mask(item, modality, grid, sign)
        except UnusableItem as err:
            return ChipSkip(err.reason, str(err))
        except SigningFailed:
            raise
        except Exception as err:
            return ChipSkip(skip_reason(err), f"{type(err).__name__}: {err}")
        return finish(raw, valid, item, modality)
    return read_chips([(item, modality, lon, lat)])[0]


@dataclass(frozen=True)
class WindowRead:
    """One range-request-sized unit of work: bands ``indexes`` of ``href`` over the chip grid."""

    asset: str
    href: str
    indexes: list[int]
    resampling: str
    """'nearest' for bands at or coarser than the target GSD (and class maps), 'average' for finer ones."""


@dataclass(frozen=True)
class ChipPlan:
    item: Item
    modality: Modality
    grid: ChipGrid
    reads: list[WindowRead]


def plan_chip(item: Item, modality: Modality, lon: float, lat: float) -> ChipPlan | ChipSkip:
    """Grid and window reads of one chip, or why it cannot be read (no projection, missing asset)."""
    try:
        return ChipPlan(item, modality, chip_grid(item, modality, lon, lat), plan_reads(item, modality))
    except UnusableItem as err:
        return ChipSkip(err.reason, str(err))


def read_chips(requests: list[tuple[Item, Modality, float, float]], threads: int | None = None
               ) -> list[Chip | ChipSkip]:
    """Many chips at once: every window read of every chip planned together and run by
    :func:`map_reads` (concurrently in threads from remote stores), then each chip assembled from its reads."""
    plans = [plan_chip(*request) for request in requests]
    jobs = [(p, r) for p in plans if isinstance(p, ChipPlan) for r in p.reads]
    arrays = map_reads(_execute, jobs, threads)
    results: dict[int, dict[str, np.ndarray | Exception]] = {}
    for (plan, read), array in zip(jobs, arrays):
        results.setdefault(id(plan), {})[read.asset] = array
    return [p if isinstance(p, ChipSkip) else assemble(p, results.get(id(p), {})) for p in plans]


def assemble(plan: ChipPlan, arrays: dict[str, np.ndarray | Exception]) -> Chip | ChipSkip:
    """One chip from its reads: band planes [C H W] in the modality's order, quality mask, finish()."""
    for value in arrays.values():
        if isinstance(value, StoreUnavailable):
            raise value  # the store is down, not this chip: stop the batch rather than skip every chip
        if isinstance(value, UnusableItem):
            return ChipSkip(value.reason, str(value))
        if isinstance(value, Exception):
            return ChipSkip(skip_reason(value), f"{type(value).__name__}: {value}")
    read = {asset: value for asset, value in arrays.items() if isinstance(value, np.ndarray)}  # all, by now
    modality = plan.modality
    indexes = {r.asset: r.indexes for r in plan.reads}
    raw = np.stack([read[b.asset][indexes[b.asset].index(b.index)] for b in modality.bands])  # [C H W]
    valid = np.ones((plan.grid.size, plan.grid.size), dtype=bool)  # [H W]
    if modality.quality is not None:
        valid &= ~np.isin(read[modality.quality.asset][0], modality.quality.reject)
    return finish(raw, valid, plan.item, modality)


def read_threads(hrefs: Iterable[str], threads: int | None = None) -> int:
    """Concurrent reads for a batch over ``hrefs``: ``threads`` when given, else
    :data:`REMOTE_READ_THREADS` if any is remote (object storage, HTTP), else :data:`LOCAL_READ_THREADS`."""
    if threads is not None:
        return threads
    return REMOTE_READ_THREADS if any(is_remote(h) for h in hrefs) else LOCAL_READ_THREADS


def is_remote(href: str) -> bool:
    return href.startswith("/vsi") or ("://" in href and href.split("://", 1)[0].lower() in REMOTE_SCHEMES)


def map_reads(fn: Callable[[tuple[Any, WindowRead]], T], jobs: list[tuple[Any, WindowRead]],
              threads: int | None = None) -> list[T]:
    """``fn`` over (plan, read) jobs, in order: in a thread pool of :func:`read_threads` threads, or in
    this thread when that is one."""
    workers = max(1, min(read_threads((read.href for _, read in jobs), threads), len(jobs)))
    if workers == 1:
        with storage.rasterio_env():  # one Env for the whole loop (see storage.rasterio_env)
            return [fn(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, jobs))


def _execute(job: tuple[ChipPlan, WindowRead]) -> np.ndarray | Exception:
    plan, read = job
    is_class_map = plan.modality.quality is not None and read.asset == plan.modality.quality.asset
    fill = 0 if is_class_map or plan.modality.nodata is None else plan.modality.nodata
    try:
        return read_window(read.href, read.indexes, plan.grid, read.resampling, fill)
    except Exception as err:
        return err


def finish(raw: np.ndarray, valid: np.ndarray, item: Item, modality: Modality) -> Chip | ChipSkip:
    """Stored values [C H W] -> physical (each band's scale/offset/nodata decided from the item itself,
    :func:`jointssl.sensors.radiometry.band_scaling`) -> transform -> normalised, validity mask applied."""
    pixels = raw.astype(np.float32)  # [C H W]
    for c, band in enumerate(modality.bands):
        try:
            scaling = band_scaling(item, modality, band)  # per item: raster:bands, baseline fields, preset
        except UnusableItem as err:
            return ChipSkip(err.reason, str(err))
        if scaling.nodata is not None:
            valid &= pixels[c] != scaling.nodata
        valid &= np.isfinite(pixels[c])
        pixels[c] = pixels[c] * scaling.scale + scaling.offset
    if not np.isfinite(raw).any():
        return ChipSkip("nan", f"every pixel of {item.get('id')} is NaN")
    if valid.mean() < MIN_VALID_FRACTION:
        return ChipSkip("all_nodata", f"{valid.mean():.1%} of the chip of {item.get('id')} is valid")
    if modality.transform == "db":
        pixels = (10.0 * np.log10(np.clip(pixels, 1e-6, None))).astype(np.float32)
    means = np.array([b.mean for b in modality.bands], dtype=np.float32)[:, None, None]
    stds = np.array([b.std for b in modality.bands], dtype=np.float32)[:, None, None]
    pixels = (pixels - means) / stds  # [C H W]
    pixels[:, ~valid] = 0.0
    return Chip(np.ascontiguousarray(pixels, dtype=np.float32), valid)


def plan_reads(item: Item, modality: Modality, sign: Callable[[str], str] | None = None) -> list[WindowRead]:
    """The reads a chip of ``modality`` needs from ``item``: one per asset (a multi-band asset once),
    then the quality-mask asset. Raises :class:`UnusableItem` for a missing asset, or ``href_not_allowed``
    for an href outside the modality's ``allowed_hrefs`` (checked as the catalog gives it, before signing)."""
    sign = signer(modality, sign or resolve(modality.href_modifier))
    by_asset: dict[str, list[int]] = {}
    native: dict[str, float] = {}
    for band in modality.bands:
        by_asset.setdefault(band.asset, []).append(band.index)
        native[band.asset] = band.native_gsd_m
    hrefs = {a: checked_href(item, modality, a) for a in [*by_asset, *_quality_assets(modality)]}  # before signing
    reads = [WindowRead(a, sign(hrefs[a]), idx, _resampling(native[a], modality.target_gsd_m))
             for a, idx in by_asset.items()]
    for quality in _quality_assets(modality):
        reads.append(WindowRead(quality, sign(hrefs[quality]), [1], "nearest"))
    return reads


def _quality_assets(modality: Modality) -> list[str]:
    return [] if modality.quality is None else [modality.quality.asset]


@lru_cache(maxsize=64)
def _from_lonlat(epsg: int) -> Any:
    """A lon/lat -> EPSG transformer; building one costs milliseconds, so they are shared."""
    from pyproj import Transformer

    return Transformer.from_crs(4326, epsg, always_xy=True)


def _resampling(native_gsd: float, target_gsd: float) -> str:
    return "average" if native_gsd < target_gsd * 0.75 else "nearest"


def item_from_row(value: str | dict[str, Any]) -> Item:
    return json.loads(value) if isinstance(value, str) else value
