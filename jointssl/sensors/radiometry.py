"""Scale, offset and nodata of each band of each item, decided from the item's own metadata.

Stored values become physical ones as ``physical = stored * scale + offset``. One preset value per
collection is not enough: Sentinel-2 L2A products of processing baseline 04.00 and later carry +1000 DN
(``BOA_ADD_OFFSET``), earlier ones do not, and a search window can hold both. Order of precedence, per
band:

1. ``raster:bands``: the band's asset lists ``scale`` and/or ``offset`` (Earth Search v1); a value it
   leaves out takes the raster extension's default (scale 1, offset 0). Rule ``raster:bands``.
2. ``offset_rules`` of the modality (preset data): the first rule whose field the item's properties
   carry decides the offset, with the preset's scale: Planetary Computer ``s2:processing_baseline``
   compared as a version (>= 04.00: offset -0.1), Earth Search v0 ``sentinel:boa_offset_applied`` and
   ``sentinel:processing_baseline``. Rule ``<field>>=<version>``, ``<field><<version>``, ``<field>=true``
   or ``<field>=false``.
3. The preset's ``scale`` and ``offset``. Rule ``preset``.

Nodata: the asset's ``raster:bands`` nodata, else the preset's. The rule of an item (:func:`item_rule`)
is recorded in the co-location index and counted in its summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jointssl.sensors.spec import Band, Modality, OffsetRule
from jointssl.stac.items import Item, UnusableItem

PRESET_RULE = "preset"
RASTER_BANDS_RULE = "raster:bands"


@dataclass(frozen=True)
class BandScaling:
    scale: float
    offset: float
    nodata: float | None
    rule: str
    """Which rule decided scale and offset (see the module docstring)."""


def band_scaling(item: Item, modality: Modality, band: Band) -> BandScaling:
    """Scale, offset and nodata of ``band`` of ``item`` (raises :class:`UnusableItem` ``bad_radiometry``
    for a processing-baseline field that is not a version)."""
    raster = _raster_band(item, band.asset, band.index)
    nodata = raster.get("nodata", modality.nodata)
    nodata = None if nodata is None else float(nodata)
    if "scale" in raster or "offset" in raster:
        return BandScaling(float(raster.get("scale", 1.0)), float(raster.get("offset", 0.0)), nodata,
                           RASTER_BANDS_RULE)
    props = item.get("properties", {})
    for rule in modality.offset_rules:
        if props.get(rule.field) is not None:
            offset, label = _apply(rule, props[rule.field], item)
            return BandScaling(modality.scale, offset, nodata, label)
    return BandScaling(modality.scale, modality.offset, nodata, PRESET_RULE)


def item_rule(item: Item, modality: Modality) -> str:
    """The rule(s) that decide the bands of ``item``: one label, or labels joined by '+' when bands differ."""
    return "+".join(dict.fromkeys(band_scaling(item, modality, b).rule for b in modality.bands))


def version(text: str) -> tuple[int, ...]:
    """'04.00' -> (4, 0); '5.1' -> (5, 1). Raises ValueError for anything else."""
    parts = str(text).strip().split(".")
    if not parts or not all(p.isdigit() for p in parts):
        raise ValueError(f"{text!r} is not a dotted version number")
    return tuple(int(p) for p in parts)


def _apply(rule: OffsetRule, value: Any, item: Item) -> tuple[float, str]:
    if rule.at_least is None:
        carries = value is True or str(value).lower() == "true"
        return (rule.offset if carries else rule.otherwise), f"{rule.field}={'true' if carries else 'false'}"
    try:
        have, need = version(value), version(rule.at_least)
        width = max(len(have), len(need))  # '04' == '04.00'
        carries = have + (0,) * (width - len(have)) >= need + (0,) * (width - len(need))
    except ValueError as err:
        raise UnusableItem("bad_radiometry", f"item {item.get('id')}: {rule.field} {err}") from None
    return (rule.offset if carries else rule.otherwise), f"{rule.field}{'>=' if carries else '<'}{rule.at_least}"


def _raster_band(item: Item, asset: str, index: int) -> dict[str, Any]:
    bands = item.get("assets", {}).get(asset, {}).get("raster:bands") or []
    if len(bands) < index or not isinstance(bands[index - 1], dict):
        return {}
    return dict(bands[index - 1])
