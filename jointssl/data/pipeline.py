"""The data plane from a config: the site table of an index, and one streaming pass over its chips."""

from __future__ import annotations

import io
import logging
import os
import time
from typing import Any

import numpy as np
import pandas as pd

from jointssl import storage
from jointssl.config.schema import JobConfig, index_url, world_url
from jointssl.data.dataset import chip_dataset, site_table, skip_counts
from jointssl.data.sites import read_sites
from jointssl.errors import JointsslError
from jointssl.sensors import Modality, load_preset, select

log = logging.getLogger(__name__)


def preset_of(config: JobConfig) -> dict[str, Modality]:
    """``index.preset`` as this job reads it: its href signer (``index.href_modifier``) and where hrefs may
    point (``index.allowed_hrefs`` or the preset's, plus the storage root and the world location)."""
    return load_preset(config.index.preset, config.index.href_modifier, config.index.allowed_hrefs,
                       roots=storage_roots(config))


def storage_roots(config: JobConfig) -> list[str]:
    """The job's own storage, which asset hrefs may always point at: storage.root and the world (local
    paths made absolute)."""
    urls = [config.storage.root, world_url(config)]
    return list(dict.fromkeys(u if "://" in u else os.path.abspath(u) for u in urls))


def modalities_of(config: JobConfig) -> list[Modality]:
    return select(preset_of(config), config.index.modalities)


def load_site_table(config: JobConfig) -> pd.DataFrame:
    """Sites joined with their index rows: what :func:`jointssl.data.dataset.chip_dataset` streams."""
    url = storage.join(index_url(config), "index.parquet")
    fs, path = storage.filesystem(url)
    if not fs.exists(path):
        raise JointsslError(f"no co-location index at {url}", hint="run 'jointssl index' first")
    index = pd.read_parquet(io.BytesIO(fs.cat_file(path)))
    sites = read_sites(config.index.sites or storage.join(world_url(config), "sites.parquet"))
    return site_table(index, sites, modalities_of(config), require=config.chips.require)


def scan_chips(config: JobConfig) -> dict[str, Any]:
    """Stream every chip once from the COGs through Ray Data; count present chips and skips per reason (needs Ray).
    The chip cache is pre-training's (:mod:`jointssl.train.worker`): this check reads what the index points at."""
    modalities = modalities_of(config)
    ds = chip_dataset(load_site_table(config), modalities, reader=config.chips.reader,
                      batch_size=config.chips.batch_size, concurrency=config.chips.concurrency,
                      threads=config.chips.threads)
    batches, source = ds.iter_batches(batch_size=None, batch_format="numpy"), "cogs"
    started = time.perf_counter()
    reasons: dict[str, list[np.ndarray]] = {m.name: [] for m in modalities}
    sites = 0
    for batch in batches:
        sites += len(batch["site_id"])
        for m in modalities:
            reasons[m.name].append(batch[f"{m.name}_reason"])
    seconds = time.perf_counter() - started
    flat = {name: np.concatenate(parts) if parts else np.array([]) for name, parts in reasons.items()}
    chips = int(sum((values == "ok").sum() for values in flat.values()))
    summary = {
        "source": source,
        "sites": sites,
        "chips": chips,
        "chips_per_s": round(chips / seconds, 1) if seconds > 0 else None,
        "present": {name: int((values == "ok").sum()) for name, values in flat.items()},
        "skipped": skip_counts(flat),
    }
    log.info("chips: %d sites, %d chips in %.1f s; skipped %s", sites, chips, seconds, summary["skipped"])
    return summary
