"""How a catalog publishes the world's scenes: one rendering, stored and described as that catalog does.

A dialect (``world.dialect``: ``world``, ``planetary-computer``, ``earth-search``; facts in
``dialects.yaml``, keyed by dialect and the world's collection id) rewrites each rendered item after the
physics: asset keys and dtypes follow the preset of the same name, Sentinel-2 DNs carry the offset of
their processing-baseline era (with the baseline in the item's own fields), NAIP comes at its survey's
native GSD in NAD83 UTM, Sentinel-1 is RTC (linear gamma0) or GRD (amplitude DNs on a degree grid).
Physical values are unchanged wherever the target encoding can hold them, so the preset of the same
name reads every dialect of one world to the same chips (NAIP up to the resampling of its finer grid).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import yaml

from jointssl.config.load import ConfigError, from_dict
from jointssl.sensors import Modality, load_preset
from jointssl.world.canvas import Bounds
from jointssl.world.catalog import ItemStyle
from jointssl.world.raster import RasterAsset, RenderedItem

DIALECTS = ("world", "planetary-computer", "earth-search")


@dataclass(frozen=True)
class Era:
    """One Sentinel-2 processing-baseline era: its item fields and the offset its DNs carry."""

    fields: dict[str, Any]
    """Item properties of the era, e.g. {'s2:processing_baseline': '02.12'}."""
    offset: float
    """physical = DN * scale + offset: 0.0 before baseline 04.00, -0.1 from 04.00 (+1000 DN)."""


@dataclass(frozen=True)
class GrdEncoding:
    gain: float = field(default=1000.0, metadata={"min": 1e-6})
    """Amplitude DN = round(sqrt(linear backscatter) * gain), uint16 (uncalibrated, as GRD is)."""


@dataclass(frozen=True)
class CollectionDialect:
    """How one catalog publishes one of the world's collections (see dialects.yaml for each field)."""

    publish_as: str | None = None
    title: str | None = None
    """The published collection's title where it differs from collections.yaml's (GRD is not RTC)."""
    description: str | None = None
    native_gsd_m: list[float] = field(default_factory=list)
    nad83: bool = False
    eras: list[Era] = field(default_factory=list)
    raster_scale_offset: bool = True
    asset_proj: bool = True
    proj_code: bool = True
    time_range_s: float | None = None
    grd: GrdEncoding | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    drop_properties: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Dialect:
    name: str
    preset: str
    """Sensor preset whose asset keys, dtypes and scale the published items follow."""
    collections: dict[str, CollectionDialect] = field(default_factory=dict)

    def of(self, collection: str) -> CollectionDialect:
        return self.collections.get(collection, CollectionDialect())

    def published_id(self, collection: str) -> str:
        return self.of(collection).publish_as or collection

    def modality(self, collection: str) -> Modality:
        """The preset modality that describes ``collection`` as this dialect publishes it."""
        preset = _preset(self.preset)
        published = self.published_id(collection)
        if published not in preset:
            raise ConfigError("world.dialect", f"dialect {self.name!r} publishes {collection} as {published}, "
                              f"which preset {self.preset!r} does not describe")
        return preset[published]


@dataclass(frozen=True)
class Publication:
    """A rendered item as the dialect publishes it."""

    rendered: RenderedItem
    modality: Modality
    """The dialect preset's modality (asset keys, band metadata)."""
    style: ItemStyle
    """Where the item's fields sit (raster:bands scale/offset, proj per asset, proj:code)."""


@lru_cache(maxsize=8)
def _preset(name: str) -> dict[str, Modality]:
    """The preset of a dialect, parsed once per process: the world asks for it per rendered item (parsing its
    YAML each time was ~40 % of rendering a test world)."""
    return load_preset(name)


@lru_cache(maxsize=8)
def load_dialect(name: str) -> Dialect:
    raw = yaml.safe_load((resources.files("jointssl.world") / "dialects.yaml").read_text())
    if name not in raw:
        raise ConfigError("world.dialect", f"unknown dialect {name!r}; known: {', '.join(raw)}")
    return from_dict(Dialect, {"name": name, **raw[name]}, source="jointssl/world/dialects.yaml", prefix=name)


def publish(rendered: RenderedItem, world: Modality, dialect: Dialect, site_number: int,
            acquisition_index: int, when: datetime) -> Publication:
    """``rendered`` (stored as the world preset's ``world`` modality says) as ``dialect`` publishes it."""
    rules = dialect.of(rendered.collection)
    target = dialect.modality(rendered.collection)
    era = rules.eras[acquisition_index % len(rules.eras)] if rules.eras else None
    offset = era.offset if era else target.offset
    by_name = {b.name: b for b in target.bands}
    assets = []
    for asset in rendered.assets:
        if all(n in by_name for n in asset.band_names):
            asset = _measurement(asset, world, target, by_name, offset, rules)
        elif target.quality is not None:  # the quality map (SCL) under the catalog's key
            asset = dataclasses.replace(asset, key=target.quality.asset)
        if rules.native_gsd_m:
            asset = _regrid(asset, rules.native_gsd_m[site_number % len(rules.native_gsd_m)])
        if rules.nad83:
            asset = dataclasses.replace(asset, bounds=_nad83(asset.bounds))
        assets.append(asset)
    properties = {k: v for k, v in rendered.properties.items() if k not in rules.drop_properties}
    properties.update(rules.properties)
    if era:
        properties.update(era.fields)
    if "gsd" in properties:
        properties["gsd"] = min(a.gsd for a in assets)
    if rules.time_range_s is not None:
        properties.update(_time_range(when, rules.time_range_s))
    published = RenderedItem(dialect.published_id(rendered.collection), assets, properties)
    scale_offset = (target.scale, offset) if rules.raster_scale_offset else None
    return Publication(published, target, ItemStyle(scale_offset, rules.asset_proj, rules.proj_code))


