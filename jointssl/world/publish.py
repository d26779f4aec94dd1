"""Generate a world: render every site with every sensor, write COGs, STAC JSON and the sites table.

Layout under ``out`` (a local path or ``s3://bucket/prefix``)::

    cogs/<collection>/<site_id>/<item_id>/<asset>.tif     Cloud-Optimized GeoTIFFs
    stac/collections/<collection>.json                     one STAC Collection per sensor
    stac/items/<collection>.ndjson                         its Items, one JSON per line (rustac, pypgstac)
    sites.parquet                                          GeoParquet: site_id, geometry, labels, split, ...
    manifest.json                                          what was generated, with which profile and seed

Every random draw of a site comes from a generator seeded by (seed, site number, collection, date),
so a site renders identically in-process or on any Ray worker, and the same seed gives byte-identical
COGs and item JSON.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from jointssl import storage
from jointssl.config.schema import JobConfig, world_url
from jointssl.sensors import Modality, load_preset
from jointssl.world.acquisitions import Acquisition, CollectionFacts, collection_facts, plan_acquisitions
from jointssl.world.aerial import render_aerial
from jointssl.world.canvas import Bounds
from jointssl.world.catalog import (
    build_collection,
    build_item,
    collection_links,
    item_id,
    item_links,
    root_catalog,
)
from jointssl.world.cog import write_cog
from jointssl.world.dialect import Dialect, load_dialect, publish
from jointssl.world.multispectral import render_multispectral
from jointssl.world.profile import WorldProfile, load_profile
from jointssl.world.raster import RenderedItem
from jointssl.world.sar import render_sar
from jointssl.world.scene import Scene, plan_site, render_scene
from jointssl.world.sites import Site, sample_sites

if TYPE_CHECKING:
    from pyproj import Transformer

log = logging.getLogger(__name__)

Renderer = Callable[[Scene, Modality, Acquisition, Bounds, np.random.Generator], RenderedItem]
RENDERERS: dict[str, Renderer] = {"aerial": render_aerial, "multispectral": render_multispectral, "sar": render_sar}
SCENE_MARGIN_M = 60.0  # latent ground beyond the footprint: room for misregistration and offset aerial tiles
AERIAL_OFFSET_M = 30.0  # aerial tiles are not aligned with the satellite grids


@dataclass
class WorldManifest:
    url: str
    profile: str
    seed: int
    sites: int
    labelled: int
    splits: dict[str, int]
    classes: dict[str, int]
    """Labelled sites per class (a multi-label site counts once per class; 'negative' for none)."""
    items: dict[str, int]
    collections: dict[str, str]
    """Collection id -> URL of its collection JSON."""
    item_files: dict[str, str]
    """Collection id -> URL of its items NDJSON."""
    sites_table: str
    dialect: str = "world"
    """How the items are published (jointssl/world/dialects.yaml)."""
    seconds: float = field(default=0.0, metadata={"volatile": True})

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("seconds")
        return json.dumps(data, indent=2) + "\n"


def resolve_profile(config: JobConfig) -> WorldProfile:
    profile = load_profile(config.world.profile)
    if config.world.sites is not None:
        profile = profile.replace(sites=config.world.sites)
    return profile


def generate_world(config: JobConfig, profile: WorldProfile | None = None, progress: bool = True) -> WorldManifest:
    """Render and publish the world ``config`` describes (``profile`` overrides the named profile)."""
    start = time.perf_counter()
    profile = profile or resolve_profile(config)
    out = world_url(config)
    if not storage.is_remote(out) and not out.startswith("file://"):
        out = os.path.abspath(out)
    seed = config.run.seed
    sites = sample_sites(profile.sites, profile.labelled_per_class, seed, profile.multilabel_fraction,
                         profile.val_fraction, profile.test_fraction, profile.split_counts())
    dialect = load_dialect(config.world.dialect)
    results = _render_all(sites, profile, seed, out, config.world.workers, progress, dialect.name)

    published = {dialect.published_id(cid): cid for cid in profile.sensors}  # published id -> world id
    by_collection: dict[str, list[dict[str, Any]]] = {cid: [] for cid in published}
    seen: set[str] = set()
    for site_items in results:
        for item in site_items:
            base, n = item["id"], 2
            while item["id"] in seen:  # two sites in one NAIP quarter quad on one day
                item["id"], n = f"{base}-{n}", n + 1
            seen.add(item["id"])
            by_collection[item["collection"]].append(item)

    collections, item_files = {}, {}
    root_url = storage.join(out, "stac", "catalog.json")
    for cid, items in by_collection.items():
        times = [datetime.fromisoformat(i["properties"]["datetime"].replace("Z", "+00:00")) for i in items]
        collection = build_collection(dialect.modality(published[cid]), published_facts(dialect, published[cid]),
                                      [i["bbox"] for i in items], times)
        collections[cid] = storage.join(out, "stac", "collections", f"{cid}.json")
        item_files[cid] = storage.join(out, "stac", "items", f"{cid}.ndjson")
        body = {**collection.to_dict(include_self_link=False), "links": collection_links(root_url, collections[cid])}
        _write_text(collections[cid], json.dumps(body, indent=2) + "\n")
        for item in items:
            item["links"] = item_links(root_url, collections[cid])
        _write_text(item_files[cid], "".join(json.dumps(i, separators=(",", ":")) + "\n" for i in items))
    _write_text(root_url, json.dumps(root_catalog(root_url, collections), indent=2) + "\n")

    table_url = storage.join(out, "sites.parquet")
    _write_bytes(table_url, sites_geoparquet(sites))
    labelled = [s for s in sites if s.labelled]
    classes: dict[str, int] = {}
    for s in labelled:
        for c in s.classes or ("negative",):
            classes[c] = classes.get(c, 0) + 1
    splits: dict[str, int] = {}
    for s in sites:
        splits[s.split] = splits.get(s.split, 0) + 1
    manifest = WorldManifest(out, config.world.profile, seed, len(sites), len(labelled), dict(sorted(splits.items())),
                             dict(sorted(classes.items())), {c: len(v) for c, v in by_collection.items()},
                             collections, item_files, table_url, dialect.name)
    _write_text(storage.join(out, "manifest.json"), manifest.to_json())
    manifest.seconds = time.perf_counter() - start
    return manifest


def render_site(site: Site, profile: WorldProfile, seed: int, out: str, dialect_name: str = "world"
                ) -> list[dict[str, Any]]:
    """Render ``site`` with every sensor of ``profile``, write its COGs under ``out`` as ``dialect_name``
    publishes them; return item dicts."""
    number = int(site.site_id.split("-")[-1])
    dialect = load_dialect(dialect_name)
    footprint = site_footprint(site, profile.footprint_m)
    rng = np.random.default_rng([seed, number, 0])
    placed = plan_site(site, _utm(site), profile.footprint_m, rng)
    scene = render_scene(footprint.buffer(SCENE_MARGIN_M), profile.scene_gsd_m, placed, site.lat, site.aridity, rng)
    items = []
    with storage.rasterio_env():  # one Env for the site's ~30 COGs (entering one per COG was ~6 % of a site)
        for c_index, (cid, plan) in enumerate(profile.sensors.items()):
            acq_rng = np.random.default_rng([seed, number, 1 + c_index])
            window = footprint
            if plan.renderer == "aerial":
                steps = acq_rng.integers(-1, 2, size=2) * AERIAL_OFFSET_M / profile.scene_gsd_m
                dx, dy = steps.round() * profile.scene_gsd_m
                window = Bounds(footprint.epsg, footprint.west + dx, footprint.south + dy,
                                footprint.east + dx, footprint.north + dy)
            for acq in plan_acquisitions(site, cid, plan.dates, profile.year, acq_rng):
                rng_date = np.random.default_rng([seed, number, 1 + c_index, 1 + acq.index])
                items.append(_render_item(site, scene, window, profile, out, dialect, cid, plan.renderer, acq,
                                          rng_date))
    return items


def _render_item(site: Site, scene: Scene, window: Bounds, profile: WorldProfile, out: str, dialect: Dialect, cid: str,
                 renderer: str, acq: Acquisition, rng: np.random.Generator) -> dict[str, Any]:
    """One acquisition of ``cid`` at ``site``: rendered, published as ``dialect``, its COGs written; the item."""
    world = load_preset_cached()[cid]
    number = int(site.site_id.split("-")[-1])
    rendered = RENDERERS[renderer](scene, world, acq, window, rng)
    publication = publish(rendered, world, dialect, number, acq.index, acq.datetime)
    rendered, pid = publication.rendered, publication.rendered.collection
    gsd = min(a.gsd for a in rendered.assets) if dialect.of(cid).native_gsd_m else profile.scene_gsd_m
    iid = item_id(collection_facts()[cid].id_scheme, site, acq, window, gsd)
    iid = iid.removesuffix("_rtc") if dialect.of(cid).grd else iid  # GRD ids carry no _rtc
    hrefs = {}
    for asset in rendered.assets:
        hrefs[asset.key] = storage.join(out, "cogs", pid, site.site_id, iid, f"{asset.key}.tif")
        write_cog(asset, hrefs[asset.key])
    item = build_item(rendered, iid, acq, published_facts(dialect, cid), publication.modality, hrefs, site,
                      publication.style)
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def published_facts(dialect: Dialect, collection: str) -> CollectionFacts:
    """collections.yaml's facts of the world's ``collection`` under the id and title ``dialect`` publishes."""
    rules, facts = dialect.of(collection), collection_facts()[collection]
    return dataclasses.replace(facts, collection=dialect.published_id(collection), title=rules.title or facts.title,
                               description=rules.description or facts.description)


def site_footprint(site: Site, footprint_m: float) -> Bounds:
    """The square footprint around the site in its UTM zone, snapped to the 60 m grid all S2 bands share."""
    x, y = _utm(site)
    west = math.floor((x - footprint_m / 2) / 60.0) * 60.0
    south = math.floor((y - footprint_m / 2) / 60.0) * 60.0
    return Bounds(site.utm_epsg, west, south, west + footprint_m, south + footprint_m)


def sites_geoparquet(sites: list[Site]) -> bytes:
    """The sites table as GeoParquet bytes (points in EPSG:4326; labels null when unlabelled)."""
    import geopandas as gpd
    from shapely.geometry import Point

    frame = gpd.GeoDataFrame(
        {
            "site_id": [s.site_id for s in sites],
            "labels": [s.labels for s in sites],
            "split": [s.split for s in sites],
            "labelled": [s.labelled for s in sites],
            "state": [s.state for s in sites],
            "utm_epsg": [s.utm_epsg for s in sites],
            "source": [s.source for s in sites],
        },
        geometry=[Point(s.lon, s.lat) for s in sites],
        crs="EPSG:4326",
    )
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def load_into_pgstac(url: str, dsn: str) -> dict[str, int]:
    """Upsert the world at ``url`` into a pgstac database (collections first, then their items)."""
    from pypgstac.db import PgstacDB
    from pypgstac.load import Methods

    manifest = json.loads(_read_text(storage.join(url, "manifest.json")))
    counts: dict[str, int] = {}
    with PgstacDB(dsn=dsn) as db:
        loader = _rfc3339_loader()(db=db)
        collections = [json.loads(_read_text(u)) for u in manifest["collections"].values()]
        loader.load_collections(iter(collections), insert_mode=Methods.upsert)
        for cid, items_url in manifest["item_files"].items():
            items = [json.loads(line) for line in _read_text(items_url).splitlines() if line.strip()]
            loader.load_items(iter(items), insert_mode=Methods.upsert)
            counts[cid] = len(items)
    return counts


# -- internals ------------------------------------------------------------------------------------------
def _rfc3339_loader() -> type:
    """pypgstac's Loader, with the time columns it derives written as RFC 3339 UTC.

    Planetary Computer writes start/end_datetime with a space ('2024-04-19 04:59:04.2+00:00'); the items keep
    that form, but pypgstac compares its partition bounds as strings, and ' ' sorts before 'T', so an item in
    that form can fall outside the bounds it sets and fail the partition's check constraint."""
    from datetime import timezone

    from pypgstac.load import Loader

    class Rfc3339Loader(Loader):  # type: ignore[misc,unused-ignore]  # Loader is Any without the pypgstac extra
        def format_item(self, item: Any) -> dict[str, Any]:
            out: dict[str, Any] = super().format_item(item)
            for key in ("datetime", "end_datetime"):
                if isinstance(out.get(key), str):
                    when = datetime.fromisoformat(out[key].replace("Z", "+00:00"))
                    when = when.replace(tzinfo=when.tzinfo or timezone.utc).astimezone(timezone.utc)
                    out[key] = when.isoformat()  # the form pypgstac gives the bounds it reads back
            return out

    return Rfc3339Loader


