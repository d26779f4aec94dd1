"""The online quality signal: k-NN classification of labelled validation sites from frozen embeddings.

Cheap enough to run every epoch (no training), and it moves as representations improve, so a user
sees learning happen (Wu et al., 2018, arXiv:1805.01978 use the same weighted k-NN monitor). Multi-label,
as METER-ML: each class's score is the similarity-weighted vote of the k nearest training embeddings,
scored by macro AUPRC over the classes present in the evaluation set.
"""

from __future__ import annotations

import numpy as np


def knn_scores(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, k: int = 10,
               temperature: float = 0.07) -> np.ndarray:
    """[N D], [N K], [M D] -> [M K] class scores in [0, 1] (cosine similarity, softmax-weighted votes)."""
    if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"embeddings must be [N D] and [M D] with the same D, got {train_x.shape} and {test_x.shape}")
    if len(train_x) != len(train_y):
        raise ValueError(f"{len(train_x)} training embeddings but {len(train_y)} label rows")
    a = train_x / np.maximum(np.linalg.norm(train_x, axis=1, keepdims=True), 1e-12)  # [N D]
    b = test_x / np.maximum(np.linalg.norm(test_x, axis=1, keepdims=True), 1e-12)  # [M D]
    sim = b @ a.T  # [M N]
    k = min(k, len(train_x))
    nearest = np.argpartition(-sim, k - 1, axis=1)[:, :k]  # [M k]
    weights = np.exp(np.take_along_axis(sim, nearest, axis=1) / temperature)  # [M k]
    weights /= weights.sum(axis=1, keepdims=True)
    scores: np.ndarray = np.einsum("mk,mkc->mc", weights, train_y[nearest])  # [M k] x [M k C] -> [M C]
    return scores


def macro_auprc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Mean average precision over the classes that have at least one positive in ``y_true`` ([N K]
    each): METER-ML's headline metric, shared by this probe and evaluation (jointssl.evaluate.metrics)."""
    present = [c for c in range(y_true.shape[1]) if y_true[:, c].any()]
    if not present:
        raise ValueError("no class has a positive example: macro AUPRC is undefined")
    ones = np.ones((1, len(y_true)))
    return float(np.mean([resampled_average_precision(y_true[:, c], scores[:, c], ones)[0] for c in present]))


def resampled_average_precision(y: np.ndarray, p: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """sklearn's ``average_precision_score(y[rows], p[rows])`` for each resample given as site counts
    (one resample of counts 1: the sample itself), without sklearn's import (~1 s of CPU in every
    pre-training worker that runs the probe).

    ``y`` [N] binary labels, ``p`` [N] scores, ``counts`` [B N] how often each site is in resample b;
    returns [B] (NaN where a resample holds no positive). As sklearn: sites sorted by decreasing score,
    one threshold per distinct score (ties enter together), AP = sum over thresholds of
    (recall_t - recall_t-1) x precision_t.
    """
    order = np.argsort(-p, kind="mergesort")  # [N] decreasing score, stable
    y_sorted, p_sorted = y[order].astype(np.float64), p[order]
    ends = np.r_[np.flatnonzero(np.diff(p_sorted)), len(p_sorted) - 1]  # [T] last site of each tied group
    w = counts[:, order].astype(np.float64)  # [B N]
    tps = np.cumsum(w * y_sorted, axis=1)[:, ends]  # [B T] true positives at each threshold
    drawn = np.cumsum(w, axis=1)[:, ends]  # [B T] sites at or above each threshold
    positives = tps[:, -1]  # [B]
    gained = np.diff(tps, axis=1, prepend=0.0)  # [B T] positives entering at each threshold
    precision = np.divide(tps, drawn, out=np.zeros_like(tps), where=drawn > 0)  # [B T]
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (gained * precision).sum(axis=1) / positives  # [B]
    return np.where(positives > 0, ap, np.nan)
