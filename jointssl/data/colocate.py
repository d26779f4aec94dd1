"""The co-location index: for each site and modality, the one STAC item whose image becomes its chip.

Few requests: sites are grouped into grid cells (``group_cell_deg``) and each cell costs one paged
search per modality, with a bbox covering all of its sites' chips, instead of one request per site.
Each site then takes, from its cell's items, those whose footprint holds at least ``min_coverage`` of
its chip (the rest of the chip is read as nodata and masked), pass the modality's item filter and can
serve the modality (:func:`refusal`), and picks one by the modality's time policy. A site that ends with
no item is kept with the reason and counted: later stages train and infer on the modalities a site has.

Reasons: ``no_item``, ``partial_cover``, ``too_cloudy``, and the products that cannot serve, refused
here rather than failing at chip time: the preset's ``refuse`` (e.g. ``not_terrain_corrected`` for
Sentinel-1 GRD), ``no_projection``, ``geographic_grid`` (a degree grid where chips are metric),
``missing_band`` (an asset of the modality's bands or quality mask is absent), ``bad_radiometry``.
Each refusal's message (naming the item and, where the preset says, the collection that would serve)
is kept in the summary. Items whose footprint cannot be repaired (:func:`~jointssl.stac.items.item_footprint`)
are left out of every site and counted per item (``bad_footprints``) instead of stopping the job.

Output rows (one per site x modality): site_id, modality, collection, status ('ok' or a reason),
item_id, datetime, cloud_cover, epsg, hrefs (JSON asset -> href), item (the full item JSON:
provenance, and what the chip loader stacks without asking the API again), radiometry (the rule that
decides the item's scale/offset, :func:`jointssl.sensors.radiometry.item_rule`).
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jointssl.sensors.radiometry import item_rule
from jointssl.sensors.spec import Modality
from jointssl.stac.items import (
    Item,
    UnusableItem,
    cloud_cover,
    is_geographic,
    item_datetime,
    item_epsg,
    item_footprint,
)
from jointssl.stac.search import SearchRequest, search_items

log = logging.getLogger(__name__)

METERS_PER_DEGREE = 111_320.0
INDEX_COLUMNS = ["site_id", "modality", "collection", "status", "item_id", "datetime", "cloud_cover", "epsg",
                 "hrefs", "item", "radiometry"]
MAX_LISTED_ITEMS = 20
"""Item ids listed per modality in the summary's bad_footprints (the count is always complete)."""


@dataclass
class IndexResult:
    rows: pd.DataFrame
    requests: int
    """STAC searches issued (cache hits excluded)."""
    missing: dict[str, Counter[str]] = field(default_factory=dict)
    """modality -> reason -> number of sites."""
    refusals: dict[str, dict[str, str]] = field(default_factory=dict)
    """modality -> reason -> the first message of that reason (names an item and, where known, what would serve)."""
    bad_footprints: dict[str, list[str]] = field(default_factory=dict)
    """modality -> ids of items left out because their footprint is empty or cannot be repaired."""

    def summary(self) -> dict[str, Any]:
        sites = self.rows["site_id"].nunique()
        ok = self.rows[self.rows["status"] == "ok"]
        return {
            "sites": int(sites),
            "searches": self.requests,
            "searches_per_1000_sites": round(1000.0 * self.requests / max(sites, 1), 1),
            "missing": {m: dict(c) for m, c in self.missing.items()},
            "refusals": {m: dict(r) for m, r in self.refusals.items() if r},
            "radiometry": {str(m): {str(k): int(v) for k, v in g.value_counts().sort_index().items()}
                           for m, g in ok.groupby("modality")["radiometry"]},
            "bad_footprints": {m: {"items": len(ids), "ids": ids[:MAX_LISTED_ITEMS]}
                               for m, ids in self.bad_footprints.items() if ids},
            "complete_sites": int(
                (self.rows.assign(ok=self.rows["status"] == "ok").groupby("site_id")["ok"].all()).sum()
            ),
        }


