"""Which sites each worker trains on, in which order, for every epoch: a seeded global shuffle.

Every epoch draws one permutation of the site table from ``(run.seed, epoch)``. Step ``t``'s global batch
is the contiguous slice ``perm[t*B*W : (t+1)*B*W]`` of it (``B`` sites per worker, ``W`` workers), and rank
``r`` takes every ``W``-th site of that slice. So:

- batch composition does not depend on the order of the sites file (a file sorted by region or class
  still gives mixed batches: the negatives are not the neighbours);
- the sites trained so far in an epoch are exactly ``perm[:consumed]`` with ``consumed = steps * B * W``,
  whichever rank they went to; a resumed run continues at ``consumed`` and trains each of the remaining
  sites once (:meth:`EpochPlan.rows`);
- the last ``len(table) % (B*W)`` sites of the permutation (fewer than one global batch) are not trained in
  that epoch (drop-last); another epoch's permutation trains them.

A global permutation replaces the local shuffle buffer that streaming pipelines need: batches are already
uniform draws, and a buffer would make the trained set depend on when a worker stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EpochPlan:
    """One epoch's order of the ``sites`` rows of the site table."""

    seed: int
    epoch: int
    """0-based."""
    sites: int
    world: int
    """Workers (DDP ranks)."""
    batch_size: int
    """Sites per worker per step."""

    def __post_init__(self) -> None:
        if self.world < 1 or self.batch_size < 1 or self.sites < 0 or self.epoch < 0:
            raise ValueError(f"bad epoch plan {self}")

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world

    @property
    def steps(self) -> int:
        """Full global batches of the epoch."""
        return self.sites // self.global_batch

    def permutation(self) -> np.ndarray:
        """[sites] int64: the epoch's order of table rows (the same for every rank and every attempt)."""
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.sites).astype(np.int64)

    def trained(self) -> np.ndarray:
        """[steps*B*W] the rows an uninterrupted epoch trains, in step order."""
        return self.permutation()[: self.steps * self.global_batch]

    def rows(self, rank: int, consumed: int = 0) -> np.ndarray:
        """Rank ``rank``'s rows for the steps after the first ``consumed`` sites of the permutation, in order:
        consecutive chunks of ``batch_size`` are its batches."""
        if not 0 <= rank < self.world:
            raise ValueError(f"rank {rank} is not in [0, {self.world})")
        if consumed % self.global_batch or not 0 <= consumed <= self.steps * self.global_batch:
            raise ValueError(f"consumed={consumed} is not a whole number of global batches of {self.global_batch} "
                             f"within the epoch's {self.steps} steps")
        return self.permutation()[consumed: self.steps * self.global_batch][rank::self.world]

    def leftover(self, rank: int) -> np.ndarray:
        """Rank ``rank``'s share of the rows this epoch does not train (read only to complete a chip cache)."""
        return self.permutation()[self.steps * self.global_batch:][rank::self.world]
