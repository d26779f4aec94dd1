"""Multispectral satellite (Sentinel-2 L2A-like) imaging: bands at native 10/20/60 m, clouds, shadows, SCL.

Surface reflectance is computed on the scene grid and box-averaged to each band's native GSD (from
the sensor preset), so 60 m bands really are blurrier than 10 m ones. Clouds are a smooth opacity
field over a larger area than the footprint; their shadows are the same field displaced away from
the sun by cloud height / tan(sun elevation). The scene classification (SCL, at the preset's
quality GSD) is derived from the same fields, and ``eo:cloud_cover`` is counted from SCL pixels,
so the metadata agree with the pixels as they do in ESA products.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter

from jointssl.sensors import Modality
from jointssl.world.acquisitions import Acquisition
from jointssl.world.aerial import _to_stored
from jointssl.world.canvas import Bounds
from jointssl.world.materials import material_table
from jointssl.world.raster import RasterAsset, RenderedItem, block_mean, crop, factor, surface_reflectance
from jointssl.world.scene import Scene

# ESA scene classification values
SCL_NODATA, SCL_SATURATED, SCL_DARK, SCL_SHADOW, SCL_VEGETATION, SCL_BARE = 0, 1, 2, 3, 4, 5
SCL_WATER, SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_CIRRUS = 6, 8, 9, 10
CLOUD_CLASSES = (SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_CIRRUS)
MISREGISTRATION_M = 4.0  # Sentinel-2 multi-temporal co-registration is ~0.3-0.5 px at 10 m
NOISE_SD = 0.003  # reflectance noise per band (SNR ~100 at 0.3)
CLEAR_SKY_PROBABILITY = 0.4
FLARE_EMISSION = 6.0  # reflectance-equivalent of a flame cell at 2.2 um (scaled by (wl - 1.3))


def render_multispectral(scene: Scene, modality: Modality, acq: Acquisition, window: Bounds,
                         rng: np.random.Generator) -> RenderedItem:
    table = material_table()
    centers = np.array([b.center_wavelength_um for b in modality.bands])
    spectra = table.spectra(list(centers), acq.greenness)  # [M B]
    bare, green = table.at_wavelengths(list(centers))[[table.index("bare_soil"), table.index("crop")]]
    refl = surface_reflectance(scene, spectra, (bare, green), table.index("crop"), acq.day_of_year)  # [B H W]
    swir = np.clip(centers - 1.3, 0.0, None)[:, None, None]  # [B 1 1] flames glow in the SWIR only
    refl = refl + FLARE_EMISSION * swir * scene.hot[None]
    shift = tuple(rng.normal(0.0, MISREGISTRATION_M, size=2))
    surface = crop(scene, refl, window, shift)  # [B h w] on the scene grid
    water = crop(scene, np.isin(scene.material, _water_ids()).astype(np.float32), window, shift)  # [h w]

    q_gsd = modality.quality.native_gsd_m if modality.quality else 20.0
    q_factor = factor(q_gsd, scene.gsd)
    cloud_q, shadow_q = _cloud_fields(window, q_gsd, acq, rng)  # [hq wq] opacity / shadow strength
    nodata_q = _swath_edge(cloud_q.shape, rng)  # [hq wq] bool
    up = np.ones((q_factor, q_factor), dtype=np.float32)
    cloud, shadow, nodata = np.kron(cloud_q, up), np.kron(shadow_q, up), np.kron(nodata_q, up).astype(bool)  # [h w]

    haze = rng.uniform(0.0, 0.015) * (0.49 / centers) ** 2  # [B] residual path radiance after L2A correction
    brdf = rng.normal(1.0, 0.03)
    cloud_refl = table.cloud_at(list(centers))[:, None, None]  # [B 1 1]
    toa = surface * brdf * (1.0 - 0.65 * shadow[None]) + haze[:, None, None]
    toa = (1.0 - cloud[None]) * toa + cloud[None] * cloud_refl  # [B h w]

    assets = []
    for b_index, band in enumerate(modality.bands):
        f = factor(band.native_gsd_m, scene.gsd)
        value = block_mean(toa[b_index], f)
        value = value + rng.normal(0.0, NOISE_SD, size=value.shape)
        stored = _to_stored(value, modality)
        if modality.nodata is not None:
            stored[block_mean(nodata.astype(np.float32), f) > 0.5] = modality.nodata
        assets.append(RasterAsset(band.asset, stored[None], window, band.native_gsd_m, modality.nodata, [band.name],
                                  title=f"Band {band.name} - {band.native_gsd_m:g}m"))

    scl = _classify(block_mean(surface, q_factor), block_mean(water, q_factor), cloud_q, shadow_q, nodata_q,
                    modality, centers, block_mean(toa, q_factor))
    if modality.quality is not None:
        assets.append(RasterAsset(modality.quality.asset, scl[None], window, q_gsd, 0, ["SCL"],
                                  overview_resampling="nearest", title=f"Scene classification map (SCL) - {q_gsd:g}m"))
    valid = scl != SCL_NODATA
    cloudy = np.isin(scl, CLOUD_CLASSES) & valid
    properties = {
        "eo:cloud_cover": round(100.0 * cloudy.sum() / max(1, valid.sum()), 4),
        "s2:nodata_pixel_percentage": round(100.0 * (~valid).mean(), 4),
        "s2:mean_solar_zenith": round(90.0 - acq.sun_elevation, 3),
        "s2:mean_solar_azimuth": round(acq.sun_azimuth, 3),
        "sat:orbit_state": acq.orbit_state,
        "sat:relative_orbit": acq.relative_orbit,
    }
    return RenderedItem(modality.collection, assets, properties)


def cloud_cover_from_scl(scl: np.ndarray) -> float:
    """Percentage of valid (non-nodata) SCL pixels classed as cloud (medium, high, thin cirrus)."""
    valid = scl != SCL_NODATA
    return float(100.0 * (np.isin(scl, CLOUD_CLASSES) & valid).sum() / max(1, valid.sum()))


def _water_ids() -> list[int]:
    t = material_table()
    return [t.index(n) for n in ("water", "lagoon", "turbid_water")]


def _cloud_fields(
    window: Bounds, gsd: float, acq: Acquisition, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Cloud opacity and cloud-shadow strength ([h w] in [0, 1]) on the quality grid of ``window``."""
    h, w = int(round(window.height / gsd)), int(round(window.width / gsd))
    if rng.random() < CLEAR_SKY_PROBABILITY:
        return np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    cover = rng.beta(0.8, 1.6)  # sky fraction covered, over a region larger than the footprint
    cloud_height = rng.uniform(600.0, 2500.0)
    reach = cloud_height / math.tan(math.radians(acq.sun_elevation)) / gsd  # shadow offset in cells
    az = math.radians(acq.sun_azimuth)
    dr, dc = int(round(-reach * math.cos(az))), int(round(reach * math.sin(az)))  # towards the sun
    pad = max(abs(dr), abs(dc)) + 8
    # cumulus cells of ~0.5-2 km
    field = gaussian_filter(rng.standard_normal((h + 2 * pad, w + 2 * pad)), rng.uniform(150.0, 600.0) / gsd)
    field /= field.std() + 1e-9
    threshold = np.quantile(field, 1.0 - cover)
    opacity = np.clip((field - threshold) / 0.8, 0.0, 1.0).astype(np.float32)
    cloud = opacity[pad:pad + h, pad:pad + w]
    # the shadow at a cell is cast by the cloud towards the sun from it
    shadow = opacity[pad + dr:pad + dr + h, pad + dc:pad + dc + w]
    return cloud, np.clip(shadow * (1.0 - cloud) * 1.2, 0.0, 1.0).astype(np.float32)