def build_index(
    sites: pd.DataFrame,
    modalities: list[Modality],
    client: Any,
    window: tuple[str | None, str | None] = (None, None),
    group_cell_deg: float = 1.0,
    page_size: int = 200,
    cache_dir: Path | None = None,
    stats: Any = None,
    min_coverage: float = 0.95,
) -> IndexResult:
    """Co-locate every site with one item per modality (see the module docstring)."""
    rows: list[dict[str, Any]] = []
    searches = 0
    missing: dict[str, Counter[str]] = {}
    refusals: dict[str, dict[str, str]] = {}
    bad_footprints: dict[str, list[str]] = {}
    frame = sites.assign(
        start=[window[0] if _is_missing(v) else v for v in sites.get("start", [None] * len(sites))],
        end=[window[1] if _is_missing(v) else v for v in sites.get("end", [None] * len(sites))],
    )
    frame = frame.assign(cell=[_cell(lon, lat, group_cell_deg) for lon, lat in zip(frame["lon"], frame["lat"])])
    for modality in modalities:
        reasons: Counter[str] = Counter()
        checked: dict[str, tuple[str, str] | None] = {}  # item id -> (reason, message) or None: usable
        bad: dict[str, None] = {}
        half_m = modality.chip_extent_m / 2.0
        for (_, start, end), group in frame.groupby(["cell", "start", "end"], dropna=False, sort=True):
            start = None if _is_missing(start) else start
            end = None if _is_missing(end) else end
            boxes = [_chip_bbox(lon, lat, half_m) for lon, lat in zip(group["lon"], group["lat"])]
            request = SearchRequest(
                collection=modality.collection,
                bbox=_union(boxes),
                datetime=_interval(start, end),
                query=_query(modality),
                page_size=page_size,
            )
            cached = cache_dir is not None and (cache_dir / request.collection / f"{request.key()}.json").exists()
            items = search_items(client, request, cache_dir=cache_dir, stats=stats)
            searches += 0 if cached else 1
            reference = _reference(modality, start, end)
            footprints = Footprints(items)
            bad.update(dict.fromkeys(footprints.bad))
            texts: dict[int, str] = {}  # id(item) -> its JSON: neighbouring sites often take the same item
            for site, box in zip(group.itertuples(index=False), boxes):
                row = _choose(site.site_id, modality, footprints, box, reference, min_coverage, texts, checked)
                reasons[row["status"]] += row["status"] != "ok"
                rows.append(row)
        missing[modality.name] = Counter({k: v for k, v in reasons.items() if v})
        refusals[modality.name] = _first_messages(checked, reasons)
        bad_footprints[modality.name] = list(bad)
        for reason, message in refusals[modality.name].items():
            log.warning("%s: %d sites refused (%s): %s", modality.name, reasons[reason], reason, message)
        if bad:
            log.warning("%s: %d items left out for their footprint (e.g. %s)", modality.name, len(bad), next(iter(bad)))
        log.info("%s: %d of %d sites co-located", modality.name,
                 sum(1 for r in rows if r["modality"] == modality.name and r["status"] == "ok"), len(frame))
    return IndexResult(pd.DataFrame(rows, columns=INDEX_COLUMNS), searches, missing, refusals, bad_footprints)


def _choose(site_id: str, modality: Modality, footprints: Footprints, box: tuple[float, float, float, float],
            reference: datetime | None, min_coverage: float, texts: dict[int, str],
            checked: dict[str, tuple[str, str] | None]) -> dict[str, Any]:
    row: dict[str, Any] = {"site_id": site_id, "modality": modality.name, "collection": modality.collection}
    candidates, reason = [], "no_item"
    for item, coverage in footprints.meeting(box):  # in search order: the last item's reason stands
        if coverage <= 0.0:
            continue
        if coverage < min_coverage:
            reason = "partial_cover"
            continue
        max_cc = modality.item_filter.max_cloud_cover
        if max_cc is not None and (cloud_cover(item) or 0.0) > max_cc:
            reason = "too_cloudy"
            continue
        key = str(item.get("id"))
        if key not in checked:
            checked[key] = refusal(item, modality)
        refused = checked[key]
        if refused is not None:
            reason = refused[0]
            continue
        candidates.append(item)
    if not candidates:
        return {**row, "status": reason, **dict.fromkeys(INDEX_COLUMNS[4:])}
    best = min(candidates, key=lambda item: _rank(modality, item, reference))
    hrefs = {key: asset["href"] for key, asset in best.get("assets", {}).items() if "href" in asset}
    if id(best) not in texts:
        texts[id(best)] = json.dumps(best, sort_keys=True)
    return {
        **row,
        "status": "ok",
        "item_id": best["id"],
        "datetime": item_datetime(best).isoformat(),
        "cloud_cover": cloud_cover(best),
        "epsg": item_epsg(best),
        "hrefs": json.dumps(hrefs, sort_keys=True),
        "item": texts[id(best)],
        "radiometry": item_rule(best, modality),
    }


def refusal(item: Item, modality: Modality) -> tuple[str, str] | None:
    """Why ``item`` cannot serve ``modality`` as (reason, message), or None when it can: the preset's
    ``refuse`` for the product, no map projection, a geographic (degree) grid, a band or mask asset it
    lacks, an unreadable time or radiometry field."""
    name = f"item {item.get('id')} of {modality.collection}"
    if modality.refuse is not None:
        serve = f"; use {modality.refuse.serve_with} instead" if modality.refuse.serve_with else ""
        return modality.refuse.reason, f"{name}: {modality.refuse.detail}{serve}"
    try:
        epsg = item_epsg(item)
        item_datetime(item)
        item_rule(item, modality)
    except UnusableItem as err:
        return err.reason, f"{name}: {err}"
    if is_geographic(epsg):
        return "geographic_grid", (f"{name} is on a geographic grid (EPSG:{epsg}); {modality.name} chips are cut on a "
                                   f"metric grid of {modality.target_gsd_m} m pixels: use a collection on a map "
                                   "projection (e.g. UTM)")
    needed = [b.asset for b in modality.bands] + ([modality.quality.asset] if modality.quality else [])
    absent = [a for a in dict.fromkeys(needed) if not item.get("assets", {}).get(a, {}).get("href")]
    if absent:
        have = ", ".join(sorted(item.get("assets", {}))) or "none"
        return "missing_band", f"{name} lacks asset(s) {', '.join(absent)} of {modality.name} (it has: {have})"
    return None


