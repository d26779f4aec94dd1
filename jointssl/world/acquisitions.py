"""When and how each sensor looked at a site: dates, platform, orbit, sun geometry, season.

Dates, overpass times and orbit states come from ``collections.yaml`` (facts keyed by collection id);
the sun position is computed from date, time and latitude, since it drives illumination and the
length and direction of building and cloud shadows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import yaml

from jointssl.world.materials import greenness
from jointssl.world.sites import Site


@dataclass(frozen=True)
class CollectionFacts:
    """One entry of collections.yaml."""

    collection: str
    title: str
    description: str
    license: str
    providers: list[dict[str, Any]]
    platform: list[str] | None
    constellation: str | None
    instruments: list[str] | None
    id_scheme: str
    year_offset: int
    months: tuple[int, int]
    local_time_h: tuple[float, float]
    orbit_states: list[str]
    extra_properties: dict[str, Any] = field(default_factory=dict)


@lru_cache(maxsize=1)
def collection_facts() -> dict[str, CollectionFacts]:
    raw = yaml.safe_load((resources.files("jointssl.world") / "collections.yaml").read_text())
    return {
        cid: CollectionFacts(
            collection=cid, **{**v, "months": tuple(v["months"]), "local_time_h": tuple(v["local_time_h"])}
        )
        for cid, v in raw.items()
    }


@dataclass(frozen=True)
class Acquisition:
    collection: str
    index: int
    """0-based date number of this site and collection."""
    datetime: datetime
    """UTC acquisition time."""
    platform: str | None
    orbit_state: str | None
    relative_orbit: int
    absolute_orbit: int
    sun_elevation: float
    """Degrees above the horizon."""
    sun_azimuth: float
    """Degrees clockwise from north."""
    greenness: float
    """Vegetation greenness of the day in [0, 1] (jointssl.world.materials.greenness)."""

    @property
    def day_of_year(self) -> int:
        return self.datetime.timetuple().tm_yday


def plan_acquisitions(
    site: Site, collection: str, dates: int, year: int, rng: np.random.Generator
) -> list[Acquisition]:
    """``dates`` acquisitions of ``collection`` over ``site``, sorted by time, spread over the season window."""
    facts = collection_facts()[collection]
    y = year + facts.year_offset
    start = datetime(y, facts.months[0], 1, tzinfo=timezone.utc)
    end = datetime(y + (facts.months[1] == 12), facts.months[1] % 12 + 1, 1, tzinfo=timezone.utc)
    span_days = (end - start).days
    # stratified over the window: one date per equal slice, so seasons are covered
    days = sorted(int((k + rng.uniform(0.05, 0.95)) * span_days / dates) for k in range(dates))
    relative_orbit = int(rng.integers(1, 176))
    out = []
    for k, day in enumerate(days):
        orbit = facts.orbit_states[int(rng.integers(len(facts.orbit_states)))] if facts.orbit_states else None
        evening = orbit == "ascending" and facts.local_time_h[0] < 9
        local_h = rng.uniform(*facts.local_time_h) + (12.0 if evening else 0.0)
        utc_h = local_h - site.lon / 15.0
        when = start + timedelta(days=day, hours=utc_h)
        when = when.replace(microsecond=0)
        platform = facts.platform[int(rng.integers(len(facts.platform)))] if facts.platform else None
        elevation, azimuth = sun_position(site.lat, when.timetuple().tm_yday, local_h)
        g = greenness(when.timetuple().tm_yday, site.lat, site.aridity)
        absolute = 40_000 + (when - datetime(2020, 1, 1, tzinfo=timezone.utc)).days * 14 + relative_orbit % 14
        out.append(Acquisition(collection, k, when, platform, orbit, relative_orbit, absolute, elevation, azimuth, g))
    return out


def sun_position(lat: float, day_of_year: int, local_solar_hour: float) -> tuple[float, float]:
    """(elevation, azimuth) of the sun in degrees, from the declination/hour-angle approximation."""
    decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + day_of_year) / 365.0)
    hour = math.radians(15.0 * (local_solar_hour - 12.0))
    phi = math.radians(lat)
    sin_el = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(hour)
    el = math.asin(max(-1.0, min(1.0, sin_el)))
    cos_az = (math.sin(decl) - math.sin(el) * math.sin(phi)) / max(1e-9, math.cos(el) * math.cos(phi))
    az = math.degrees(math.acos(max(-1.0, min(1.0, cos_az))))
    if hour > 0:
        az = 360.0 - az
    return max(5.0, math.degrees(el)), az