def _swath_edge(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """[h w] bool: outside the orbit swath / tile data area (some acquisitions only cover part of a site)."""
    if rng.random() > 0.12:
        return np.zeros(shape, dtype=bool)
    rows, cols = np.indices(shape)
    angle = rng.uniform(0, 2 * math.pi)
    proj = (cols / shape[1] - 0.5) * math.cos(angle) + (rows / shape[0] - 0.5) * math.sin(angle)
    return proj > rng.uniform(0.15, 0.45)


def _classify(surface: np.ndarray, water: np.ndarray, cloud: np.ndarray, shadow: np.ndarray, nodata: np.ndarray,
              modality: Modality, centers: np.ndarray, toa: np.ndarray) -> np.ndarray:
    """Sen2Cor-like scene classification on the quality grid ([B h w] inputs -> [h w] uint8)."""
    red = surface[int(np.argmin(np.abs(centers - 0.665)))]
    nir = surface[int(np.argmin(np.abs(centers - 0.865)))]
    vis = surface[np.abs(centers - 0.56) < 0.1].mean(axis=0)
    swir = toa[int(np.argmin(np.abs(centers - 2.19)))]
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    scl = np.full(red.shape, SCL_BARE, dtype=np.uint8)
    scl[ndvi > 0.4] = SCL_VEGETATION
    scl[(vis < 0.05) & (water <= 0.5)] = SCL_DARK
    scl[water > 0.5] = SCL_WATER
    scl[swir > 0.9] = SCL_SATURATED
    scl[shadow > 0.3] = SCL_SHADOW
    scl[(cloud > 0.05) & (cloud <= 0.3)] = SCL_CIRRUS
    scl[(cloud > 0.3) & (cloud <= 0.6)] = SCL_CLOUD_MEDIUM
    scl[cloud > 0.6] = SCL_CLOUD_HIGH
    scl[nodata] = SCL_NODATA
    return scl