def _first_messages(checked: dict[str, tuple[str, str] | None], reasons: Counter[str]) -> dict[str, str]:
    """reason -> the first refusal message, for the reasons that decided at least one site."""
    out: dict[str, str] = {}
    for value in checked.values():
        if value is not None and reasons.get(value[0]) and value[0] not in out:
            out[value[0]] = value[1]
    return out


def _rank(modality: Modality, item: Item, reference: datetime | None) -> tuple[float | str, ...]:
    when = item_datetime(item)
    distance = abs((when - reference).total_seconds()) if reference else 0.0
    by: dict[str, tuple[float | str, ...]] = {
        "least_cloudy": (cloud_cover(item) or 0.0, distance, item["id"]),
        "closest": (distance, cloud_cover(item) or 0.0, item["id"]),
        "newest": (-when.timestamp(), item["id"]),
    }
    return by[modality.time.strategy]


def _reference(modality: Modality, start: str | None, end: str | None) -> datetime | None:
    if modality.time.reference:
        return _parse(modality.time.reference)
    if start and end:
        a, b = _parse(start), _parse(end)
        return a + (b - a) / 2
    return _parse(end) if end else (_parse(start) if start else None)


class Footprints:
    """The footprints of a search's items (geometry, else bbox; repaired where safe by
    :func:`~jointssl.stac.items.item_footprint`), built once, and for a chip box the items that meet it
    with the fraction of the box each covers. Only items whose footprint's bounds meet the box are
    intersected (the others cover nothing): a group's sites each meet a few of its items. Items whose
    footprint cannot be repaired are left out; their ids are in ``bad``."""

    def __init__(self, items: list[Item]):
        import shapely

        self.items: list[Item] = []
        self.bad: list[str] = []
        shapes = []
        for item in items:
            try:
                shapes.append(item_footprint(item))
            except UnusableItem:
                self.bad.append(str(item.get("id")))
                continue
            self.items.append(item)
        self.shapes = np.array(shapes, dtype=object)  # [N]
        self.bounds = shapely.bounds(self.shapes).reshape(-1, 4) if shapes else np.zeros((0, 4))  # [N 4]

    def meeting(self, box: tuple[float, ...]) -> list[tuple[Item, float]]:
        """(item, coverage of ``box``) for the items whose footprint's bounds meet ``box``, in search order."""
        import shapely

        west, south, east, north = box
        b = self.bounds
        hit = np.flatnonzero((b[:, 0] <= east) & (b[:, 2] >= west) & (b[:, 1] <= north) & (b[:, 3] >= south))
        if not len(hit):
            return []
        chip = shapely.box(*box)
        area = chip.area
        if area <= 0:
            return [(self.items[k], 0.0) for k in hit]
        covered = shapely.area(shapely.intersection(self.shapes[hit], chip)) / area  # [h]
        return [(self.items[k], float(c)) for k, c in zip(hit, covered)]


def _chip_bbox(lon: float, lat: float, half_m: float) -> tuple[float, float, float, float]:
    dlat = half_m / METERS_PER_DEGREE
    dlon = half_m / (METERS_PER_DEGREE * max(math.cos(math.radians(lat)), 1e-6))
    return (lon - dlon, lat - dlat, lon + dlon, lat + dlat)


def _union(boxes: Sequence[tuple[float, ...]]) -> tuple[float, float, float, float]:
    arr = np.asarray(boxes)
    return (float(arr[:, 0].min()), float(arr[:, 1].min()), float(arr[:, 2].max()), float(arr[:, 3].max()))


def _cell(lon: float, lat: float, size: float) -> tuple[int, int]:
    return (math.floor(lon / size), math.floor(lat / size))


def _query(modality: Modality) -> dict[str, dict[str, Any]] | None:
    """Server-side terms. max_cloud_cover is deliberately not among them: it is checked per site, so a
    site whose only items are cloudy is reported as 'too_cloudy' rather than 'no_item' on every API."""
    return {k: dict(v) for k, v in modality.item_filter.query.items()} or None


def _interval(start: str | None, end: str | None) -> str | None:
    if not start and not end:
        return None
    return f"{_rfc3339(start) if start else '..'}/{_rfc3339(end, end_of_day=True) if end else '..'}"


def _rfc3339(text: str, end_of_day: bool = False) -> str:
    if "T" in text:
        return text
    return f"{text}T23:59:59Z" if end_of_day else f"{text}T00:00:00Z"


def _parse(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value in ("None", "nan", "")
