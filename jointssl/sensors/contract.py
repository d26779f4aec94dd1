"""A sensor contract: what a model reads, named by what each band physically is, not by catalog keys.

A model trained on one catalog's preset must run on another's when the sensors are the same physical
measurements (Planetary Computer's ``B04`` and Earth Search's ``red`` are one band), and be refused,
with every difference listed, when they are not: a missing band, another product (Sentinel-1 GRD
amplitude for RTC gamma0), another GSD or chip size, other units after scaling, other normalisation.

Identity of a band: its common name, centre wavelength (within :data:`WAVELENGTH_TOLERANCE_UM`) and
native GSD; channel order matters (the model's channels are positional). Identity of a modality: its
short name, its product (the preset's ``product``, else the collection id: ``sentinel-2-l2a`` is the same
product in Planetary Computer, Earth Search and the world; ``sentinel-1-grd`` is not ``sentinel-1-rtc``),
its units after scaling and transform, its target GSD and chip size. Asset keys, band indexes, dtype,
scale/offset and href signing are how a catalog stores the measurement, and may differ freely.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from jointssl.sensors.spec import Modality

WAVELENGTH_TOLERANCE_UM = 0.02
"""Centre wavelengths closer than this are one band (Sentinel-2A and 2B differ by up to ~0.01 µm)."""


@dataclass(frozen=True)
class BandContract:
    name: str
    """jointssl's channel name (B04, red, vv): reported, not compared."""
    common_name: str | None
    center_wavelength_um: float | None
    native_gsd_m: float
    mean: float
    std: float

    def describe(self) -> str:
        parts = [self.common_name or self.name]
        if self.center_wavelength_um:
            parts.append(f"{self.center_wavelength_um:g} µm")
        parts.append(f"{self.native_gsd_m:g} m")
        return f"{self.name} ({', '.join(parts)})"

    def same_measurement(self, other: BandContract) -> bool:
        if (self.common_name or self.name) != (other.common_name or other.name):
            return False
        if self.center_wavelength_um and other.center_wavelength_um:
            return abs(self.center_wavelength_um - other.center_wavelength_um) <= WAVELENGTH_TOLERANCE_UM
        return self.center_wavelength_um == other.center_wavelength_um


@dataclass(frozen=True)
class ModalityContract:
    name: str
    product: str
    units: str
    """Physical units after scale/offset and transform: 'reflectance', 'backscatter dB', ..."""
    target_gsd_m: float
    chip_size: int
    bands: tuple[BandContract, ...]


def modality_contract(modality: Modality) -> ModalityContract:
    """The contract of one preset modality."""
    units = "reflectance" if modality.kind == "optical" else "backscatter"
    if modality.transform == "db":
        units += " dB"
    bands = tuple(BandContract(b.name, b.common_name, b.center_wavelength_um, b.native_gsd_m, b.mean, b.std)
                  for b in modality.bands)
    return ModalityContract(modality.name, modality.product or modality.collection, units, modality.target_gsd_m,
                            modality.chip_size, bands)


def sensor_contract(modalities: Sequence[Modality]) -> list[ModalityContract]:
    """The contract of what a model reads, in the model's modality order."""
    return [modality_contract(m) for m in modalities]


def to_dict(contract: Sequence[ModalityContract]) -> list[dict[str, Any]]:
    """Plain JSON data (for a model's metadata)."""
    return [asdict(m) for m in contract]


def from_dict(data: Sequence[dict[str, Any]]) -> list[ModalityContract]:
    return [ModalityContract(**{**m, "bands": tuple(BandContract(**b) for b in m["bands"])}) for m in data]


def differences(trained: Sequence[ModalityContract], reading: Sequence[ModalityContract]) -> list[str]:
    """Every real difference between what a model was trained on and what a config would read; [] when
    the model can run unchanged. Reading a subset of the trained modalities is allowed."""
    known = {m.name: m for m in trained}
    problems: list[str] = []
    for have in reading:
        want = known.get(have.name)
        if want is None:
            problems.append(f"{have.name}: not a modality the model reads ({', '.join(known) or 'none'})")
            continue
        problems += _modality_differences(want, have)
    return problems


def _modality_differences(want: ModalityContract, have: ModalityContract) -> list[str]:
    n = want.name
    keys = ("product", "units", "target_gsd_m", "chip_size")
    problems = [f"{n}: {key} is {getattr(have, key)!r}, the model was trained on {getattr(want, key)!r}"
                for key in keys if getattr(have, key) != getattr(want, key)]
    for i, w in enumerate(want.bands):
        match = [k for k, h in enumerate(have.bands) if w.same_measurement(h)]
        if not match:
            problems.append(f"{n}: band {w.describe()} is missing")
            continue
        h = have.bands[match[0]]
        if match[0] != i:
            problems.append(f"{n}: band {w.describe()} is channel {match[0]}, the model reads it as channel {i}")
        if h.native_gsd_m != w.native_gsd_m:
            problems.append(f"{n}: band {w.describe()} has native GSD {h.native_gsd_m:g} m")
        if (h.mean, h.std) != (w.mean, w.std):
            problems.append(f"{n}: band {w.describe()} is normalised with mean {h.mean:g}, std {h.std:g} "
                            f"(the model: {w.mean:g}, {w.std:g})")
    for k, h in enumerate(have.bands):
        if not any(h.same_measurement(w) for w in want.bands):
            problems.append(f"{n}: band {h.describe()} (channel {k}) is not one the model reads")
    return problems


def classifier_contract(preset: str, modalities: Sequence[Modality]) -> dict[str, Any]:
    """What the classifier expects to read (plain data: JSON for the MLflow model's metadata):
    ``{"preset", "modalities": [{name, collection, bands, chip_size, target_gsd_m}], "physical": [...]}``.
    ``physical`` names each band by what it is (:func:`sensor_contract`), so that the same
    measurements published by another catalog under other asset keys and band names still match."""
    return {"preset": preset, "modalities": [
        {"name": m.name, "collection": m.collection, "bands": list(m.band_names), "chip_size": m.chip_size,
         "target_gsd_m": m.target_gsd_m} for m in modalities],
        "physical": to_dict(sensor_contract(modalities))}


def check_classifier(trained: Mapping[str, Any], modalities: Sequence[Modality]) -> list[str]:
    """Problems reading ``modalities`` (sensor specs) for a classifier with contract ``trained``; [] when
    they match. The config may read a subset of the classifier's modalities.

    With a physical contract (classifiers registered since it exists) every real difference is listed:
    product, units, GSD, chip size, a missing or reordered band, other normalisation; catalog naming
    (asset keys, band names) may differ. Older classifiers are checked by band name, chip size and GSD.
    """
    if "physical" in trained:
        return differences(from_dict(trained["physical"]), sensor_contract(modalities))
    known = {m["name"]: m for m in trained["modalities"]}
    problems = []
    for m in modalities:
        want = known.get(m.name)
        if want is None:
            problems.append(f"modality {m.name!r} is not one the classifier reads ({', '.join(known)})")
            continue
        for key, have in (("bands", list(m.band_names)), ("chip_size", m.chip_size), ("target_gsd_m", m.target_gsd_m)):
            if want[key] != have:
                problems.append(f"{m.name}.{key} is {have} but the classifier was trained on {want[key]}")
    return problems
