"""Where the world's sites are, what they hold, and which split they belong to.

Facility sites take real US coordinates from a committed GHGRP sample (``data/ghgrp_sites.csv``,
derived once by ``scripts/derive_sites_sample.py``). CAFOs go to livestock regions; negatives go to
rural country (pipeline compressor/storage locations offset by a few km), livestock regions, and the
surroundings of facilities, so that location alone does not give the class away. Every site has a
latent class set that drives its rendering; only labelled sites publish it.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

import numpy as np

from jointssl.labels import FACILITY_CLASSES, NEGATIVE

SPLITS = ("train", "val", "test")
UNLABELLED = "unlabelled"

# Livestock regions (lon_min, lat_min, lon_max, lat_max, state): hogs, dairies, feedlots, poultry.
LIVESTOCK_REGIONS: tuple[tuple[float, float, float, float, str], ...] = (
    (-95.5, 41.6, -92.2, 43.3, "IA"),
    (-78.8, 34.6, -77.3, 35.6, "NC"),
    (-102.8, 34.3, -101.3, 36.2, "TX"),
    (-120.6, 35.9, -119.1, 37.3, "CA"),
    (-90.5, 43.2, -88.3, 44.8, "WI"),
    (-100.0, 40.3, -97.0, 41.8, "NE"),
    (-94.4, 35.9, -93.2, 36.4, "AR"),
    (-96.0, 43.6, -94.0, 45.0, "MN"),
)
# Facility pairs that share a fence in practice (METER-ML has multi-label sites such as these).
PAIRS: tuple[tuple[str, str], ...] = (
    ("landfill", "wastewater"),
    ("refinery_terminal", "wastewater"),
    ("gas_processing", "refinery_terminal"),
    ("coal_mine", "landfill"),
    ("cafo", "wastewater"),
)
# Share of unlabelled sites per latent class: facilities as common as negatives in the pool.
UNLABELLED_NEGATIVE_SHARE = 0.4


@dataclass(frozen=True)
class Site:
    site_id: str
    lon: float
    lat: float
    state: str
    classes: tuple[str, ...]
    """Latent facility classes (empty: a negative); drives rendering for every site."""
    labelled: bool
    split: str
    """'train' / 'val' / 'test' for labelled sites, 'unlabelled' otherwise."""
    source: str
    """Where the coordinate came from: 'ghgrp:<id>', 'rural:<id>+offset', 'livestock:<state>'."""

    @property
    def labels(self) -> list[str] | None:
        """Published labels: the class list for labelled sites ([] for negatives), None when unlabelled."""
        return list(self.classes) if self.labelled else None

    @property
    def primary(self) -> str:
        return self.classes[0] if self.classes else NEGATIVE

    @property
    def utm_epsg(self) -> int:
        zone = int(math.floor((self.lon + 180.0) / 6.0)) + 1
        return (32600 if self.lat >= 0 else 32700) + zone

    @property
    def aridity(self) -> float:
        """0 (humid east) .. 1 (desert): west of the 100th meridian and south of 42 N is dry."""
        west = np.clip((-self.lon - 97.0) / 12.0, 0.0, 1.0)
        south = np.clip((44.0 - self.lat) / 8.0, 0.0, 1.0)
        return float(west * (0.4 + 0.6 * south))


@dataclass(frozen=True)
class _Row:
    ghgrp_id: str
    lon: float
    lat: float
    state: str
    classes: tuple[str, ...]


def _sample_rows() -> list[_Row]:
    text = (resources.files("jointssl.world") / "data" / "ghgrp_sites.csv").read_text()
    rows = []
    for r in csv.DictReader(text.splitlines()):
        classes = tuple(c for c in r["classes"].split(";") if c)
        rows.append(_Row(r["ghgrp_id"], float(r["lon"]), float(r["lat"]), r["state"], classes))
    return rows


def sample_sites(n_sites: int, labelled_per_class: int, seed: int, multilabel_fraction: float = 0.1,
                 val_fraction: float = 0.2, test_fraction: float = 0.2,
                 split_counts: Mapping[str, Mapping[str, int]] | None = None) -> list[Site]:
    """``n_sites`` sites: up to 7 x ``labelled_per_class`` labelled (stratified splits), the rest unlabelled.

    Deterministic in ``seed``. Labelled classes are balanced by primary class (6 facility types and
    negatives), unless ``split_counts`` ({split: {class: n}}, WorldProfile.split_counts) gives the
    labelled sites of each split and primary class, e.g. METER-ML's unbalanced val / test sets. A
    ``multilabel_fraction`` of facility sites (any split) hold a second, plausible facility type.
    """
    rng = np.random.default_rng([seed, 7001])
    rows = _sample_rows()
    by_class = {c: [r for r in rows if c in r.classes] for c in FACILITY_CLASSES}
    rural = [r for r in rows if not r.classes]
    facility_rows = [r for r in rows if r.classes]

    all_classes = (*FACILITY_CLASSES, NEGATIVE)
    if split_counts is None:
        per_class = min(labelled_per_class, n_sites // len(all_classes))
        latent: list[tuple[str, bool]] = [(c, True) for c in all_classes for _ in range(per_class)]
        latent += _unlabelled(n_sites - len(latent), rng)
        split_of = _stratified_splits(latent, per_class, val_fraction, test_fraction, rng)
    else:
        planned = [(c, split) for split in SPLITS for c, n in split_counts[split].items() for _ in range(n)]
        if len(planned) > n_sites:
            raise ValueError(f"{len(planned)} labelled sites planned (split_counts) but the world has only "
                             f"{n_sites}: raise sites or lower the counts")
        latent = [(c, True) for c, _ in planned] + _unlabelled(n_sites - len(planned), rng)
        split_of = [split for _, split in planned] + [UNLABELLED] * (n_sites - len(planned))

    sites: list[Site] = []
    for k, ((primary, labelled), split) in enumerate(zip(latent, split_of)):
        classes: tuple[str, ...] = () if primary == NEGATIVE else (primary,)
        if classes and rng.random() < multilabel_fraction:
            partners = [b if a == primary else a for a, b in PAIRS if primary in (a, b)]
            classes = (primary, partners[int(rng.integers(len(partners)))])
        lon, lat, state, source = _locate(primary, classes, by_class, rural, facility_rows, rng)
        sites.append(Site(f"site-{k:05d}", lon, lat, state, classes, labelled, split, source))
    order = rng.permutation(len(sites))  # interleave classes so that any prefix is a fair sample
    return [_renumber(sites[i], j) for j, i in enumerate(order)]


def _unlabelled(n: int, rng: np.random.Generator) -> list[tuple[str, bool]]:
    """``n`` unlabelled sites' latent primary classes, negatives at UNLABELLED_NEGATIVE_SHARE."""
    all_classes = (*FACILITY_CLASSES, NEGATIVE)
    weights = np.full(len(all_classes), (1.0 - UNLABELLED_NEGATIVE_SHARE) / len(FACILITY_CLASSES))
    weights[-1] = UNLABELLED_NEGATIVE_SHARE
    return [(all_classes[k], False) for k in rng.choice(len(all_classes), size=n, p=weights)]


