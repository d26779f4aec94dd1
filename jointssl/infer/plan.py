"""Planning partition cells: which tiles exist there and which STAC item feeds each tile's chips.

Cells are planned in search groups (``index.group_cell_deg``, as the co-location index groups sites): a
group costs one paged search per modality, with a bbox covering the area's part of its cells, and
each cell takes the items that meet it. Tiles exist only where imagery does: grid tiles whose chip is covered by
the footprints of some modality's items (``index.min_coverage``), or the candidate sites of the cell.
Each tile is then co-located with one item per modality by :func:`jointssl.data.colocate.build_index`
itself (same coverage rule, cloud filter and time policy as training), answered from the items already
fetched for the cell (:class:`PrefetchedCatalog`) instead of new requests.

Incremental runs (``since`` set): only items acquired after ``since`` *trigger* tiles. A triggered tile
takes, per sensor, the best *new* item that covers it, else the best item of the whole window (a new
Sentinel-2 scene is classified together with the best older NAIP and Sentinel-1 items): the prediction
reflects what is new. An incremental run searches each group once, as a full run does (the whole
window), and tells the new items by their acquisition time: the trigger and the fallback come from the
same answer (a watermark earlier than the window's start takes a second search from the watermark).

Output blocks (pandas, one row per tile): ``tile_id``, ``cell``, ``cell_tiles`` (tiles of the cell, so
the writer knows when a partition is complete), ``cell_newest`` (newest triggering acquisition, '' if none:
the watermark), ``lon``/``lat``/``epsg``/``x``/``y`` (centre), and per modality ``m_item`` (item JSON or
None) and ``m_reason`` ('ok' or why there is none). A cell without tiles yields one *marker* row
(``tile_id`` '' and ``cell_tiles`` 0; a group's markers come as one block) so the writer can
record it as done.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from jointssl.infer.tiles import Cell, TileGrid, chip_boxes, coverage, grid_tiles, site_tiles
from jointssl.sensors.spec import Modality
from jointssl.stac.items import Item, item_datetime

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

log = logging.getLogger(__name__)

MARKER_ID = ""
"""tile_id of a cell's marker row (a cell with no tiles)."""


@dataclass(frozen=True)
class PlanSettings:
    modalities: list[Modality]
    grid: TileGrid
    window: tuple[str | None, str | None]
    """Acquisition window (ISO start, end; None: open)."""
    since: str | None
    """ISO datetime of the area's watermark: only newer imagery triggers tiles (None: all imagery)."""
    min_coverage: float
    page_size: int
    block_tiles: int


def tile_columns(modalities: Sequence[Modality]) -> list[str]:
    base = ["tile_id", "cell", "cell_tiles", "cell_newest", "lon", "lat", "epsg", "x", "y"]
    return base + [f"{m.name}_{k}" for m in modalities for k in ("item", "reason")]


class CellPlanner:
    """``map_batches`` callable (an actor: one STAC client per actor): cell groups -> blocks of planned tiles.

    An input row is one search group: ``cells`` (JSON list of cell ids) and, in site mode, ``sites``
    (JSON: cell id -> [[site_id, lon, lat], ...])."""

    def __init__(self, stac_url: str, timeout_s: float, max_retries: int, settings: PlanSettings,
                 area_wkb: bytes | None):
        from jointssl.stac.client import open_client

        self.client, self.stats = open_client(stac_url, timeout_s, max_retries)
        self.settings = settings
        self.area = None
        if area_wkb is not None:
            from shapely import from_wkb

            self.area = from_wkb(area_wkb)

    def __call__(self, groups: pd.DataFrame) -> Iterator[pd.DataFrame]:
        deg = self.settings.grid.cell_deg
        for row in groups.itertuples(index=False):
            cells = [Cell.parse(c, deg) for c in json.loads(row.cells)]
            sites = {c: pd.DataFrame(v, columns=["site_id", "lon", "lat"]) for c, v in json.loads(row.sites).items()
                     } if row.sites else None
            yield from plan_group(self.client, self.settings, cells, self.area, sites)