def _measurement(asset: RasterAsset, world: Modality, target: Modality, by_name: dict[str, Any], offset: float,
                 rules: CollectionDialect) -> RasterAsset:
    """Re-encode stored values: world DNs -> physical -> the target's DNs (exact for integer DN shifts)."""
    keys = {by_name[n].asset for n in asset.band_names}
    if len(keys) != 1:
        raise ConfigError("world.dialect", f"bands {asset.band_names} of one world asset map to assets {sorted(keys)}")
    if target == world and offset == world.offset and rules.grd is None:
        return asset  # the world as it renders itself
    stored = asset.data.astype(np.float64)  # [B H W]
    nodata = np.zeros(stored.shape, dtype=bool) if world.nodata is None else stored == world.nodata
    physical = stored * world.scale + world.offset
    if rules.grd is not None:
        dn = np.sqrt(np.clip(physical, 0.0, None)) * rules.grd.gain
        bounds, res = _degree_grid(asset.bounds, asset.shape)
        data = _to_dtype(dn, target, nodata)
        return dataclasses.replace(asset, key=keys.pop(), data=data, bounds=bounds, nodata=target.nodata, pixel=res)
    dn = (physical - offset) / target.scale
    return dataclasses.replace(asset, key=keys.pop(), data=_to_dtype(dn, target, nodata), nodata=target.nodata)


def _to_dtype(dn: np.ndarray, target: Modality, nodata: np.ndarray) -> np.ndarray:
    """[B H W] float DNs -> the target dtype, clear of its nodata value; nodata pixels stay nodata."""
    dtype = np.dtype(target.dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        low = info.min + 1 if target.nodata == info.min else info.min
        out: np.ndarray = np.clip(np.rint(dn), low, info.max).astype(dtype)
    else:
        out = dn.astype(dtype)
    if target.nodata is not None:
        out[nodata] = target.nodata
    return out


def _regrid(asset: RasterAsset, gsd: float) -> RasterAsset:
    """The asset resampled (nearest, pixel centres) to ``gsd`` over the same bounds: a finer native grid."""
    b = asset.bounds
    width, height = round((b.east - b.west) / gsd), round((b.north - b.south) / gsd)
    cols = np.minimum(((np.arange(width) + 0.5) * gsd / asset.gsd).astype(int), asset.shape[1] - 1)
    rows = np.minimum(((np.arange(height) + 0.5) * gsd / asset.gsd).astype(int), asset.shape[0] - 1)
    data = asset.data[:, rows[:, None], cols[None, :]]  # [B H W] -> [B h' w']
    return dataclasses.replace(asset, data=np.ascontiguousarray(data), gsd=gsd)


def _nad83(bounds: Bounds) -> Bounds:
    """The same UTM zone in NAD83 (EPSG:269zz); NAD83 and WGS 84 coordinates agree to ~1 m, and PROJ
    without its grids treats them as equal, so the coordinates stay."""
    zone = bounds.epsg % 100
    if bounds.epsg - zone != 32600:
        raise ConfigError("world.dialect", f"nad83 needs a northern WGS 84 UTM zone, got EPSG:{bounds.epsg}")
    return dataclasses.replace(bounds, epsg=26900 + zone)


def _degree_grid(bounds: Bounds, shape: tuple[int, int]) -> tuple[Bounds, tuple[float, float]]:
    """An approximate EPSG:4326 grid over ``bounds`` with ``shape`` pixels (GRD's geolocation grid)."""
    from pyproj import Transformer

    to_ll = Transformer.from_crs(bounds.epsg, 4326, always_xy=True)
    lon, lat = to_ll.transform([bounds.west, bounds.east, bounds.east, bounds.west],
                               [bounds.south, bounds.south, bounds.north, bounds.north])
    ll = Bounds(4326, min(lon), min(lat), max(lon), max(lat))
    return ll, ((ll.east - ll.west) / shape[1], (ll.north - ll.south) / shape[0])


def _time_range(when: datetime, half_s: float) -> dict[str, str]:
    """start/end_datetime as Planetary Computer writes them: '2024-04-19 04:59:04.220006+00:00'."""
    half = timedelta(seconds=half_s)
    return {"start_datetime": _pc_time(when - half), "end_datetime": _pc_time(when + half)}


def _pc_time(t: datetime) -> str:
    text = t.isoformat(sep=" ", timespec="microseconds")
    return text if t.tzinfo else text + "+00:00"


def validate(name: str) -> str:
    """``name`` if it is a known dialect whose preset describes every collection it publishes."""
    dialect = load_dialect(name)
    for collection in dialect.collections:
        dialect.modality(collection)
    return name
