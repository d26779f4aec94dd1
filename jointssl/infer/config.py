"""The ``infer`` section of a job config: what to classify, with which model, where results go.

Sensor facts come from the other sections, as for every stage: ``index.preset`` (which catalog's
collections and bands), ``index.min_coverage`` and ``index.page_size`` (co-location), ``stac.*`` (the
API), ``chips.batch_size`` / ``chips.concurrency`` / ``chips.reader`` (chip loading). What the model
needs (bands, chip sizes, GSDs) is checked against the classifier's sensor contract before any read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from jointssl.config.load import ConfigError

OPERATING_POINT_NAMES = ("f1", "precision90")
"""Named operating points (:data:`jointssl.classify.calibration.OPERATING_POINTS`; not imported here: a
config module stays free of torch)."""


@dataclass(frozen=True)
class InferConfig:
    model: str = "models:/methane-classifier@champion"
    """The classifier: an MLflow model URI (registered by 'jointssl evaluate') or an MLflow model folder.
    An alias is resolved to its version once, when a run starts: every actor, and a resumed run, uses
    that version even if the alias moves meanwhile."""
    area: str | None = field(default=None, metadata={"url": True})
    """Area of interest: a GeoJSON file (Polygon/MultiPolygon features, EPSG:4326 or with a CRS); null: use
    ``bbox`` or ``sites``."""
    bbox: list[float] | None = None
    """[west, south, east, north] in degrees when no area file is given."""
    sites: str | None = field(default=None, metadata={"url": True})
    """Explicit candidate sites instead of an area (GeoParquet, GeoJSON or CSV with site_id, lon, lat): one
    tile centred on each site, tile_id = site_id; sites without imagery are reported as such."""
    start: str | None = None
    end: str | None = None
    """Acquisition window (ISO dates, inclusive); null: open on that side."""
    modalities: list[str] | None = None
    """Sensors to read (short names or collection ids of index.preset); null: every sensor the classifier
    was trained on. A subset is allowed: the classifier runs on the sensors it gets."""
    overlap: float = field(default=0.5, metadata={"min": 0.0, "max": 0.9})
    """Fraction of a tile's side shared with its neighbour (tile stride = side x (1 - overlap)). 0.5 puts
    every point within a quarter side of some tile's centre, where a site-trained classifier sees best."""
    partition_deg: float = field(default=1.0, metadata={"min": 0.01, "max": 10.0})
    """Output partition (and planning unit): tiles whose centre falls in one cell of this many degrees
    form one GeoParquet file, written once, atomically. ~1 degree keeps a partition to a few thousand
    tiles on a full catalog (fewer, smaller files: raise it; finer resume granularity: lower it)."""
    operating_point: str | float = "f1"
    """Which of the classifier's own per-class thresholds decide a detection (summary counts, map, the
    ``detected`` column, the candidates file): 'f1' (the threshold maximising validation F1) or
    'precision90' (validation precision >= 0.9; a class validation could not support is not detected),
    or a number: one threshold on the calibrated probability for every class. The probabilities
    themselves are always written. A classifier registered without operating points uses 0.5."""
    threshold: float | None = field(default=None, metadata={"min": 0.0, "max": 1.0})
    """Explicit override: one threshold for every class, whatever ``operating_point`` says (null: use
    ``operating_point``)."""
    ood_detections: bool = False
    """Count tiles marked ``out_of_distribution`` (imagery unlike the classifier's training inputs) as
    detections; by default they are kept, scored and marked, but not detections."""
    batch_size: int = field(default=64, metadata={"min": 1})
    """Tiles per model forward (per map_batches call of a predictor actor)."""
    concurrency: int | None = field(default=None, metadata={"min": 1})
    """Predictor actors, each holding the model once; null: one per GPU with GPUs, else what the CPUs
    hold after the planners, the chip loaders and one free CPU for Ray Data's own tasks."""
    use_gpu: bool | None = None
    """Predict on GPUs; null: when the Ray cluster has any."""
    gpus_per_actor: float = field(default=1.0, metadata={"min": 0.01})
    """GPUs a predictor actor reserves when predicting on GPUs (fractions pack actors on one GPU)."""
    cpus_per_actor: float = field(default=0.25, metadata={"min": 0.05})
    """CPUs a CPU predictor actor reserves: a scheduling claim, kept fractional so that on small machines
    planners, loaders and Ray Data's tasks still fit (a stage holding every CPU stalls the stream)."""
    torch_threads: int | None = field(default=None, metadata={"min": 1})
    """Intra-op threads of a CPU predictor; null: 1 when chip loading shares the machine's cores (the
    loaders keep the others busy), which measured faster than 2 on 2 cores."""
    planners: int = field(default=1, metadata={"min": 1})
    """Planning actors (STAC searches + co-location per partition cell); searches are fast next to chip
    reads, so one keeps ahead unless the catalog is slow or the area has many cells."""
    block_tiles: int = field(default=16, metadata={"min": 1})
    """Tiles per side of a planning block: tiles are co-located and streamed in blocks of up to
    block_tiles^2 neighbours, so the chip loader reads one window per item for a whole block."""
    object_store_mib: int | None = field(default=None, metadata={"min": 16})
    """Object store memory the stream may hold at once (Ray Data's resource limit): bounds the chips
    waiting between stages, so memory stays flat however large the area. null: 16 predictor batches of
    chips per predictor actor, at least 256 MiB (see :func:`jointssl.infer.resources.stream_budget_mib`;
    Ray's own default is a share of the whole object store)."""
    incremental: bool = False
    """Predict only tiles with imagery newer than the area's watermark, then advance it (the CLI's
    --incremental sets this)."""
    watermarks: str | None = field(default=None, metadata={"url": True})
    """Where per-area watermarks live (one JSON object per area); null: <out>/_watermarks."""
    out: str | None = field(default=None, metadata={"url": True})
    """Where predictions go (one folder per run, GeoParquet partitions); null: <storage.root>/inference/<run.name>."""
    progress_every_s: float = field(default=5.0, metadata={"min": 0.1})
    """Seconds between progress lines on the console."""
    embedding_cache: str | bool = "auto"
    """Per-sensor embedding cache (:mod:`jointssl.infer.embedding_cache`): 'auto' (on for incremental runs,
    where most tiles keep their NAIP item), 'on' (also full runs, e.g. the first pass that fills it) or
    'off' (YAML's bare on / off read as true / false are taken as 'on' / 'off'). The output is the same
    either way."""
    embedding_cache_url: str | None = field(default=None, metadata={"url": True})
    """Where the cache lives; null: <infer.out or its default>/_embeddings."""
    embedding_cache_versions: int = field(default=2, metadata={"min": 1})
    """Encoder versions kept per sensor (the current one and the most recently used others)."""
    channels_last: bool | None = None
    """Encoders and chips in channels_last memory format; null: on GPUs only (on the measured CPU it cost
    4-14 % more CPU per tile than the default layout, docs/benchmarks.md; on GPUs it is what tensor-core
    convolutions want)."""
    precision: str = "auto"
    """Encoder precision: 'auto' (= 'fp32') or 'bf16' (autocast of the encoders, for GPUs: faster, but it moved
    probabilities by up to 0.13 on the test world's classifier, whose thresholds were calibrated in float32)."""
    compile: bool = False
    """torch.compile each encoder in the predictors (off: it did not pay on the measured CPU, see
    docs/benchmarks.md)."""
    freeze: bool | None = None
    """CPU predictors: encode with each encoder traced, frozen and optimised for inference
    (:func:`jointssl.infer.forward.freeze_encoders`: the same embeddings within float32 rounding, 1.1-1.5x less
    CPU per encoder call on the measured CPU, ~0.4 s of CPU per encoder to prepare, in the background).
    null: from the predictor's FREEZE_AFTER_BATCHES-th batch on (a run of fewer batches never pays for it);
    true: from its first batches; false: never. Not with ``compile``, nor on GPUs."""

    def __post_init__(self) -> None:
        given = [k for k, v in (("area", self.area), ("bbox", self.bbox), ("sites", self.sites)) if v is not None]
        if len(given) > 1:
            raise ConfigError(given[1], f"give one of area, bbox or sites, not {' and '.join(given)}")
        if self.bbox is not None:
            if len(self.bbox) != 4:
                raise ConfigError("bbox", f"expected [west, south, east, north], got {len(self.bbox)} numbers")
            west, south, east, north = self.bbox
            if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
                raise ConfigError("bbox", f"{self.bbox} is not [west, south, east, north] with west < east and "
                                  "south < north, in degrees (-180..180, -90..90)")
        if isinstance(self.operating_point, str) and self.operating_point not in OPERATING_POINT_NAMES:
            try:
                object.__setattr__(self, "operating_point", float(self.operating_point))
            except ValueError:
                raise ConfigError("operating_point", f"{self.operating_point!r} is not one of "
                                  f"{', '.join(OPERATING_POINT_NAMES)} or a number in [0, 1]") from None
        if isinstance(self.operating_point, float) and not 0.0 <= self.operating_point <= 1.0:
            raise ConfigError("operating_point", f"{self.operating_point} is not a probability in [0, 1]")
        if isinstance(self.embedding_cache, bool):
            object.__setattr__(self, "embedding_cache", "on" if self.embedding_cache else "off")
        if self.embedding_cache not in ("auto", "on", "off"):
            raise ConfigError("embedding_cache", f"{self.embedding_cache!r} is not one of auto, on, off")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError("precision", f"{self.precision!r} is not one of auto, fp32, bf16")
        if self.modalities is not None and not self.modalities:
            raise ConfigError("modalities", "give at least one modality, or null for the classifier's own")
        for key in ("start", "end"):
            value = getattr(self, key)
            if value is not None:
                _check_date(key, value)
        if self.start and self.end and _as_utc(self.start) > _as_utc(self.end):
            raise ConfigError("end", f"{self.end} is before start {self.start}")


def _check_date(key: str, value: str) -> None:
    try:
        _as_utc(value)
    except ValueError:
        raise ConfigError(key, f"{value!r} is not an ISO date or datetime (e.g. 2023-01-31)") from None


def _as_utc(text: str) -> datetime:
    from datetime import timezone

    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def cache_enabled(infer: InferConfig) -> bool:
    """Whether a run uses the embedding cache ('auto': incremental runs only)."""
    return infer.embedding_cache == "on" or (infer.embedding_cache == "auto" and infer.incremental)
