"""Bootstrap over test sites, vectorised: macro AUPRC of many resamples at once, and paired differences.

A resample is a row of site multiplicities ``W`` [B N] (how often each test site was drawn); average
precision with those multiplicities as sample weights equals average precision on the resampled sites
(scikit-learn's step-wise definition, tied scores grouped), so every classifier of a comparison is scored
on the *same* resamples: that is what makes the comparison paired (both arms see the same sites).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def resamples(n_sites: int, n: int, seed: int) -> np.ndarray:
    """[n N] multiplicities of ``n`` bootstrap resamples of ``n_sites`` sites (row 0..n-1)."""
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, n_sites, size=(n, n_sites))  # [B N] site indices
    weights = np.zeros((n, n_sites))
    np.add.at(weights, (np.arange(n)[:, None], drawn), 1.0)
    return weights


def average_precision(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[N] 0/1 labels, [N] scores, [B N] site weights -> [B] weighted average precision (nan without positives)."""
    order = np.argsort(-p, kind="mergesort")
    ys, ps, w = y[order].astype(float), p[order], weights[:, order]
    last = np.r_[np.flatnonzero(np.diff(ps) != 0), len(ps) - 1]  # [G] end of each group of tied scores
    tp = np.cumsum(w * ys, axis=1)[:, last]  # [B G] weighted true positives above each threshold
    seen = np.cumsum(w, axis=1)[:, last]  # [B G] weighted sites above each threshold
    total = tp[:, -1:]  # [B 1]
    precision = tp / np.maximum(seen, 1e-12)  # [B G]
    gain = np.diff(np.concatenate([np.zeros_like(total), tp], axis=1), axis=1)  # [B G] recall steps x total
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total[:, 0] > 0, (gain * precision).sum(axis=1) / total[:, 0], np.nan)


def macro_auprc(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[N K] labels, [N K] probabilities, [B N] weights -> [B] mean AP over the classes with a positive in the
    resample (classes without a test positive are left out, as :func:`jointssl.evaluate.metrics.score` does)."""
    per_class = [average_precision(y[:, c], p[:, c], weights) for c in range(y.shape[1]) if y[:, c].any()]
    stacked = np.stack(per_class, axis=1)  # [B K']
    with np.errstate(invalid="ignore"):
        return np.asarray(np.nanmean(stacked, axis=1))


def seed_mean(y: np.ndarray, probs: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """[B] macro AUPRC averaged over seeds (one [N K] probability array per seed) on each resample."""
    return np.asarray(np.mean([macro_auprc(y, p, weights) for p in probs], axis=0))


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its 95 % percentile interval over the resamples."""

    value: float
    low: float
    high: float

    @property
    def resolved(self) -> bool:
        """The interval excludes 0 (meaningful for differences)."""
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, float]:
        return {"value": round(self.value, 4), "low": round(self.low, 4), "high": round(self.high, 4)}


def estimate(y: np.ndarray, probs: Sequence[np.ndarray], weights: np.ndarray) -> Estimate:
    """Seed-mean macro AUPRC on all sites and its interval over the resamples ``weights``."""
    point = float(seed_mean(y, probs, np.ones((1, len(y))))[0])
    draws = seed_mean(y, probs, weights)
    return Estimate(point, float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5)))


def paired_difference(y: np.ndarray, a: Sequence[np.ndarray], b: Sequence[np.ndarray],
                      weights: np.ndarray) -> Estimate:
    """A - B in seed-mean macro AUPRC, each resample scoring both arms on the same sites."""
    ones = np.ones((1, len(y)))
    point = float(seed_mean(y, a, ones)[0] - seed_mean(y, b, ones)[0])
    draws = seed_mean(y, a, weights) - seed_mean(y, b, weights)  # [B]
    return Estimate(point, float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5)))
