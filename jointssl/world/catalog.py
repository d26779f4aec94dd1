"""STAC Items and Collections for the world, in the shape Planetary Computer publishes them.

Why both ``proj:code`` and ``proj:epsg``: pystac >= 1.12 (projection extension v2) writes
``proj:code``, while stackstac and the real catalogs' items still read/carry ``proj:epsg``; the world
serves both kinds of client. Per-asset ``proj:shape``/``proj:transform`` describe the 20/60 m bands
of Sentinel-2, whose grids differ from the item's 10 m grid. Item ids follow each mission's naming
(NAIP quarter quads, Sentinel-2 MGRS tiles, Sentinel-1 absolute orbits and datatakes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pystac
from pyproj import Transformer
from pystac.extensions.eo import Band as EOBand
from pystac.extensions.eo import EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension

from jointssl.sensors import Modality
from jointssl.world.acquisitions import Acquisition, CollectionFacts
from jointssl.world.canvas import Bounds
from jointssl.world.raster import RasterAsset, RenderedItem
from jointssl.world.sites import Site

COG_MEDIA_TYPE = pystac.MediaType.COG  # image/tiff; application=geotiff; profile=cloud-optimized
SAT_EXTENSION = "https://stac-extensions.github.io/sat/v1.0.0/schema.json"
SAR_EXTENSION = "https://stac-extensions.github.io/sar/v1.0.0/schema.json"
PROJECTION_V1 = "https://stac-extensions.github.io/projection/v1.1.0/schema.json"
"""What items with ``proj:epsg`` and no ``proj:code`` declare (projection v2 has no ``proj:epsg``), as Earth
Search v1 does; Planetary Computer declares v1.0.0, whose fields these items also keep to."""


@dataclass(frozen=True)
class ItemStyle:
    """Where a catalog puts an item's fields (see jointssl.world.dialect)."""

    scale_offset: tuple[float, float] | None
    """Written into each measurement asset's raster:bands; null: not published."""
    asset_proj: bool = True
    """proj:shape/proj:transform on each asset too."""
    proj_code: bool = True
    """proj:code (projection v2) next to proj:epsg."""


def item_id(scheme: str, site: Site, acq: Acquisition, bounds: Bounds, gsd: float) -> str:
    """A mission-style item id for the acquisition (``scheme`` from collections.yaml)."""
    t = acq.datetime
    if scheme == "naip_quad":
        lat_deg, lon_deg = int(math.floor(site.lat)), int(math.floor(-site.lon))
        row = min(7, int((lat_deg + 1 - site.lat) * 8))
        col = min(7, int((site.lon + lon_deg + 1) * 8))
        sub_r, sub_c = int((lat_deg + 1 - site.lat) * 16) % 2, int((site.lon + lon_deg + 1) * 16) % 2
        quadrant = ("n", "s")[sub_r] + ("w", "e")[sub_c]
        zone = bounds.epsg % 100
        cell = f"{lat_deg:02d}{lon_deg:03d}{row * 8 + col + 1:02d}"
        return f"{site.state.lower()}_m_{cell}_{quadrant}_{zone}_{round(gsd * 100):03d}_{t:%Y%m%d}"
    platform = (acq.platform or "").upper().replace("SENTINEL-", "S")
    if scheme == "s2_mgrs":
        processed = t + timedelta(hours=4, seconds=(acq.absolute_orbit * 37) % 7200)
        tile = mgrs_tile(site.lon, site.lat, bounds)
        return f"{platform}_MSIL2A_{t:%Y%m%dT%H%M%S}_R{acq.relative_orbit:03d}_T{tile}_{processed:%Y%m%dT%H%M%S}"
    if scheme == "s1_grd":
        stop = t + timedelta(seconds=25)
        datatake = (acq.absolute_orbit * 2654435761 + int(t.timestamp())) % 0xFFFFFF
        return (f"{platform}_IW_GRDH_1SDV_{t:%Y%m%dT%H%M%S}_{stop:%Y%m%dT%H%M%S}"
                f"_{acq.absolute_orbit:06d}_{datatake:06X}_rtc")
    raise ValueError(f"unknown id scheme {scheme!r} in collections.yaml")


