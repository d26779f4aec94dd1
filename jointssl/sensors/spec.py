"""What jointssl knows about a sensor, as data: one :class:`Modality` per STAC collection id.

Every sensor-specific fact the pipeline needs (asset keys, band order, resolutions, dtype, scaling,
nodata, quality masks, item filters, normalisation) lives in a preset YAML under
``jointssl/sensors/presets/`` keyed by collection id; code reads these fields and never branches on
a sensor's name. Pointing the pipeline at another catalog (Planetary Computer, Earth Search, the
project's own world) is a matter of choosing another preset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from jointssl.config.load import ConfigError
from jointssl.sensors.hrefs import parse_prefix


@dataclass(frozen=True)
class Band:
    name: str
    """Band name inside jointssl (tensor channel order follows the order of bands in the modality)."""
    asset: str
    """STAC asset key that holds this band."""
    index: int = field(default=1, metadata={"min": 1})
    """1-based band index inside the asset (NAIP's single 4-band 'image' asset has 1..4)."""
    common_name: str | None = None
    """eo:common_name (red, nir, swir16, ...), or the polarisation for SAR."""
    center_wavelength_um: float | None = None
    native_gsd_m: float = field(default=10.0, metadata={"min": 0.01})
    mean: float = 0.0
    """Normalisation mean, in physical units after scale/offset and the modality's transform."""
    std: float = field(default=1.0, metadata={"min": 1e-9})


@dataclass(frozen=True)
class QualityMask:
    asset: str
    """Asset holding a per-pixel classification (Sentinel-2 L2A: 'SCL')."""
    reject: list[int] = field(default_factory=list)
    """Class values that make a pixel invalid (e.g. SCL 0 nodata, 3 shadow, 8/9 cloud, 10 cirrus)."""
    native_gsd_m: float = 20.0


@dataclass(frozen=True)
class ItemFilter:
    max_cloud_cover: float | None = field(default=None, metadata={"min": 0.0, "max": 100.0})
    """Items with eo:cloud_cover above this are not considered (null: no limit / not an optical sensor)."""
    query: dict[str, dict[str, str | int | float]] = field(default_factory=dict)
    """Extra STAC API 'query' terms, e.g. {'sat:orbit_state': {'eq': 'descending'}}. Also re-checked
    on the client, since some APIs (rustac) ignore 'query'."""


@dataclass(frozen=True)
class TimePolicy:
    strategy: Literal["least_cloudy", "closest", "newest"] = "least_cloudy"
    """How to pick one item per site: least eo:cloud_cover (ties: closest to the reference date),
    closest to the reference date, or the newest acquisition."""
    reference: str | None = None
    """ISO date for 'closest'; null takes the middle of the search window."""


@dataclass(frozen=True)
class OffsetRule:
    """The offset of an item's DNs read from a field of the item's own properties
    (see :mod:`jointssl.sensors.radiometry`): Sentinel-2 L2A of processing baseline 04.00 and later
    carries +1000 DN (offset -0.1 after scale 0.0001), earlier baselines none."""

    field: str
    """Item property, e.g. 's2:processing_baseline' (Planetary Computer), 'sentinel:boa_offset_applied'."""
    offset: float
    """Offset when the field says the DNs carry it."""
    otherwise: float = 0.0
    """Offset when the field says they do not."""
    at_least: str | None = None
    """The field is a version ('05.10'): ``offset`` applies when it compares >= this ('04.00'). Null: the
    field is a boolean, and ``offset`` applies when it is true."""


@dataclass(frozen=True)
class Refusal:
    """Every item of this collection is refused at the index (a counted reason per site), because the
    product cannot serve the modality whatever its metadata says."""

    reason: str
    """Countable key, e.g. 'not_terrain_corrected'."""
    detail: str
    """Why, in words."""
    serve_with: str | None = None
    """A collection that would serve (named in the message), e.g. 'sentinel-1-rtc'."""


@dataclass(frozen=True)
class Modality:
    name: str
    """Short name used in tensors, configs and outputs (e.g. 'naip', 's2', 's1')."""
    collection: str
    """STAC collection id; the key of this modality in its preset."""
    bands: list[Band]
    dtype: Literal["uint8", "uint16", "int16", "float32"] = "uint16"
    """Pixel dtype as stored in the COGs."""
    nodata: float | None = None
    """Nodata value as stored (null: the asset has none; pixels are then all valid unless masked)."""
    scale: float = 1.0
    offset: float = 0.0
    """physical = stored * scale + offset: the default, used when neither the item's raster:bands nor
    an ``offset_rules`` field of the item says otherwise (see jointssl.sensors.radiometry)."""
    offset_rules: list[OffsetRule] = field(default_factory=list)
    """Item fields that decide the offset (first one the item has wins), e.g. processing baselines."""
    transform: Literal["none", "db"] = "none"
    """Applied after scaling: 'db' turns linear SAR backscatter into decibels (10 log10)."""
    kind: Literal["optical", "sar"] = "optical"
    """Imaging physics, which decides the intra-modal augmentations that make sense
    (jointssl.train.augment): 'optical' (reflectance: per-band gain/offset jitter) or 'sar'
    (backscatter: multiplicative speckle, never colour jitter)."""
    target_gsd_m: float = field(default=10.0, metadata={"min": 0.01})
    """Ground sampling distance chips are resampled to."""
    chip_size: int = field(default=32, metadata={"min": 1})
    """Chip height and width in pixels at target_gsd_m."""
    quality: QualityMask | None = None
    item_filter: ItemFilter = field(default_factory=ItemFilter)
    time: TimePolicy = field(default_factory=TimePolicy)
    product: str | None = None
    """What the product physically is, for sensor contracts (jointssl.sensors.contract); null: the
    collection id says it (set it for a mirror that publishes the same product under another id)."""
    refuse: Refusal | None = None
    """Set for a product that cannot serve this modality (e.g. Sentinel-1 GRD: not terrain corrected)."""
    href_modifier: str | None = None
    """Dotted path of a function (href -> href) applied before reading, e.g. a URL signer for catalogs
    that sign with expiring tokens; null reads hrefs as they are."""
    allowed_hrefs: list[str] = field(default_factory=list)
    """Where this collection's asset hrefs may point (the catalog's storage): ``scheme://host[/path]``
    prefixes (``*`` within one host label) or absolute local paths. Any other href is a counted skip
    ``href_not_allowed`` (:mod:`jointssl.sensors.hrefs`); jobs add their storage root and world."""

    def __post_init__(self) -> None:
        if not self.bands:
            raise ConfigError("bands", "a modality needs at least one band")
        for text in self.allowed_hrefs:
            try:
                parse_prefix(text)
            except ValueError as err:
                raise ConfigError("allowed_hrefs", str(err)) from None
        names = [b.name for b in self.bands]
        if len(set(names)) != len(names):
            raise ConfigError("bands", f"band names repeat: {names}")

    @property
    def band_names(self) -> list[str]:
        return [b.name for b in self.bands]

    @property
    def assets(self) -> list[str]:
        """Asset keys in first-use order (a multi-band asset appears once)."""
        return list(dict.fromkeys(b.asset for b in self.bands))

    @property
    def chip_extent_m(self) -> float:
        return self.chip_size * self.target_gsd_m
