"""Per-material spectra and SAR backscatter, read from ``materials.yaml`` and sampled at sensor bands.

Why data and interpolation: every optical renderer asks for "reflectance of material m at the band
centres of this modality" (taken from the sensor preset), so NAIP's four bands and Sentinel-2's
twelve come from one table, and the season is applied in one place (:meth:`MaterialTable.spectra`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
import yaml


@dataclass(frozen=True)
class MaterialTable:
    names: tuple[str, ...]
    wavelengths_um: np.ndarray  # [K] anchor wavelengths
    reflectance: np.ndarray  # [M K] surface reflectance at the anchors
    sar_db: np.ndarray  # [M 2] sigma0 (VV, VH) in dB
    senescent: np.ndarray  # [M] index of the material a dynamic one fades into (itself if static)
    cloud: np.ndarray  # [K] cloud-top reflectance at the anchors

    def index(self, name: str) -> int:
        return self.names.index(name)

    def ids(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    def at_wavelengths(self, centers_um: list[float]) -> np.ndarray:
        """[M B] reflectance interpolated at the given band centres."""
        centers = np.asarray(centers_um, dtype=np.float64)
        return np.stack([np.interp(centers, self.wavelengths_um, row) for row in self.reflectance]).astype(np.float32)

    def cloud_at(self, centers_um: list[float]) -> np.ndarray:
        """[B] cloud-top reflectance at the given band centres."""
        cloud: np.ndarray = np.interp(np.asarray(centers_um, dtype=np.float64), self.wavelengths_um, self.cloud)
        return cloud.astype(np.float32)

    def spectra(self, centers_um: list[float], greenness: float) -> np.ndarray:
        """[M B] reflectance on a date whose vegetation greenness is ``greenness`` in [0, 1].

        Dynamic materials (vegetation, trees, crops) are mixed linearly with their senescent state;
        per-field crop phenology is applied by the renderer through :func:`crop_weight`.
        """
        base = self.at_wavelengths(centers_um)  # [M B]
        faded = base[self.senescent]  # [M B]
        dynamic = (self.senescent != np.arange(len(self.names)))[:, None]  # [M 1]
        g = float(np.clip(greenness, 0.0, 1.0))
        return np.where(dynamic, g * base + (1.0 - g) * faded, base).astype(np.float32)

    def sar_linear(self) -> np.ndarray:
        """[M 2] sigma0 (VV, VH) in linear power units."""
        return (10.0 ** (self.sar_db / 10.0)).astype(np.float32)


@lru_cache(maxsize=1)
def material_table() -> MaterialTable:
    """The table shipped in ``jointssl/world/materials.yaml`` (parsed once per process)."""
    raw = yaml.safe_load((resources.files("jointssl.world") / "materials.yaml").read_text())
    names = tuple(raw["materials"])
    rows = raw["materials"]
    wl = np.asarray(raw["wavelengths_um"], dtype=np.float64)
    refl = np.asarray([rows[n]["reflectance"] for n in names], dtype=np.float64)
    if refl.shape != (len(names), len(wl)):
        raise ValueError(f"materials.yaml: every reflectance needs {len(wl)} values")
    sar = np.asarray([rows[n]["sar_db"] for n in names], dtype=np.float32)
    senescent = np.asarray([names.index(rows[n].get("senescent", n)) for n in names], dtype=np.int64)
    cloud = np.asarray(raw["atmosphere"]["cloud"]["reflectance"], dtype=np.float64)
    return MaterialTable(names, wl, refl, sar, senescent, cloud)


def greenness(day_of_year: int, latitude: float, aridity: float) -> float:
    """Seasonal vegetation greenness in [0, 1]: peaks in July, flatter and lower in arid places.

    Northern temperate phenology: green-up in spring, senescence in autumn; ``aridity`` in [0, 1]
    (0 humid east, 1 desert) caps the peak, since rangeland browns early.
    """
    peak_doy = 195.0
    width = 70.0 + 0.8 * (45.0 - abs(latitude))  # longer season further south
    g = np.exp(-0.5 * ((day_of_year - peak_doy) / width) ** 2)
    return float(np.clip(0.15 + 0.85 * g * (1.0 - 0.6 * aridity), 0.0, 1.0))


def crop_weight(day_of_year: int, phase_days: np.ndarray) -> np.ndarray:
    """[...] greenness of crop pixels whose field peaks ``phase_days`` after mid-July (0 bare .. 1 green)."""
    return np.exp(-0.5 * ((day_of_year - 200.0 - phase_days) / 35.0) ** 2).astype(np.float32)