def mgrs_tile(lon: float, lat: float, bounds: Bounds) -> str:
    """The MGRS 100 km square (e.g. '14SQB') holding the footprint's centre, from its UTM coordinates."""
    zone = bounds.epsg % 100
    band = "CDEFGHJKLMNPQRSTUVWX"[min(19, max(0, int((lat + 80) // 8)))]
    east = 0.5 * (bounds.west + bounds.east)
    north = 0.5 * (bounds.south + bounds.north)
    column_letters = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")[(zone - 1) % 3]
    row_letters = "ABCDEFGHJKLMNPQRSTUV" if zone % 2 else "FGHJKLMNPQRSTUVABCDE"
    col = column_letters[max(0, min(7, int(east // 100_000) - 1))]
    row = row_letters[int(north // 100_000) % 20]
    return f"{zone}{band}{col}{row}"


def build_item(rendered: RenderedItem, item_id_: str, acq: Acquisition, facts: CollectionFacts, modality: Modality,
               hrefs: dict[str, str], site: Site, style: ItemStyle | None = None) -> pystac.Item:
    """A STAC Item for one rendered acquisition; ``hrefs`` maps asset key -> absolute COG URL; ``style``:
    where fields sit (the world's own by default: scale/offset from ``modality``, proj on item and assets)."""
    style = style or ItemStyle((modality.scale, modality.offset))
    finest = min(rendered.assets, key=lambda a: a.gsd)
    geometry, bbox = footprint_wgs84(finest.bounds)
    properties: dict[str, Any] = {}
    if facts.platform:
        properties["platform"] = acq.platform
    if facts.constellation:
        properties["constellation"] = facts.constellation
    if facts.instruments:
        properties["instruments"] = list(facts.instruments)
    item = pystac.Item(item_id_, geometry, bbox, acq.datetime.replace(tzinfo=None), properties,
                       collection=modality.collection)
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    if style.proj_code:
        proj.code = f"EPSG:{finest.bounds.epsg}"
    else:
        item.stac_extensions = [PROJECTION_V1 if "/projection/" in url else url for url in item.stac_extensions]
    item.properties["proj:epsg"] = finest.bounds.epsg  # what stackstac and the real catalogs read
    proj.shape = list(finest.shape)
    proj.transform = list(finest.transform)[:6]
    proj.bbox = [finest.bounds.west, finest.bounds.south, finest.bounds.east, finest.bounds.north]
    item.properties.update(facts.extra_properties)
    item.properties.update({k: v for k, v in rendered.properties.items() if v is not None})
    item.properties["jointssl:site_id"] = site.site_id
    optical = any(b.center_wavelength_um for b in modality.bands)
    if optical:
        EOExtension.ext(item, add_if_missing=True)
    RasterExtension.add_to(item)
    if any(k.startswith("sat:") for k in item.properties):
        item.stac_extensions.append(SAT_EXTENSION)
    if any(k.startswith("sar:") for k in item.properties):
        item.stac_extensions.append(SAR_EXTENSION)
    for asset in rendered.assets:
        item.add_asset(asset.key, _stac_asset(asset, hrefs[asset.key], modality, style))
    return item


def _stac_asset(asset: RasterAsset, href: str, modality: Modality, style: ItemStyle) -> pystac.Asset:
    out = pystac.Asset(href, title=asset.title, media_type=COG_MEDIA_TYPE, roles=list(asset.roles))
    out.extra_fields["gsd"] = asset.gsd
    if style.asset_proj:
        out.extra_fields["proj:shape"] = list(asset.shape)
        out.extra_fields["proj:transform"] = list(asset.transform)[:6]
    by_name = {b.name: b for b in modality.bands}
    bands = [by_name.get(n) for n in asset.band_names]
    if all(b is not None and b.center_wavelength_um for b in bands):
        EOExtension.ext(out).bands = [
            EOBand.create(name=b.asset if len(bands) == 1 else b.name, common_name=b.common_name,
                          center_wavelength=b.center_wavelength_um)
            for b in bands if b is not None
        ]
    scale, offset = style.scale_offset if style.scale_offset and all(b is not None for b in bands) else (1.0, 0.0)
    data_type = DataType(asset.data.dtype.name)
    RasterExtension.ext(out).bands = [
        RasterBand.create(
            nodata=asset.nodata,
            data_type=data_type,
            spatial_resolution=asset.gsd,
            scale=scale if scale != 1.0 else None,
            offset=offset if offset != 0.0 else None,
        )
        for _ in asset.band_names
    ]
    return out


def footprint_wgs84(bounds: Bounds) -> tuple[dict[str, Any], list[float]]:
    """GeoJSON polygon and bbox in EPSG:4326 of UTM ``bounds`` (corners and edge midpoints)."""
    to_ll = Transformer.from_crs(bounds.epsg, 4326, always_xy=True)
    xs = [bounds.west, bounds.east, bounds.east, bounds.west]
    ys = [bounds.south, bounds.south, bounds.north, bounds.north]
    lon, lat = to_ll.transform(xs, ys)
    ring = [[round(x, 7), round(y, 7)] for x, y in zip(lon, lat)]
    ring.append(ring[0])
    bbox = [min(p[0] for p in ring), min(p[1] for p in ring), max(p[0] for p in ring), max(p[1] for p in ring)]
    return {"type": "Polygon", "coordinates": [ring]}, bbox


def build_collection(modality: Modality, facts: CollectionFacts, bboxes: list[list[float]],
                     times: list[datetime]) -> pystac.Collection:
    """The Collection of ``modality`` with the extent of its items and summaries of its bands."""
    if bboxes:
        spatial = [min(b[0] for b in bboxes), min(b[1] for b in bboxes),
                   max(b[2] for b in bboxes), max(b[3] for b in bboxes)]
        temporal: list[datetime | None] = [min(times).replace(tzinfo=None), max(times).replace(tzinfo=None)]
    else:
        spatial, temporal = [-180.0, -90.0, 180.0, 90.0], [None, None]
    extent = pystac.Extent(pystac.SpatialExtent([spatial]), pystac.TemporalExtent([temporal]))
    providers = [pystac.Provider(p["name"], roles=[pystac.ProviderRole(r) for r in p["roles"]])
                 for p in facts.providers]
    collection = pystac.Collection(modality.collection, facts.description, extent, title=facts.title,
                                   license=facts.license, providers=providers)
    summaries: dict[str, Any] = {"gsd": sorted({b.native_gsd_m for b in modality.bands})}
    if facts.platform:
        summaries["platform"] = list(facts.platform)
    if facts.constellation:
        summaries["constellation"] = [facts.constellation]
    if facts.instruments:
        summaries["instruments"] = list(facts.instruments)
    if any(b.center_wavelength_um for b in modality.bands):
        summaries["eo:bands"] = [
            {"name": b.name, "common_name": b.common_name, "center_wavelength": b.center_wavelength_um}
            for b in modality.bands
        ]
    collection.summaries = pystac.Summaries(summaries)
    collection.extra_fields["item_assets"] = {
        asset: {"type": COG_MEDIA_TYPE, "roles": ["data"],
                "bands": [{"name": b.name} for b in modality.bands if b.asset == asset]}
        for asset in modality.assets
    }
    return collection


WORLD_CATALOG_ID = "jointssl-world"


def item_links(root_url: str, collection_url: str) -> list[dict[str, str]]:
    """The links of a world item, as real catalogs publish them: its collection (also its parent) and the
    root catalog. No ``self``: items live in ndjson files, so an item has no URL of its own until a STAC
    API serves it (and the API writes its own links)."""
    return [{"rel": "collection", "href": collection_url, "type": "application/json"},
            {"rel": "parent", "href": collection_url, "type": "application/json"},
            {"rel": "root", "href": root_url, "type": "application/json"}]


def collection_links(root_url: str, collection_url: str) -> list[dict[str, str]]:
    """A world collection's links: itself, and the root catalog as root and parent."""
    return [{"rel": "self", "href": collection_url, "type": "application/json"},
            {"rel": "root", "href": root_url, "type": "application/json"},
            {"rel": "parent", "href": root_url, "type": "application/json"}]


def root_catalog(root_url: str, collection_urls: dict[str, str]) -> dict[str, Any]:
    """The world's root catalog (``stac/catalog.json``): one child link per collection."""
    links = [{"rel": "self", "href": root_url, "type": "application/json"},
             {"rel": "root", "href": root_url, "type": "application/json"}]
    links += [{"rel": "child", "href": url, "type": "application/json", "title": cid}
              for cid, url in collection_urls.items()]
    return {"type": "Catalog", "stac_version": pystac.get_stac_version(), "id": WORLD_CATALOG_ID,
            "description": "A synthetic world rendered by 'jointssl world'", "links": links}
