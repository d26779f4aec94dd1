"""World profiles (``profiles.yaml``): how many sites, how large, which sensors and how many dates.

A profile is data so that sizes are tuned without touching code; loading goes through the project's
config loader, so an unknown or mistyped key is an error naming the key and the file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from jointssl.config.load import ConfigError, from_dict, read_yaml
from jointssl.labels import FACILITY_CLASSES, NEGATIVE

PROFILES = ("test", "demo", "bench", "science")
EVAL_SPLITS = ("val", "test")


@dataclass(frozen=True)
class SensorPlan:
    renderer: Literal["aerial", "multispectral", "sar"]
    """Which physics images the collection (jointssl.world.aerial / multispectral / sar)."""
    dates: int = field(default=1, metadata={"min": 1})
    """Acquisitions per site (one STAC item each)."""


@dataclass(frozen=True)
class WorldProfile:
    sites: int = field(metadata={"min": 1})
    """Total sites, labelled and unlabelled."""
    labelled_per_class: int = field(metadata={"min": 0})
    """Labelled sites per class (6 facility classes + negatives); the rest are unlabelled."""
    footprint_m: float = field(metadata={"min": 120.0})
    """Side of each site's image footprint, a multiple of 60 m."""
    scene_gsd_m: float = field(metadata={"min": 0.25})
    """GSD of the latent ground scene and of the aerial images; must divide 10 m."""
    sensors: dict[str, SensorPlan] = field(default_factory=dict)
    """Keyed by STAC collection id of the world sensor preset."""
    year: int = 2023
    """Satellite acquisitions fall in this year; the aerial survey in the year before (NAIP cadence)."""
    multilabel_fraction: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})
    """Share of facility sites that hold a second facility type."""
    val_fraction: float = field(default=0.2, metadata={"min": 0.0, "max": 0.5})
    test_fraction: float = field(default=0.2, metadata={"min": 0.0, "max": 0.5})
    eval_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    """Labelled val and test sites per primary class: ``{"val": {class: n}, "test": {class: n}}`` over the
    six facility classes and "negative" (the science profile holds METER-ML's, docs/evaluation.md). When
    set, these counts (times ``eval_scale``) replace ``val_fraction`` / ``test_fraction``, and
    ``labelled_per_class`` is the number of *train* sites per class. Empty: every split balanced per class."""
    eval_scale: float = field(default=1.0, metadata={"min": 0.0})
    """Multiplies ``eval_counts`` (each class rounded), to keep their balance at another size."""

    def __post_init__(self) -> None:
        if abs(self.footprint_m / 60.0 - round(self.footprint_m / 60.0)) > 1e-6:
            raise ConfigError("footprint_m", f"{self.footprint_m} is not a multiple of 60 m")
        if abs(10.0 / self.scene_gsd_m - round(10.0 / self.scene_gsd_m)) > 1e-6:
            raise ConfigError("scene_gsd_m", f"{self.scene_gsd_m} does not divide 10 m")
        if not self.sensors:
            raise ConfigError("sensors", "a world needs at least one sensor")
        if self.eval_counts:
            _check_eval_counts(self.eval_counts)
            planned = self.labelled_total_planned()
            if planned > self.sites:
                raise ConfigError("sites", f"{self.sites} sites cannot hold the {planned} labelled sites that "
                                           "eval_counts (x eval_scale) and labelled_per_class plan: raise sites "
                                           "(--world.sites) or lower eval_scale")

    def split_counts(self) -> dict[str, dict[str, int]] | None:
        """Labelled sites per split and primary class when ``eval_counts`` is set, else None.

        train: ``labelled_per_class`` for every class; val / test: ``eval_counts`` x ``eval_scale``.
        """
        if not self.eval_counts:
            return None
        classes = (*FACILITY_CLASSES, NEGATIVE)
        counts = {"train": {c: self.labelled_per_class for c in classes}}
        for split in EVAL_SPLITS:
            counts[split] = {c: int(round(self.eval_counts[split][c] * self.eval_scale)) for c in classes}
        return counts

    def labelled_total_planned(self) -> int:
        """Labelled sites the profile asks for, before capping at ``sites``."""
        counts = self.split_counts()
        if counts is None:
            return 7 * self.labelled_per_class
        return sum(sum(by_class.values()) for by_class in counts.values())

    @property
    def labelled_total(self) -> int:
        return min(self.sites, self.labelled_total_planned())

    def replace(self, **changes: Any) -> WorldProfile:
        return dataclasses.replace(self, **changes)


def _check_eval_counts(eval_counts: dict[str, dict[str, int]]) -> None:
    classes = {*FACILITY_CLASSES, NEGATIVE}
    if set(eval_counts) != set(EVAL_SPLITS):
        raise ConfigError("eval_counts", f"needs exactly the splits {', '.join(EVAL_SPLITS)}, got "
                                         f"{', '.join(sorted(eval_counts)) or 'none'}")
    for split, by_class in eval_counts.items():
        if set(by_class) != classes:
            missing, extra = sorted(classes - set(by_class)), sorted(set(by_class) - classes)
            raise ConfigError(f"eval_counts.{split}", f"needs one count per class ({', '.join(sorted(classes))});"
                                                      f" missing: {missing or 'none'}, unknown: {extra or 'none'}")
        for cls, n in by_class.items():
            if n < 0:
                raise ConfigError(f"eval_counts.{split}.{cls}", f"{n} is negative")


def load_profile(name_or_path: str) -> WorldProfile:
    """A built-in profile by name, or the single profile in a YAML file of the same form."""
    if name_or_path in PROFILES:
        path = Path(str(resources.files("jointssl.world") / "profiles.yaml"))
        raw = read_yaml(path)
        return from_dict(WorldProfile, raw[name_or_path], source=str(path), prefix=name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        raise ConfigError("world.profile", f"{name_or_path!r} is neither one of {', '.join(PROFILES)} nor a file")
    return from_dict(WorldProfile, read_yaml(path), source=str(path))
