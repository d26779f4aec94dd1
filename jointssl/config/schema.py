"""The configuration schema of every jointssl job: one dataclass per section.

A YAML file under ``configs/`` is an instance of :class:`JobConfig`; any key can be overridden on
the command line as ``--section.key VALUE``. Services are referenced by URL or environment only,
so one config runs on the embedded default, on the local platform and on a cloud cluster:

=============  =========================  =========================================
section.key    unset (null) means          set by the platform / a cluster through
=============  =========================  =========================================
stac.url       embedded STAC API (rustac)  ``JOINTSSL_STAC_URL``
tracking.uri   sqlite under storage.root   ``MLFLOW_TRACKING_URI``
ray.address    a local Ray started here    ``RAY_ADDRESS``
=============  =========================  =========================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from jointssl import storage
from jointssl.config.load import ConfigError
from jointssl.evaluate.config import EvaluateConfig
from jointssl.infer.config import InferConfig
from jointssl.models.config import ModelConfig
from jointssl.sensors.hrefs import parse_prefix
from jointssl.study.config import StudyConfig
from jointssl.train.config import PretrainConfig

DEFAULT_ROOT = ".jointssl/local"


@dataclass(frozen=True)
class RunConfig:
    name: str = "jointssl"
    """Run name: MLflow run name and Ray Train run name; re-using it resumes rather than restarts."""
    seed: int = field(default=0, metadata={"min": 0})
    """Seed for every random choice (world, splits, initialisation, shuffling)."""


@dataclass(frozen=True)
class StorageConfig:
    root: str = field(default=DEFAULT_ROOT, metadata={"url": True})
    """Where outputs land (world/, index/, checkpoints/, inference/): a local path or s3://bucket/prefix.
    ``JOINTSSL_STORAGE_ROOT`` replaces the default when the config leaves it unset."""

    def url(self, *parts: str) -> str:
        return storage.join(self.root, *parts)


def world_url(config: JobConfig) -> str:
    """Where the world lives: world.out, else <storage.root>/world."""
    return config.world.out or config.storage.url("world")


def index_url(config: JobConfig) -> str:
    """Where the co-location index lives: index.out, else <storage.root>/index."""
    return config.index.out or config.storage.url("index")


@dataclass(frozen=True)
class WorldConfig:
    profile: Literal["test", "demo", "bench", "science"] = "demo"
    """Size preset: 'test' is tiny (unit tests), 'demo' runs end to end in minutes, 'bench' is larger,
    'science' has an evaluation set the size of METER-ML's (jointssl study)."""
    sites: int | None = field(default=None, metadata={"min": 1})
    """Number of sites; null takes the profile's default."""
    out: str | None = field(default=None, metadata={"url": True})
    """Where COGs, STAC JSON and the sites table go; null means <storage.root>/world."""
    workers: int = field(default=0, metadata={"min": 0})
    """Parallel site rendering with Ray tasks; 0 renders in this process (fastest for tiny worlds)."""
    dialect: Literal["world", "planetary-computer", "earth-search"] = "world"
    """How the world's items are published: as the world itself, or as Planetary Computer or Earth Search v1
    publish the same scenes (asset keys, baseline eras, NAIP GSD and CRS, GRD; jointssl/world/dialects.yaml).
    Read a dialect with the preset of the same name (index.preset)."""


@dataclass(frozen=True)
class StacConfig:
    url: str | None = None
    """STAC API root URL; null uses JOINTSSL_STAC_URL, else serves the world's catalog locally (rustac)."""
    timeout_s: float = field(default=30.0, metadata={"min": 0.1})
    max_retries: int = field(default=5, metadata={"min": 0})
    """Retries of 429 / 5xx / timeouts, with exponential backoff (Retry-After honoured)."""

    def resolved_url(self) -> str | None:
        return self.url or os.environ.get("JOINTSSL_STAC_URL") or None

    def __post_init__(self) -> None:
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ConfigError("url", f"{self.url!r} is not an http(s) URL of a STAC API root")