def plan_group(client: Any, s: PlanSettings, cells: list[Cell], area: Any,
               sites: dict[str, pd.DataFrame] | None) -> Iterator[pd.DataFrame]:
    """The tile blocks of a group of cells, from one search per modality (see the module docstring);
    ``sites`` (cell id -> candidate sites) switches to site mode. Cells without tiles come last, as
    one block of marker rows."""
    from shapely.geometry import box

    regions: dict[str, Any] = {}
    candidates: dict[str, pd.DataFrame] = {}
    bounds: dict[str, tuple[float, float, float, float]] = {}
    for cell in cells:
        if sites is not None:
            tiles = site_tiles(sites.get(cell.id, pd.DataFrame(columns=["site_id", "lon", "lat"])))
            if tiles.empty:
                continue
            candidates[cell.id] = tiles
            bounds[cell.id] = _bounds_with_margin(tiles["lon"].to_numpy(), tiles["lat"].to_numpy(), s.grid.side_m)
        else:
            region = area.intersection(box(*cell.bounds))
            if region.is_empty:
                continue
            regions[cell.id] = region
            west, south, east, north = region.bounds
            bounds[cell.id] = _bounds_with_margin(np.array([west, east]), np.array([south, north]), s.grid.side_m)
    markers: list[pd.DataFrame] = []
    if bounds:
        every = np.array(list(bounds.values()))
        bbox = (float(every[:, 0].min()), float(every[:, 1].min()), float(every[:, 2].max()), float(every[:, 3].max()))
        searched = _group_items(client, s, bbox)
        trigger = PrefetchedCatalog(searched, newer_than=s.since)
        planned: list[pd.DataFrame] = []
        for cell in cells:
            if cell.id not in bounds:
                continue
            found = _plan_cell(s, cell, regions.get(cell.id), candidates.get(cell.id), bounds[cell.id], trigger)
            if found is None:
                markers.append(marker(s, cell, trigger.newest(bounds[cell.id])))
                continue
            tiles, newest = found
            tiles = tiles.assign(cell=cell.id, cell_tiles=len(tiles), cell_newest=newest or "")
            planned += list(_blocks(tiles, s.grid, s.block_tiles))
        if planned:
            catalogs = [trigger]
            if s.since:  # triggered tiles fall back to the best imagery of the whole window
                catalogs.append(PrefetchedCatalog(searched if _searched_whole_window(s) else _group_items(
                    client, s, bbox, s.window[0])))
            yield from _colocated_chunks(pd.concat(planned, ignore_index=True), s, catalogs)
    markers += [marker(s, cell, None) for cell in cells if cell.id not in bounds]
    if markers:
        yield pd.concat(markers, ignore_index=True)


def _group_items(client: Any, s: PlanSettings, bbox: tuple[float, float, float, float], start: str | None = None
                 ) -> dict[str, list[Item]]:
    """Collection -> the servable items meeting ``bbox``: one search per modality from ``start``, by default
    the window's start (or the watermark, when that is earlier), to the window's end."""
    begin = start if start is not None else (s.window[0] if _searched_whole_window(s) else s.since)
    return {m.collection: _servable(m, _search(client, s, m, bbox, begin, s.window[1])) for m in s.modalities}


def _searched_whole_window(s: PlanSettings) -> bool:
    """Whether one search of the whole window also finds everything newer than the watermark (the usual
    case: the watermark is inside the window), so an incremental run searches once per group and tells
    the new items by their time; a watermark before the window's start needs a search of its own."""
    start = s.window[0]
    if not s.since or not start:
        return True
    first = (_interval(start, None) or "").split("/")[0]  # a bare date: its midnight (UTC)
    return _utc(s.since) >= _utc(first)


