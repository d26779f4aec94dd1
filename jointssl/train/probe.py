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
    from sklearn.metrics import average_precision_score

    present = [c for c in range(y_true.shape[1]) if y_true[:, c].any()]
    if not present:
        raise ValueError("no class has a positive example: macro AUPRC is undefined")
    return float(np.mean([average_precision_score(y_true[:, c], scores[:, c]) for c in present]))