@dataclass(frozen=True)
class IndexConfig:
    sites: str | None = field(default=None, metadata={"url": True})
    """Sites table (GeoParquet, GeoJSON or CSV with site_id, lon, lat); null: the world's sites.parquet."""
    preset: str = "world"
    """Sensor preset: world, planetary-computer, earth-search, or a path to a preset YAML."""
    href_modifier: str | None = None
    """Replaces the preset's URL signer for every modality: null keeps the preset's, 'none' reads hrefs as
    they are (mirrors, local copies), or a dotted path to a function href -> href."""
    allowed_hrefs: list[str] | None = None
    """Where asset hrefs may point: null keeps each collection's list from the preset (the catalog's storage);
    a list of ``scheme://host[/path]`` prefixes or absolute local paths replaces it (a mirror). The storage
    root and the world are always allowed; any other href is a counted skip ``href_not_allowed``."""
    modalities: list[str] = field(default_factory=lambda: ["naip", "s2", "s1"])
    """Modalities to co-locate, by short name or STAC collection id."""
    start: str | None = None
    end: str | None = None
    """Acquisition window (ISO dates) for sites that do not carry their own start/end; null: open."""
    group_cell_deg: float = field(default=1.0, metadata={"min": 0.001, "max": 90.0})
    """Sites in one grid cell of this size share one search per modality (fewer STAC requests)."""
    page_size: int = field(default=200, metadata={"min": 1, "max": 10000})
    min_coverage: float = field(default=0.95, metadata={"min": 0.01, "max": 1.0})
    """An item qualifies when its footprint holds at least this fraction of the site's chip (the rest is
    read as nodata and masked): sites near an image edge keep the modality."""
    cache: bool = True
    """Cache search responses under <index out>/cache so re-runs do not query the API again."""
    out: str | None = field(default=None, metadata={"url": True})
    """Where index.parquet and summary.json go; null: <storage.root>/index."""

    def __post_init__(self) -> None:
        for text in self.allowed_hrefs or ():
            try:
                parse_prefix(text)
            except ValueError as err:
                raise ConfigError("allowed_hrefs", str(err)) from None


@dataclass(frozen=True)
class ChipsConfig:
    reader: Literal["rasterio", "stackstac"] = "rasterio"
    """Chip reader: windowed rasterio reads of every asset, or stackstac (single-band assets only;
    multi-band assets such as NAIP's 'image' always use rasterio)."""
    require: list[str] = field(default_factory=list)
    """Modalities a site must have to be kept; others are kept with the modality marked missing."""
    batch_size: int = field(default=16, metadata={"min": 1})
    """Sites per map_batches call; all chips of a batch are read concurrently (reads are latency bound)."""
    concurrency: int | None = field(default=None, metadata={"min": 1})
    """Parallel chip-loading tasks; null: CPUs - 1 (leaves a core for the consumer on small machines)."""
    threads: int | None = field(default=None, metadata={"min": 1})
    """Concurrent window reads per chip-loading task; null: 16 from object storage or HTTP (reads wait on
    the network), 1 from local files (reads are CPU bound; more threads only contend)."""
    cache: str = "auto"
    """Chip cache for pre-training (:mod:`jointssl.data.chip_cache`), keyed by the index and the sensor
    contract: 'auto' streams a committed cache of the same index, and otherwise has the first epoch that
    reads the COGs write it when a later epoch of the run will read it; 'always' also writes it in
    one-epoch runs (for later runs); 'never' always reads the COGs and writes nothing."""
    cache_url: str | None = field(default=None, metadata={"url": True})
    """Where chip caches live (one folder per key); null: <storage.root>/chip-cache."""

    def __post_init__(self) -> None:
        if self.cache not in CACHE_MODES:
            hint = (f"; the cache's location is now chips.cache_url: {self.cache!r}"
                    if "/" in self.cache or ":" in self.cache else "")
            raise ConfigError("cache", f"{self.cache!r} is not one of: {', '.join(CACHE_MODES)}{hint}")


CACHE_MODES = ("auto", "always", "never")


def chip_cache_base(config: JobConfig) -> str:
    """Where chip caches live: chips.cache_url, else <storage.root>/chip-cache (absolute when local)."""
    url = config.chips.cache_url or config.storage.url("chip-cache")
    return url if storage.is_remote(url) else os.path.abspath(url)


@dataclass(frozen=True)
class TrackingConfig:
    uri: str | None = None
    """MLflow tracking URI; null uses MLFLOW_TRACKING_URI, else sqlite:///<storage.root>/mlflow.db."""
    experiment: str = "jointssl"


@dataclass(frozen=True)
class RayConfig:
    address: str | None = None
    """Ray cluster address; null uses RAY_ADDRESS, else starts a local Ray in this process."""
    num_cpus: int | None = field(default=None, metadata={"min": 1})
    """CPUs for a local Ray (ignored when joining a cluster); null lets Ray count them."""


@dataclass(frozen=True)
class JobConfig:
    """Every section of every job; each command reads the sections it needs."""

    run: RunConfig = field(default_factory=RunConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    world: WorldConfig = field(default_factory=WorldConfig)
    stac: StacConfig = field(default_factory=StacConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    chips: ChipsConfig = field(default_factory=ChipsConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    infer: InferConfig = field(default_factory=InferConfig)
    study: StudyConfig = field(default_factory=StudyConfig)