def _utc(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _plan_cell(s: PlanSettings, cell: Cell, region: Any, candidates: pd.DataFrame | None,
               bounds: tuple[float, float, float, float], trigger: PrefetchedCatalog
               ) -> tuple[pd.DataFrame, str | None] | None:
    """(the cell's tiles, its newest triggering acquisition), or None when it has no tiles."""
    items = {m.name: trigger.search([m.collection], bounds).features for m in s.modalities}
    footprints = {name: _union(found) for name, found in items.items()}
    if candidates is None:  # grid mode: tiles where some sensor's footprints cover the chip
        from shapely import union_all

        shapes = [f for f in footprints.values() if f is not None]
        if not shapes:
            return None
        candidates = grid_tiles(s.grid, cell, region.intersection(union_all(shapes)))
        candidates = candidates[_covered(candidates, s, footprints)]
    elif s.since:  # site mode, incremental: the sites that new imagery covers
        candidates = candidates[_covered(candidates, s, footprints)]
    if candidates.empty:
        return None
    times = [_iso(i) for found in items.values() for i in found]
    return candidates, (max(times) if times else None)


def _colocated_chunks(tiles: pd.DataFrame, s: PlanSettings, catalogs: list[PrefetchedCatalog]
                      ) -> Iterator[pd.DataFrame]:
    """Planned tiles (block order, any number of cells) co-located in chunks of one block's size: few
    build_index calls when cells hold a handful of tiles each, bounded frames when they hold many."""
    size = s.block_tiles * s.block_tiles
    for start in range(0, len(tiles), size):
        yield colocate_block(tiles.iloc[start:start + size], s, catalogs)


def colocate_block(block: pd.DataFrame, s: PlanSettings, catalogs: Sequence[PrefetchedCatalog]) -> pd.DataFrame:
    """One item per tile and modality, by the index's own rules (build_index over the block's tiles,
    grouped by partition cell so each tile is matched against the items of its own cell only).

    ``catalogs`` are tried in order per tile and modality: the first that co-locates an item wins, else
    the last one's reason stands (incremental runs: new imagery first, then the whole window). A later
    catalog is asked only about the (tile, modality) pairs the earlier ones left without an item: a tile's
    answer does not depend on the other tiles asked with it (each is matched against the items meeting
    its own chip)."""
    out = block.reset_index(drop=True)
    for m in s.modalities:
        out[f"{m.name}_item"], out[f"{m.name}_reason"] = pd.Series([None] * len(out), dtype=object), "no_item"
    todo = {m.name: np.ones(len(out), dtype=bool) for m in s.modalities}  # [N] per modality: no item yet
    for k, catalog in enumerate(catalogs):
        last = k == len(catalogs) - 1
        ask = [m for m in s.modalities if todo[m.name].any() and (last or catalog.items.get(m.collection))]
        # (an earlier catalog without a sensor's items would only say 'no_item', which a later one overrides)
        if not ask:
            continue
        if all(todo[m.name].all() for m in ask):
            answers = _ask(out, np.arange(len(out)), ask, catalog, s)  # every tile: one build_index
        else:
            answers = {}
            for m in ask:
                answers.update(_ask(out, np.flatnonzero(todo[m.name]), [m], catalog, s))
        for m in ask:
            rows, status, items = answers[m.name]
            found = status == "ok"
            take = slice(None) if last else found
            out.loc[rows[take], f"{m.name}_item"] = items[take]
            out.loc[rows[take], f"{m.name}_reason"] = status[take]
            todo[m.name][rows[found]] = False
    for m in s.modalities:
        out[f"{m.name}_item"] = out[f"{m.name}_item"].where(out[f"{m.name}_reason"] == "ok", None)
    return out[tile_columns(s.modalities)].reset_index(drop=True)


def _ask(tiles: pd.DataFrame, rows: np.ndarray, modalities: Sequence[Modality], catalog: PrefetchedCatalog,
         s: PlanSettings) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """build_index over the tiles ``rows`` [n]: m -> (rows [n], status [n], item JSON or None [n])."""
    from jointssl.data.colocate import build_index

    ids = tiles["tile_id"].to_numpy()[rows]
    sites = pd.DataFrame({"site_id": ids, "lon": tiles["lon"].to_numpy()[rows], "lat": tiles["lat"].to_numpy()[rows]})
    index = build_index(sites, list(modalities), catalog, window=s.window, group_cell_deg=s.grid.cell_deg,
                        page_size=s.page_size, min_coverage=s.min_coverage).rows
    out = {}
    for m in modalities:
        found = index[index["modality"] == m.name].set_index("site_id")
        status = pd.Series(ids).map(found["status"]).fillna("no_item").to_numpy(dtype=object)
        out[m.name] = (rows, status, pd.Series(ids).map(found["item"]).to_numpy(dtype=object))
    return out


def marker(s: PlanSettings, cell: Cell, newest: str | None) -> pd.DataFrame:
    """The one row that says 'this cell has no tiles' (and what its newest acquisition was)."""
    row: dict[str, Any] = {"tile_id": MARKER_ID, "cell": cell.id, "cell_tiles": 0, "cell_newest": newest or "",
                           "lon": np.nan, "lat": np.nan, "epsg": 0, "x": np.nan, "y": np.nan}
    for m in s.modalities:
        row[f"{m.name}_item"], row[f"{m.name}_reason"] = None, "no_tile"
    return pd.DataFrame([row], columns=tile_columns(s.modalities))


class PrefetchedCatalog:
    """The pystac-client surface :func:`build_index` uses (``search(...).pages_as_dicts()``), answered
    from items already fetched for a cell with the same collection, window and query: co-location of
    many tile blocks then costs no further requests."""

    def __init__(self, items: dict[str, list[Item]], newer_than: str | None = None):
        if newer_than is not None:  # STAC intervals include their start: keep strictly newer acquisitions
            items = {c: [i for i in v if _iso(i) > newer_than] for c, v in items.items()}
        self.items = items
        self.bboxes = {c: np.array([i.get("bbox", [np.nan] * 4)[:4] for i in v], dtype=float).reshape(-1, 4)
                       for c, v in items.items()}

    def conforms_to(self, *_: Any) -> bool:
        return False  # no server-side query here; build_index re-checks query terms on the client

    def search(self, collections: list[str], bbox: Sequence[float], **_: Any) -> _Answer:
        found: list[Item] = []
        west, south, east, north = bbox
        for c in collections:
            b = self.bboxes.get(c)
            if b is None or not len(b):
                continue
            hit = (b[:, 0] <= east) & (b[:, 2] >= west) & (b[:, 1] <= north) & (b[:, 3] >= south)
            found.extend(self.items[c][k] for k in np.flatnonzero(hit))
        return _Answer(found)

    def newest(self, bbox: Sequence[float]) -> str | None:
        """Newest acquisition (UTC ISO) among the items meeting ``bbox``."""
        times = [_iso(i) for i in self.search(list(self.items), bbox).features]
        return max(times) if times else None


@dataclass(frozen=True)
class _Answer:
    features: list[Item]

    def pages_as_dicts(self) -> Iterator[dict[str, Any]]:
        yield {"type": "FeatureCollection", "features": self.features}


def _search(client: Any, s: PlanSettings, m: Modality, bbox: tuple[float, float, float, float],
            start: str | None, end: str | None) -> list[Item]:
    from jointssl.stac.search import SearchRequest, search_items

    query = {k: dict(v) for k, v in m.item_filter.query.items()} or None
    request = SearchRequest(collection=m.collection, bbox=bbox, datetime=_interval(start, end), query=query,
                            page_size=s.page_size)
    return search_items(client, request)


def _servable(m: Modality, items: list[Item]) -> list[Item]:
    """The items the index would not refuse for ``m`` (jointssl.data.colocate.refusal: GRD for an RTC sensor,
    no projection, a degree grid, a missing band): a refused item never plans a tile nor becomes its item."""
    from jointssl.data.colocate import refusal

    kept = [i for i in items if refusal(i, m) is None]
    if len(kept) < len(items):
        log.info("%s: %d of %d items refused for planning", m.name, len(items) - len(kept), len(items))
    return kept


def _interval(start: str | None, end: str | None) -> str | None:
    """RFC 3339 interval of an ISO window; a bare end date includes that whole day (as the index does)."""
    if not start and not end:
        return None

    def stamp(text: str, end_of_day: bool) -> str:
        if "T" in text:
            return text
        return f"{text}T23:59:59Z" if end_of_day else f"{text}T00:00:00Z"

    return f"{stamp(start, False) if start else '..'}/{stamp(end, True) if end else '..'}"


def _covered(tiles: pd.DataFrame, s: PlanSettings, footprints: dict[str, Any]) -> np.ndarray:
    """[N] bool: some modality's footprints hold min_coverage of the tile's chip of that modality."""
    keep = np.zeros(len(tiles), dtype=bool)
    lon, lat = tiles["lon"].to_numpy(), tiles["lat"].to_numpy()
    for m in s.modalities:
        footprint = footprints.get(m.name)
        if footprint is not None and len(tiles):
            keep |= coverage(chip_boxes(lon, lat, m.chip_extent_m), footprint) >= s.min_coverage
    return keep


def _union(items: list[Item]) -> BaseGeometry | None:
    from shapely import union_all

    from jointssl.stac.items import UnusableItem, item_footprint

    shapes = []
    for item in items:
        try:
            shapes.append(item_footprint(item))  # repaired where safe (empty parts dropped, make_valid)
        except UnusableItem as err:
            log.warning("left out of the footprint union: %s", err)
    return union_all(shapes) if shapes else None


def _blocks(tiles: pd.DataFrame, grid: TileGrid, side: int) -> Iterator[pd.DataFrame]:
    """Spatially compact blocks of at most side x side tiles (neighbours share items and windows)."""
    col = np.floor(tiles["x"].to_numpy() / (grid.stride_m * side))
    row = np.floor(tiles["y"].to_numpy() / (grid.stride_m * side))
    order = np.lexsort((tiles["x"].to_numpy(), -tiles["y"].to_numpy(), col, -row))
    ordered = tiles.iloc[order]
    keys = list(zip(-row[order], col[order], strict=True))
    start = 0
    for k in range(1, len(ordered) + 1):
        if k == len(ordered) or keys[k] != keys[start] or k - start >= side * side:
            yield ordered.iloc[start:k]
            start = k


def _bounds_with_margin(lon: np.ndarray, lat: np.ndarray, side_m: float) -> tuple[float, float, float, float]:
    boxes = chip_boxes(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float), side_m * 1.5)
    from shapely import total_bounds

    west, south, east, north = total_bounds(boxes)
    return (float(west), float(south), float(east), float(north))


def _iso(item: Item) -> str:
    """The item's acquisition time as UTC ISO text (comparable as strings)."""
    from datetime import timezone

    when = item_datetime(item)
    when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
