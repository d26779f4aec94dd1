"""Per-area watermarks: the newest acquisition an area's incremental runs have processed.

One small JSON object per area (``<watermarks>/<area key>.json``) in object storage, next to the
predictions, so a scheduled job on any machine finds it. An incremental run reads it, predicts only
tiles that imagery newer than it covers, and advances it to the newest acquisition it saw *only after
every partition of the run is written*, and never backwards (an older acquisition leaves it as it is);
only the holder of the area's lease (:mod:`jointssl.infer.lease`) writes it; a run that crashes
leaves the watermark where it was, and its re-run (same watermark, same run folder) resumes instead of
starting over.

Acquisition times are compared, not publication times: an item published late with an acquisition
time older than the watermark is not picked up by incremental runs (a full run picks it up).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from jointssl import storage
from jointssl.infer.writer import write_atomic

if TYPE_CHECKING:
    from jointssl.config.schema import JobConfig


@dataclass(frozen=True)
class Watermark:
    area: str
    """The area key (:attr:`jointssl.infer.area.Area.key`)."""
    newest: str
    """Newest acquisition processed, UTC ISO ('2023-06-01T10:00:00.000000Z'; compares as text)."""
    run: str
    """The run that advanced it."""
    model: str
    """The model version that run used."""
    updated: str
    """When it was written (UTC ISO)."""


def watermarks_root(config: JobConfig) -> str:
    """infer.watermarks, else <infer.out or storage.root/inference/run.name>/_watermarks."""
    out = config.infer.out or config.storage.url("inference", config.run.name)
    return config.infer.watermarks or storage.join(out, "_watermarks")


def watermark_url(root: str, area_key: str) -> str:
    return storage.join(root, f"{area_key}.json")


def read_watermark(url: str) -> Watermark | None:
    fs, path = storage.filesystem(url)
    if not fs.exists(path):
        return None
    return Watermark(**json.loads(fs.cat_file(path)))


def advance_watermark(url: str, area_key: str, newest: str | None, run: str, model: str) -> Watermark | None:
    """Move the area's watermark to ``newest`` if that is later; returns the watermark now in force."""
    current = read_watermark(url)
    if newest is None or (current is not None and current.newest >= newest):
        return current
    mark = Watermark(area_key, newest, run, model, datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    fs, path = storage.filesystem(url)
    write_atomic(path, fs, (json.dumps(asdict(mark), indent=2) + "\n").encode(), storage.is_remote(url))
    return mark
