"""A worker's chip batches for one epoch: its rows of the epoch plan, read ahead in threads, in order.

Each Ray Train worker reads its own rows (:mod:`jointssl.train.sampler`), so the order of its batches is a
pure function of (seed, epoch, rank, position): what makes resume exact and the shuffle global. Two
sources give the same numpy batch columns (``site_id`` and, per modality ``m``, ``m`` [B C H W] float32,
``m_present``, ``m_reason``):

- :class:`CogChips`: windowed COG reads through :class:`jointssl.data.dataset.ChipBatchLoader` (decode
  is the CPU cost; GDAL releases the GIL while it decodes, so reads overlap the training step);
- :class:`CachedChips`: the chip cache (:mod:`jointssl.data.chip_cache`), a copy per chip.

While reading the COGs, a :class:`jointssl.data.chip_cache.ChipCacheWriter` (``sink``) writes every batch
read to the cache, and the rows the epoch does not train (``extra``) are read and written after the last
batch, so the cache holds every site. Each read's thread CPU time is counted (``cpu_s``): the per-site CPU
cost of a source (reads of remote COGs in the reader's own pool threads are not counted); so are the chips
of every yielded batch (:meth:`StreamStats.tally`: read per site, skipped by modality and reason), which
:func:`require_learnable` turns into an error when no site has anything to learn from.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from jointssl.data.chip_cache import ChipCacheReader, ChipCacheWriter
from jointssl.data.chips import Reader
from jointssl.sensors.spec import Modality


class ChipSource(Protocol):
    name: str

    def read(self, rows: np.ndarray) -> dict[str, np.ndarray]: ...


class CogChips:
    """Chips of table rows read from their COGs."""

    name = "cogs"

    def __init__(self, table: pd.DataFrame, modalities: Sequence[Modality], reader: Reader = "rasterio",
                 threads: int | None = None):
        from jointssl.data.dataset import ChipBatchLoader

        self.table = table
        self.loader = ChipBatchLoader(list(modalities), reader, threads)

    def read(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        return self.loader(self.table.iloc[rows].reset_index(drop=True))


class CachedChips:
    """Chips of table rows read from a committed chip cache."""

    name = "cache"

    def __init__(self, reader: ChipCacheReader):
        self.reader = reader

    def read(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        return self.reader.read(rows)


@dataclass(frozen=True)
class LoadedBatch:
    rows: np.ndarray
    """[B] table rows, in batch order."""
    chips: dict[str, np.ndarray]
    cpu_s: float
    """Thread CPU seconds the read (and cache write) took."""


@dataclass
class StreamStats:
    sites: int = 0
    cpu_s: float = 0.0
    extra_sites: int = 0
    """Sites read only to complete the cache."""
    sources: set[str] = field(default_factory=set)
    views: Counter[int] = field(default_factory=Counter)
    """Chips read per site -> sites of the yielded batches with that many."""
    skipped: Counter[str] = field(default_factory=Counter)
    """``'<modality> <reason>'`` -> chips of the yielded batches not read (``m_reason`` other than 'ok')."""

    def tally(self, chips: dict[str, np.ndarray]) -> None:
        """Count one yielded batch: its sites, their chips read, and why the others were not read."""
        names = [key.removesuffix("_present") for key in chips if key.endswith("_present")]
        present = np.stack([np.asarray(chips[f"{m}_present"], dtype=bool) for m in names])  # [M B]
        self.sites += present.shape[1]
        self.views.update(present.sum(axis=0).tolist())
        self.skipped.update(f"{m} {reason}" for m in names for reason in map(str, chips[f"{m}_reason"])
                            if reason != "ok")

    def sites_with(self, views: int) -> int:
        """Sites of the yielded batches with at least ``views`` chips read."""
        return sum(n for k, n in self.views.items() if k >= views)

    def skipped_text(self) -> str:
        """``'naip href_not_allowed 570, s2 no_item 22'``: chips not read, by modality and reason."""
        return ", ".join(f"{key} {n}" for key, n in sorted(self.skipped.items()))


def require_learnable(stats: StreamStats, modalities: int, what: str) -> None:
    """A clear error when none of the sites counted in ``stats`` has the chips a site needs to be learnt
    from (two views; one with a single modality, whose views are two augmentations of its chip): the
    objective would see no pair and every step's loss would be 0. ``what``: whose sites, for the message."""
    from jointssl.errors import JointsslError

    views = 1 if modalities == 1 else 2
    if stats.sites and not stats.sites_with(views):
        raise JointsslError(
            f"none of the {stats.sites} sites {what} has {'a chip' if views == 1 else 'chips of two sensors'} to "
            "learn from "
            f"(chips not read: {stats.skipped_text() or 'none'})",
            hint="each reason says what failed (href_not_allowed: the items' hrefs are outside the storage root, "
                 "the world and the preset's allowed_hrefs: re-index from the catalog that serves these files, or "
                 "trust their location with index.allowed_hrefs; unreadable, missing_file: the COGs themselves); "
                 "fix the catalog or the index, then re-run")


def _load(source: ChipSource, rows: np.ndarray, sink: ChipCacheWriter | None) -> LoadedBatch:
    began = time.thread_time()
    chips = source.read(rows)
    if sink is not None:
        sink.write(rows, chips)
    return LoadedBatch(rows, chips, time.thread_time() - began)


def stream_batches(source: ChipSource, rows: np.ndarray, batch_size: int, depth: int = 2,
                   sink: ChipCacheWriter | None = None, extra: np.ndarray | None = None,
                   stats: StreamStats | None = None) -> Iterator[LoadedBatch]:
    """Batches of ``batch_size`` consecutive ``rows`` (a short last chunk is dropped), ``depth`` reads in
    flight ahead of the consumer; then, with a ``sink``, ``extra`` rows are read and written, not yielded."""
    stats = stats if stats is not None else StreamStats()
    stats.sources.add(source.name)
    chunks = [rows[i:i + batch_size] for i in range(0, len(rows) - batch_size + 1, batch_size)]
    tail = [] if sink is None or extra is None else [extra[i:i + batch_size] for i in range(0, len(extra), batch_size)]
    with ThreadPoolExecutor(max(1, depth), thread_name_prefix="chips") as pool:
        pending: deque[tuple[Future[LoadedBatch], bool]] = deque()
        jobs = iter([(c, True) for c in chunks] + [(c, False) for c in tail])
        for chunk, yielded in jobs:
            pending.append((pool.submit(_load, source, chunk, sink), yielded))
            if len(pending) >= max(1, depth):
                break
        while pending:
            future, yielded = pending.popleft()
            batch = future.result()
            following = next(jobs, None)
            if following is not None:
                pending.append((pool.submit(_load, source, following[0], sink), following[1]))
            stats.cpu_s += batch.cpu_s
            if yielded:
                stats.tally(batch.chips)
                yield batch
            else:
                stats.extra_sites += len(batch.rows)
