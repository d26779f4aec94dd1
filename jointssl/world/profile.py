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

PROFILES = ("test", "demo", "bench", "science")


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

    def __post_init__(self) -> None:
        if abs(self.footprint_m / 60.0 - round(self.footprint_m / 60.0)) > 1e-6:
            raise ConfigError("footprint_m", f"{self.footprint_m} is not a multiple of 60 m")
        if abs(10.0 / self.scene_gsd_m - round(10.0 / self.scene_gsd_m)) > 1e-6:
            raise ConfigError("scene_gsd_m", f"{self.scene_gsd_m} does not divide 10 m")
        if not self.sensors:
            raise ConfigError("sensors", "a world needs at least one sensor")

    @property
    def labelled_total(self) -> int:
        return min(self.sites, 7 * self.labelled_per_class)

    def replace(self, **changes: Any) -> WorldProfile:
        return dataclasses.replace(self, **changes)


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