@lru_cache(maxsize=1)
def load_preset_cached() -> dict[str, Modality]:
    return load_preset("world")


@lru_cache(maxsize=64)
def _to_utm(epsg: int) -> Transformer:
    from pyproj import Transformer

    return Transformer.from_crs(4326, epsg, always_xy=True)


def _utm(site: Site) -> tuple[float, float]:
    x, y = _to_utm(site.utm_epsg).transform(site.lon, site.lat)
    return float(x), float(y)


def _render_all(sites: list[Site], profile: WorldProfile, seed: int, out: str, workers: int,
                progress: bool, dialect: str) -> list[list[dict[str, Any]]]:
    from tqdm import tqdm

    bar = tqdm(total=len(sites), desc="rendering sites", unit="site", disable=not progress)
    try:
        if workers <= 0:
            results = []
            for site in sites:
                results.append(render_site(site, profile, seed, out, dialect))
                bar.update(1)
            return results
        return _render_with_ray(sites, profile, seed, out, workers, bar, dialect)
    finally:
        bar.close()


def _render_with_ray(sites: list[Site], profile: WorldProfile, seed: int, out: str, workers: int,
                     bar: Any, dialect: str) -> list[list[dict[str, Any]]]:
    """One Ray task per chunk of sites; results are put back in site order, so output is unchanged."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)

    @ray.remote(num_cpus=1)
    def chunk_task(chunk: list[Site]) -> list[list[dict[str, Any]]]:
        return [render_site(s, profile, seed, out, dialect) for s in chunk]

    size = max(1, min(16, len(sites) // (4 * workers) or 1))
    chunks = [sites[i:i + size] for i in range(0, len(sites), size)]
    pending = {chunk_task.remote(chunk): k for k, chunk in enumerate(chunks)}
    done: dict[int, list[list[dict[str, Any]]]] = {}
    waiting = list(pending)
    while waiting:
        ready, waiting = ray.wait(waiting, num_returns=1)
        for ref in ready:
            k = pending[ref]
            done[k] = ray.get(ref)
            bar.update(len(chunks[k]))
    return [items for k in range(len(chunks)) for items in done[k]]


def _write_bytes(url: str, data: bytes) -> None:
    fs, path = storage.filesystem(url)
    parent = os.path.dirname(path)
    if parent and not storage.is_remote(url):
        fs.makedirs(parent, exist_ok=True)
    with fs.open(path, "wb") as fh:
        fh.write(data)


def _write_text(url: str, text: str) -> None:
    _write_bytes(url, text.encode())


def _read_text(url: str) -> str:
    fs, path = storage.filesystem(url)
    with fs.open(path, "rb") as fh:
        raw: bytes = fh.read()
    return raw.decode()
