"""Read what jointssl needs from STAC item JSON as real catalogs publish it.

Catalogs disagree: pystac >= 1.12 writes ``proj:code`` ("EPSG:32614"), Planetary Computer and Earth
Search items carry ``proj:epsg``, pystac-client's item migration drops ``proj:epsg`` from items that
had it, projection fields may sit on the item or on each asset, and Sentinel-1 GRD items carry no
``proj:*`` at all. These functions accept all of them and say plainly when an item cannot be used.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

Item = dict[str, Any]


class UnusableItem(ValueError):
    """The item lacks something the chip loader needs; ``reason`` is a short, countable key."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        super().__init__(f"{reason}: {detail}")


def item_epsg(item: Item, asset: str | None = None) -> int:
    """EPSG code of an item (or of one asset, whose own proj fields take precedence)."""
    for props in _proj_sources(item, asset):
        code = props.get("proj:epsg")
        if isinstance(code, int):
            return code
        text = props.get("proj:code")
        if isinstance(text, str) and text.upper().startswith("EPSG:"):
            return int(text.split(":", 1)[1])
    raise UnusableItem(
        "no_projection",
        f"item {item.get('id')} has neither proj:epsg nor proj:code (e.g. Sentinel-1 GRD items are not "
        "on a map grid): it cannot be stacked without terrain correction",
    )


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
    props = item.get("properties", {})
    text = props.get("datetime") or props.get("start_datetime")
    if not text:
        raise UnusableItem("no_datetime", f"item {item.get('id')} has no datetime")
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


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
    ops = {
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
