"""Read what jointssl needs from STAC item JSON as real catalogs publish it.

Catalogs disagree: pystac >= 1.12 writes ``proj:code`` ("EPSG:32614"), Planetary Computer and Earth
Search items carry ``proj:epsg``, others only ``proj:wkt2`` or ``proj:projjson``; pystac-client's item
migration drops ``proj:epsg`` from items that had it, projection fields may sit on the item or on each
asset, and Planetary Computer's Sentinel-1 GRD items carry no ``proj:*`` at all. Times come as
``datetime`` or, with ``datetime: null``, as ``start_datetime``/``end_datetime``, sometimes with a space
instead of ``T``. Footprints can be empty, or MultiPolygons with an empty part. These functions accept
all of them and say plainly, naming the item, when an item cannot be used.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

Item = dict[str, Any]


class UnusableItem(ValueError):
    """The item lacks something the chip loader needs; ``reason`` is a short, countable key."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        super().__init__(f"{reason}: {detail}")


def item_epsg(item: Item, asset: str | None = None) -> int:
    """EPSG code of an item (or of one asset, whose own proj fields take precedence), from ``proj:epsg``,
    ``proj:code`` ("EPSG:n"), ``proj:wkt2`` or ``proj:projjson``, wherever the item puts them."""
    for props in _proj_sources(item, asset):
        code = _epsg_of(props)
        if code is not None:
            return code
    raise UnusableItem(
        "no_projection",
        f"item {item.get('id')} has none of proj:epsg, proj:code, proj:wkt2, proj:projjson (e.g. Sentinel-1 GRD "
        "items are not on a map grid): it cannot be stacked without terrain correction",
    )


def is_geographic(epsg: int) -> bool:
    """Whether EPSG:``epsg`` is a geographic (degree) CRS rather than a projected (metric) one."""
    return _crs_is_geographic(epsg)


def _epsg_of(props: dict[str, Any]) -> int | None:
    code = props.get("proj:epsg")
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    text = props.get("proj:code")
    if isinstance(text, str) and text.upper().startswith("EPSG:") and text.split(":", 1)[1].isdigit():
        return int(text.split(":", 1)[1])
    for key in ("proj:wkt2", "proj:projjson"):
        value = props.get(key)
        if value:
            return _epsg_from_definition(value if isinstance(value, str) else json.dumps(value, sort_keys=True))
    return None


@lru_cache(maxsize=256)
def _epsg_from_definition(text: str) -> int | None:
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        return CRS.from_user_input(json.loads(text) if text.lstrip().startswith("{") else text).to_epsg()
    except (CRSError, ValueError):
        return None


@lru_cache(maxsize=256)
def _crs_is_geographic(epsg: int) -> bool:
    from pyproj import CRS

    return bool(CRS.from_epsg(epsg).is_geographic)


def with_epsg(item: Item) -> Item:
    """A copy of ``item`` with ``proj:epsg`` filled from ``proj:code`` (stackstac reads only proj:epsg)."""
    out = {**item, "properties": dict(item.get("properties", {}))}
    out["properties"].setdefault("proj:epsg", item_epsg(item))
    assets = {}
    for key, asset in item.get("assets", {}).items():
        asset = dict(asset)
        code = asset.get("proj:code")
        if isinstance(code, str) and code.upper().startswith("EPSG:"):
            asset.setdefault("proj:epsg", int(code.split(":", 1)[1]))
        assets[key] = asset
    out["assets"] = assets
    return out


def item_datetime(item: Item) -> datetime:
    """The item's time (``datetime``, else ``start_datetime``), timezone-aware (naive times are UTC);
    'T' or a space between date and time, 'Z' or an offset."""
    props = item.get("properties", {})
    text = props.get("datetime") or props.get("start_datetime")
    if not text or not isinstance(text, str):
        raise UnusableItem("no_datetime", f"item {item.get('id')} has neither datetime nor start_datetime")
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UnusableItem("bad_datetime", f"item {item.get('id')} has an unreadable time {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def item_footprint(item: Item) -> Any:
    """The item's footprint as a valid shapely geometry (its ``geometry``, else its ``bbox``).

    Repaired where that is safe: empty parts of a Multi* geometry are dropped and an invalid
    (e.g. self-intersecting) polygon goes through ``shapely.make_valid``. A footprint with nothing
    left raises :class:`UnusableItem` ``bad_footprint`` naming the item."""
    import shapely
    from shapely.geometry import shape

    geometry = item.get("geometry")
    try:
        if geometry:
            geom = shape(_drop_empty_parts(geometry))
        else:
            west, south, east, north = [float(v) for v in item["bbox"][:4]]
            geom = shapely.box(west, south, east, north)
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
    except (KeyError, IndexError, TypeError, ValueError, shapely.errors.ShapelyError) as err:
        raise UnusableItem("bad_footprint", f"item {item.get('id')} has an unreadable footprint: {err}") from None
    if geom.is_empty or geom.area <= 0:
        raise UnusableItem("bad_footprint", f"item {item.get('id')} has an empty footprint")
    return geom


def _drop_empty_parts(geometry: dict[str, Any]) -> dict[str, Any]:
    if geometry.get("type") != "MultiPolygon":
        return geometry
    parts = [p for p in geometry.get("coordinates") or [] if p and p[0]]
    return {**geometry, "coordinates": parts}


def cloud_cover(item: Item) -> float | None:
    value = item.get("properties", {}).get("eo:cloud_cover")
    return float(value) if isinstance(value, (int, float)) else None


def asset_href(item: Item, key: str) -> str:
    asset = item.get("assets", {}).get(key)
    if not asset or not asset.get("href"):
        available = ", ".join(sorted(item.get("assets", {}))) or "none"
        raise UnusableItem("missing_asset", f"item {item.get('id')} has no asset {key!r} (it has: {available})")
    return str(asset["href"])


def raster_scaling(item: Item, key: str, band_index: int = 1) -> tuple[float | None, float | None, float | None]:
    """(scale, offset, nodata) from the asset's ``raster:bands``, or Nones where it says nothing."""
    bands = item.get("assets", {}).get(key, {}).get("raster:bands") or []
    if len(bands) < band_index:
        return None, None, None
    band = bands[band_index - 1]
    return band.get("scale"), band.get("offset"), band.get("nodata")


def matches_query(item: Item, query: dict[str, dict[str, Any]]) -> bool:
    """Client-side check of STAC API ``query`` terms (some APIs, e.g. rustac, ignore them)."""
    props = item.get("properties", {})
    ops: dict[str, Callable[[Any, Any], bool]] = {
        "eq": lambda a, b: a == b,
        "neq": lambda a, b: a != b,
        "lt": lambda a, b: a is not None and a < b,
        "lte": lambda a, b: a is not None and a <= b,
        "gt": lambda a, b: a is not None and a > b,
        "gte": lambda a, b: a is not None and a >= b,
        "in": lambda a, b: a in b,
    }
    for name, terms in query.items():
        for op, expected in terms.items():
            if op not in ops:
                raise ValueError(f"query operator {op!r} on {name!r} is not supported; use one of {sorted(ops)}")
            if not ops[op](props.get(name), expected):
                return False
    return True


def _proj_sources(item: Item, asset: str | None) -> list[dict[str, Any]]:
    sources = []
    if asset is not None:
        sources.append(item.get("assets", {}).get(asset, {}))
    sources.append(item.get("properties", {}))
    sources.extend(item.get("assets", {}).values())
    return sources
