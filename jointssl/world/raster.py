"""Rendered rasters and the resampling every sensor shares: cropping, box averaging, shading.

A :class:`RasterAsset` is what a sensor renderer returns and what :mod:`jointssl.world.cog` writes:
stored values (already in the collection's dtype), the grid they lie on, and how to build overviews.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from affine import Affine

from jointssl.world.canvas import Bounds
from jointssl.world.scene import Scene


@dataclass
class RasterAsset:
    key: str
    """STAC asset key (and COG file stem)."""
    data: np.ndarray  # [B H W] stored values
    bounds: Bounds
    gsd: float
    nodata: float | None
    band_names: list[str]
    """jointssl band names in file order (from the sensor preset)."""
    overview_resampling: str = "average"
    """'average' for measurements, 'nearest' for class maps (SCL)."""
    roles: list[str] = field(default_factory=lambda: ["data"])
    title: str | None = None
    pixel: tuple[float, float] | None = None
    """(x, y) pixel size in CRS units where it is not ``gsd`` metres (a degree grid); null: ``gsd``."""

    @property
    def transform(self) -> Affine:
        px, py = self.pixel or (self.gsd, self.gsd)
        return Affine(px, 0.0, self.bounds.west, 0.0, -py, self.bounds.north)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.data.shape[1]), int(self.data.shape[2])


@dataclass
class RenderedItem:
    """One acquisition of one collection over one footprint: assets plus item-level properties."""

    collection: str
    assets: list[RasterAsset]
    properties: dict[str, Any]


def crop(scene: Scene, layer: np.ndarray, window: Bounds, shift_m: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """The cells of ``layer`` ([..., H W] on the scene grid) under ``window`` moved by ``shift_m`` (x, y).

    The shift is the sensor's geolocation error: the image is labelled with ``window`` but shows the
    ground ``shift_m`` away (rounded to scene cells).
    """
    dx = round(shift_m[0] / scene.gsd) * scene.gsd
    dy = round(shift_m[1] / scene.gsd) * scene.gsd
    shifted = Bounds(window.epsg, window.west + dx, window.south + dy, window.east + dx, window.north + dy)
    rows, cols = scene.window(shifted)
    return layer[..., rows, cols]


def block_mean(values: np.ndarray, factor: int) -> np.ndarray:
    """[..., H W] -> [..., H/f W/f]: the area-weighted mean a detector of f x f cells integrates."""
    if factor == 1:
        return values
    *lead, h, w = values.shape
    if h % factor or w % factor:
        raise ValueError(f"grid {h}x{w} is not divisible by {factor}")
    means: np.ndarray = values.reshape(*lead, h // factor, factor, w // factor, factor).mean(axis=(-3, -1))
    return means


def factor(target_gsd: float, scene_gsd: float) -> int:
    f = target_gsd / scene_gsd
    if abs(f - round(f)) > 1e-6 or round(f) < 1:
        raise ValueError(f"{target_gsd} m is not a multiple of the scene's {scene_gsd} m grid")
    return int(round(f))


def shifted(values: np.ndarray, dr: int, dc: int) -> np.ndarray:
    """values[r + dr, c + dc] with edge replication ([H W] -> [H W])."""
    h, w = values.shape
    rows = np.clip(np.arange(h) + dr, 0, h - 1)
    cols = np.clip(np.arange(w) + dc, 0, w - 1)
    return values[rows[:, None], cols[None, :]]


def cast_shadow(height: np.ndarray, gsd: float, sun_elevation: float, sun_azimuth: float) -> np.ndarray:
    """[H W] bool: cells in the shadow of taller cells towards the sun (buildings, tanks, trees, mounds)."""
    tan_el = math.tan(math.radians(sun_elevation))
    reach = int(min(60, math.ceil(float(height.max(initial=0.0)) / max(tan_el, 0.05) / gsd)))
    dr, dc = -math.cos(math.radians(sun_azimuth)), math.sin(math.radians(sun_azimuth))  # towards the sun
    shadow = np.zeros(height.shape, dtype=bool)
    for k in range(1, reach + 1):
        occluder = shifted(height, int(round(k * dr)), int(round(k * dc)))
        shadow |= occluder - k * gsd * tan_el > height + 0.5
    return shadow


def hillshade(height: np.ndarray, gsd: float, sun_elevation: float, sun_azimuth: float) -> np.ndarray:
    """[H W] cos(local incidence) / cos(flat incidence): slopes facing the sun are brighter."""
    dz_dy, dz_dx = np.gradient(height, gsd)  # rows go south: dz_dy is d/d(south)
    nx, ny, nz = -dz_dx, dz_dy, np.ones_like(height)  # normal in (east, north, up)
    norm = np.sqrt(nx**2 + ny**2 + 1.0)
    el, az = math.radians(sun_elevation), math.radians(sun_azimuth)
    sx, sy, sz = math.cos(el) * math.sin(az), math.cos(el) * math.cos(az), math.sin(el)
    shade: np.ndarray = np.clip((nx * sx + ny * sy + nz * sz) / norm / sz, 0.15, 2.0)
    return shade.astype(np.float32)


def surface_reflectance(scene: Scene, spectra: np.ndarray, crop_spectra: tuple[np.ndarray, np.ndarray],
                        crop_id: int, day_of_year: int) -> np.ndarray:
    """[B H W] reflectance of the scene on one date.

    ``spectra`` is [M B] for the date's greenness; crop cells instead mix bare soil -> green crop by
    their field's own phenology (``crop_spectra`` = (bare [B], green [B])).
    """
    from jointssl.world.materials import crop_weight

    refl = spectra[scene.material]  # [H W B]
    is_crop = scene.material == crop_id  # [H W]
    if is_crop.any():
        w = crop_weight(day_of_year, scene.phase[is_crop])[:, None]  # [n 1]
        refl[is_crop] = (1 - w) * crop_spectra[0][None, :] + w * crop_spectra[1][None, :]
    refl *= scene.texture[..., None]
    return np.moveaxis(refl, -1, 0)  # [B H W]