def _renumber(site: Site, k: int) -> Site:
    return Site(f"site-{k:05d}", site.lon, site.lat, site.state, site.classes, site.labelled, site.split, site.source)


def _stratified_splits(latent: list[tuple[str, bool]], per_class: int, val_fraction: float,
                       test_fraction: float, rng: np.random.Generator) -> list[str]:
    n_val = int(round(per_class * val_fraction))
    n_test = int(round(per_class * test_fraction))
    if per_class >= 3:
        n_val, n_test = max(1, n_val), max(1, n_test)
    pattern = ["val"] * n_val + ["test"] * n_test
    pattern += ["train"] * (per_class - len(pattern))
    splits: list[str] = []
    seen: dict[str, int] = {}
    shuffled: dict[str, list[str]] = {}
    for cls, labelled in latent:
        if not labelled:
            splits.append(UNLABELLED)
            continue
        if cls not in shuffled:
            shuffled[cls] = [pattern[i] for i in rng.permutation(len(pattern))]
        splits.append(shuffled[cls][seen.get(cls, 0)])
        seen[cls] = seen.get(cls, 0) + 1
    return splits


def _locate(primary: str, classes: tuple[str, ...], by_class: dict[str, list[_Row]], rural: list[_Row],
            facility_rows: list[_Row], rng: np.random.Generator) -> tuple[float, float, str, str]:
    if primary == "cafo":
        return _in_livestock_region(rng)
    if primary == NEGATIVE:
        choice = rng.integers(3)
        if choice == 0:
            return _in_livestock_region(rng)
        pool = rural if choice == 1 else facility_rows
        row = pool[int(rng.integers(len(pool)))]
        lon, lat = _offset(row.lon, row.lat, rng.uniform(2_000, 8_000), rng)
        kind = "rural" if choice == 1 else "near"
        return lon, lat, row.state, f"{kind}:{row.ghgrp_id}+offset"
    candidates = [r for r in by_class[primary] if set(classes) <= set(r.classes)] or by_class[primary]
    row = candidates[int(rng.integers(len(candidates)))]
    # Distinct sites may share a GHGRP facility; nudge repeats by up to 1.5 km so scenes differ.
    lon, lat = _offset(row.lon, row.lat, rng.uniform(0, 1_500), rng)
    return lon, lat, row.state, f"ghgrp:{row.ghgrp_id}"


def _in_livestock_region(rng: np.random.Generator) -> tuple[float, float, str, str]:
    x0, y0, x1, y1, state = LIVESTOCK_REGIONS[int(rng.integers(len(LIVESTOCK_REGIONS)))]
    return round(float(rng.uniform(x0, x1)), 5), round(float(rng.uniform(y0, y1)), 5), state, f"livestock:{state}"


def _offset(lon: float, lat: float, distance_m: float, rng: np.random.Generator) -> tuple[float, float]:
    bearing = rng.uniform(0, 2 * math.pi)
    dlat = distance_m * math.cos(bearing) / 111_320.0
    dlon = distance_m * math.sin(bearing) / (111_320.0 * math.cos(math.radians(lat)))
    return round(lon + dlon, 5), round(lat + dlat, 5)
