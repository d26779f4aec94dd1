"""SAR (Sentinel-1 RTC-like) imaging: per-material sigma0, slopes, double bounce, soil moisture, speckle.

Backscatter is computed in linear power on the scene grid, averaged to each band's native GSD
(multi-looking), then multiplied by gamma-distributed speckle of the product's equivalent number of
looks. Geometry follows the orbit: Sentinel-1 looks right, so ascending passes look east and
descending passes look west; walls facing the sensor form dihedrals with the ground (double bounce)
and slopes facing it are brighter. Band polarisations and storage facts come from the sensor preset.
"""

from __future__ import annotations

import numpy as np

from jointssl.sensors import Modality
from jointssl.world.acquisitions import Acquisition
from jointssl.world.canvas import Bounds
from jointssl.world.materials import crop_weight, material_table
from jointssl.world.raster import RasterAsset, RenderedItem, block_mean, crop, factor, shifted
from jointssl.world.scene import Scene

EQUIVALENT_LOOKS = 4.4  # ENL of IW GRD high resolution, which RTC products inherit
DOUBLE_BOUNCE_DB = (10.0, 5.0)  # (co-pol, cross-pol) gain at a wall facing the sensor
MOISTURE_DB = 2.5  # backscatter range of soil/vegetation between dry and wet days
NOISE_FLOOR = 10 ** (-24 / 10)  # noise-equivalent sigma0, linear
MISREGISTRATION_M = 5.0
POLARISATIONS = {"vv": 0, "hh": 0, "vh": 1, "hv": 1}  # co-pol -> column 0 of sar_db, cross-pol -> 1


def render_sar(scene: Scene, modality: Modality, acq: Acquisition, window: Bounds,
               rng: np.random.Generator) -> RenderedItem:
    table = material_table()
    sigma_db = table.sar_db[scene.material].copy()  # [H W 2] (co, cross) dB
    natural = np.isin(scene.material, [table.index(n) for n in ("vegetation", "crop", "dry_grass", "bare_soil",
                                                                "trees", "landfill_cover")])
    wet = rng.uniform(-1.0, 1.0)  # the day's soil wetness (rain or drought)
    sigma_db[natural] += (MOISTURE_DB * np.clip(wet + 0.4 * scene.moisture[natural], -1, 1))[:, None]
    is_crop = scene.material == table.index("crop")
    sigma_db[is_crop, 1] += 4.0 * crop_weight(acq.day_of_year, scene.phase[is_crop])  # biomass -> volume scattering

    look = 1 if acq.orbit_state == "ascending" else -1  # +1: sensor in the west looking east
    # slopes: facing the sensor brightens (local incidence smaller), facing away darkens
    slope = np.gradient(scene.height, scene.gsd, axis=1) * -look  # [H W] rise towards the sensor
    sigma_db += np.clip(12.0 * slope, -8.0, 6.0)[..., None]
    # walls facing the sensor: the cell at the foot of a wall on the sensor side forms a dihedral
    wall = shifted(scene.height, 0, look) - scene.height > 2.0  # [H W] taller neighbour away from sensor
    sigma_db[wall] += np.asarray(DOUBLE_BOUNCE_DB, dtype=np.float32)
    linear = np.moveaxis(10.0 ** (sigma_db / 10.0), -1, 0)  # [2 H W]
    linear = crop(scene, linear, window, tuple(rng.normal(0.0, MISREGISTRATION_M, size=2)))  # [2 h w]

    assets = []
    for band in modality.bands:
        pol = POLARISATIONS[(band.common_name or band.name).lower()]
        f = factor(band.native_gsd_m, scene.gsd)
        mean = block_mean(linear[pol], f) + NOISE_FLOOR
        speckle = rng.gamma(EQUIVALENT_LOOKS, 1.0 / EQUIVALENT_LOOKS, size=mean.shape)
        value = (mean * speckle).astype(np.float32)
        stored = ((value - modality.offset) / modality.scale).astype(modality.dtype)
        assets.append(RasterAsset(band.asset, stored[None], window, band.native_gsd_m, modality.nodata, [band.name],
                                  title=f"{band.name.upper()}: {band.name.upper()} polarization"))
    properties = {
        "sat:orbit_state": acq.orbit_state,
        "sat:relative_orbit": acq.relative_orbit,
        "sat:absolute_orbit": acq.absolute_orbit,
    }
    return RenderedItem(modality.collection, assets, properties)
