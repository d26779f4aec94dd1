"""Multi-label classification metrics as METER-ML reports them (Zhu et al. 2022, Table 3).

Per facility class: AUPRC (average precision), AUROC, and precision / recall / F1 at a threshold
chosen on the *validation* split (the one maximising that class's F1), then applied unchanged to the
test split. The "Overall" row is the macro mean over the classes that have a positive in the test
split (a class without positives has no defined AUPRC). 95 % confidence intervals come from a
bootstrap over test sites (resampling sites, so co-occurring labels stay together).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from jointssl.labels import FACILITY_CLASSES
from jointssl.train.probe import macro_auprc, resampled_average_precision

__all__ = ["METRICS", "Scores", "best_thresholds", "macro_auprc", "score"]

METRICS = ("auprc", "auroc", "precision", "recall", "f1")


@dataclass(frozen=True)
class ClassMetrics:
    auprc: float
    auroc: float
    precision: float
    recall: float
    f1: float
    threshold: float
    positives: int
    """Positive test sites of the class."""
    auprc_ci: tuple[float, float] | None = None
    """95 % bootstrap interval of the AUPRC; None without bootstrap."""


@dataclass(frozen=True)
class Scores:
    """One evaluated classifier on the test split: per class and the macro Overall row."""

    per_class: dict[str, ClassMetrics]
    overall: dict[str, float]
    """Macro means of METRICS over classes with test positives."""
    overall_auprc_ci: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"per_class": {c: asdict(m) for c, m in self.per_class.items()}, "overall": self.overall,
                "overall_auprc_ci": self.overall_auprc_ci}


def best_thresholds(y_val: np.ndarray, p_val: np.ndarray) -> np.ndarray:
    """[N K] labels and scores -> [K] threshold maximising each class's F1 on validation (0.5 without positives)."""
    from sklearn.metrics import precision_recall_curve

    thresholds = np.full(y_val.shape[1], 0.5)
    for c in range(y_val.shape[1]):
        if not y_val[:, c].any():
            continue
        precision, recall, cuts = precision_recall_curve(y_val[:, c], p_val[:, c])
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)  # [T+1]
        thresholds[c] = cuts[int(np.argmax(f1[:-1]))]  # the last point (recall 0) has no threshold
    return thresholds


def score(y_test: np.ndarray, p_test: np.ndarray, thresholds: np.ndarray, classes: Sequence[str] = FACILITY_CLASSES,
          bootstrap: int = 0, seed: int = 0) -> Scores:
    """Per-class and Overall metrics on the test split; ``thresholds`` [K] from :func:`best_thresholds`."""
    from sklearn.metrics import average_precision_score, precision_recall_fscore_support, roc_auc_score

    if y_test.shape != p_test.shape or y_test.shape[1] != len(classes):
        raise ValueError(f"labels {y_test.shape} and scores {p_test.shape} must both be [N {len(classes)}]")
    per_class: dict[str, ClassMetrics] = {}
    cis = _bootstrap_auprc(y_test, p_test, bootstrap, seed) if bootstrap else None
    for c, name in enumerate(classes):
        y, p = y_test[:, c], p_test[:, c]
        if not y.any():
            continue
        pred = p >= thresholds[c]
        precision, recall, f1, _ = precision_recall_fscore_support(y, pred, average="binary", zero_division=0)
        auroc = roc_auc_score(y, p) if (~y.astype(bool)).any() else float("nan")
        per_class[name] = ClassMetrics(float(average_precision_score(y, p)), float(auroc), float(precision),
                                       float(recall), float(f1), float(thresholds[c]), int(y.sum()),
                                       cis["per_class"][c] if cis else None)
    if not per_class:
        raise ValueError("the test split has no positive site: nothing to score")
    overall = {k: float(np.nanmean([getattr(m, k) for m in per_class.values()])) for k in METRICS}
    return Scores(per_class, overall, cis["overall"] if cis else None)


def _bootstrap_auprc(y: np.ndarray, p: np.ndarray, n: int, seed: int) -> dict[str, Any]:
    """95 % percentile intervals of per-class and macro AUPRC over ``n`` resamples of the sites.

    A resample is a count per site (how often it was drawn), so every resample's AUPRC of a class comes
    from one sort of that class's scores (:func:`resampled_average_precision`), not one sklearn call each."""
    rng = np.random.default_rng(seed)
    k = y.shape[1]
    counts = np.zeros((n, len(y)), dtype=np.int64)  # [B N] times each site was drawn
    for b in range(n):
        rows = rng.integers(0, len(y), len(y))  # [N] sites drawn with replacement
        np.add.at(counts[b], rows, 1)
    ap = np.full((n, k), np.nan)  # [B K], NaN where the resample has no positive of the class
    for c in range(k):
        if y[:, c].any():
            ap[:, c] = resampled_average_precision(y[:, c], p[:, c], counts)
    has_any = ~np.isnan(ap).all(axis=1)  # [B]
    macro = np.nanmean(ap[has_any], axis=1) if has_any.any() else np.zeros(0)

    def interval(xs: np.ndarray) -> tuple[float, float] | None:
        xs = xs[~np.isnan(xs)]
        return (float(np.percentile(xs, 2.5)), float(np.percentile(xs, 97.5))) if len(xs) else None

    return {"per_class": [interval(ap[:, c]) for c in range(k)], "overall": interval(macro)}
