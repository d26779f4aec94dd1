"""Aerial (NAIP-like) imaging: 4 bands at the scene GSD, sun-lit, with cast shadows, one multi-band asset.

NAIP is not reflectance: DNs are radiometrically balanced for looks, so each flight line gets its
own gain and per-band colour balance. Bands, wavelengths, dtype, scale and asset layout all come
from the sensor preset (:class:`~jointssl.sensors.Modality`).
"""

from __future__ import annotations

import math

import numpy as np

from jointssl.sensors import Modality
from jointssl.world.acquisitions import Acquisition
from jointssl.world.canvas import Bounds
from jointssl.world.materials import material_table
from jointssl.world.raster import RasterAsset, RenderedItem, cast_shadow, crop, hillshade, surface_reflectance
from jointssl.world.scene import Scene

SHADOW_DIFFUSE = 0.35  # share of irradiance left in a cast shadow (skylight only)
MISREGISTRATION_M = 2.0  # NAIP horizontal accuracy is a few metres


def render_aerial(scene: Scene, modality: Modality, acq: Acquisition, window: Bounds,
                  rng: np.random.Generator) -> RenderedItem:
    table = material_table()
    centers = [b.center_wavelength_um for b in modality.bands if b.center_wavelength_um is not None]
    if len(centers) != len(modality.bands):  # numpy would fail on the None further down, less clearly
        raise ValueError(f"{modality.name}: every aerial band needs a centre wavelength")
    spectra = table.spectra(centers, acq.greenness)  # [M B]
    bare, green = table.at_wavelengths(centers)[[table.index("bare_soil"), table.index("crop")]]
    refl = surface_reflectance(scene, spectra, (bare, green), table.index("crop"), acq.day_of_year)  # [B H W]

    lit = hillshade(scene.height, scene.gsd, acq.sun_elevation, acq.sun_azimuth)  # [H W]
    shadow = cast_shadow(scene.height, scene.gsd, acq.sun_elevation, acq.sun_azimuth)  # [H W]
    lit = np.where(shadow, SHADOW_DIFFUSE, lit)
    shift = tuple(rng.normal(0.0, MISREGISTRATION_M, size=2))
    refl = crop(scene, refl * lit[None], window, shift)  # [B h w]

    # flight-line radiometry: overall gain from sun height, and a colour balance per band
    gain = rng.uniform(1.5, 2.1) * (0.8 + 0.2 * math.sin(math.radians(acq.sun_elevation)))
    balance = rng.normal(1.0, 0.05, size=(len(centers), 1, 1))
    value = refl * gain * balance + rng.normal(0.0, 0.006, size=refl.shape)  # physical units (0..1)
    stored = _to_stored(value, modality)

    assets = []
    for asset in modality.assets:
        bands = sorted((b for b in modality.bands if b.asset == asset), key=lambda b: b.index)
        order = [modality.bands.index(b) for b in bands]
        assets.append(RasterAsset(asset, stored[order], window, scene.gsd, modality.nodata, [b.name for b in bands],
                                  title="RGBIR COG tile"))
    return RenderedItem(modality.collection, assets, {"gsd": scene.gsd})


def _to_stored(value: np.ndarray, modality: Modality) -> np.ndarray:
    """Physical values -> stored DNs of the modality's dtype, keeping clear of the nodata value."""
    dn = np.rint((value - modality.offset) / modality.scale)
    info = np.iinfo(np.dtype(modality.dtype))
    low = info.min + 1 if modality.nodata == info.min else info.min
    return np.clip(dn, low, info.max).astype(modality.dtype)
