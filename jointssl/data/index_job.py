"""The index stage as one call: config in, index.parquet + summary.json out (used by the CLI and jobs)."""

from __future__ import annotations

import io
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from jointssl import storage
from jointssl.config.schema import JobConfig, index_url, world_url
from jointssl.data.colocate import build_index
from jointssl.data.pipeline import modalities_of
from jointssl.data.sites import read_sites
from jointssl.redact import redact_tree
from jointssl.stac.client import open_client
from jointssl.stac.embedded import stac_api

log = logging.getLogger(__name__)


def run_index(config: JobConfig) -> dict[str, Any]:
    modalities = modalities_of(config)
    sites = read_sites(config.index.sites or storage.join(world_url(config), "sites.parquet"))
    out = index_url(config)
    with tempfile.TemporaryDirectory(prefix="jointssl-index-") as tmp:
        cache_dir = _cache_dir(config, out, Path(tmp))
        with stac_api(config.stac.resolved_url(), world_url(config)) as url:
            client, stats = open_client(url, config.stac.timeout_s, config.stac.max_retries)
            result = build_index(
                sites,
                modalities,
                client,
                window=(config.index.start, config.index.end),
                group_cell_deg=config.index.group_cell_deg,
                page_size=config.index.page_size,
                cache_dir=cache_dir,
                stats=stats,
                min_coverage=config.index.min_coverage,
            )
    summary: dict[str, Any] = redact_tree({  # stac_url may carry user info
        **result.summary(),
        "http_requests": stats.requests,
        "http_retries": stats.retried,
        "stac_url": url,
        "index": storage.join(out, "index.parquet"),
    })
    write_bytes(storage.join(out, "index.parquet"), _parquet_bytes(result.rows))
    write_bytes(storage.join(out, "summary.json"), json.dumps(summary, indent=2).encode())
    log.info("index: %d sites, %d searches (%.1f per 1,000 sites), written to %s", summary["sites"],
             summary["searches"], summary["searches_per_1000_sites"], out)
    return summary


def write_bytes(url: str, data: bytes) -> None:
    """Write a whole object; locally through a temp file + rename so readers never see half of it."""
    fs, path = storage.filesystem(url)
    if storage.is_remote(url):
        fs.pipe_file(path, data)  # an S3 PUT is atomic
        return
    fs.makedirs(fs._parent(path), exist_ok=True)
    tmp = f"{path}.tmp"
    fs.pipe_file(tmp, data)
    fs.mv(tmp, path)


def _parquet_bytes(frame: Any) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _cache_dir(config: JobConfig, out: str, tmp: Path) -> Path | None:
    """Search responses are cached next to a local index; for a remote index, per run only."""
    if not config.index.cache:
        return None
    if storage.is_remote(out):
        return tmp / "cache"
    _, path = storage.filesystem(out)
    return Path(path) / "cache"
