"""LR schedule shape and the k-NN probe on tiny, hand-checkable data."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from jointssl.train.probe import knn_scores, macro_auprc
from jointssl.train.schedule import warmup_cosine


def test_warmup_then_cosine():
    values = [warmup_cosine(s, total_steps=10, warmup_steps=2, floor=0.1) for s in range(10)]
    assert values[0] == pytest.approx(0.5) and values[1] == pytest.approx(1.0)
    assert values[2] == pytest.approx(1.0)  # cosine starts at its top
    assert all(a >= b for a, b in pairwise(values[2:]))
    assert warmup_cosine(10, 10, 2, 0.1) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="warmup_steps"):
        warmup_cosine(0, 10, 11)


def test_knn_separable_clusters_score_perfectly():
    rng = np.random.default_rng(0)
    centres = np.eye(3, 8) * 5
    labels = np.eye(3)[rng.integers(0, 3, 60)]  # [60 3]
    x = labels @ centres + rng.normal(0, 0.1, (60, 8))
    scores = knn_scores(x[:40], labels[:40], x[40:], k=5)
    assert scores.shape == (20, 3)
    assert macro_auprc(labels[40:], scores) == pytest.approx(1.0)
    shuffled = knn_scores(x[:40], labels[rng.permutation(40)], x[40:], k=5)
    assert macro_auprc(labels[40:], shuffled) < 0.8


def test_probe_bad_input():
    with pytest.raises(ValueError, match="same D"):
        knn_scores(np.zeros((4, 3)), np.zeros((4, 2)), np.zeros((2, 5)))
    with pytest.raises(ValueError, match="undefined"):
        macro_auprc(np.zeros((3, 2)), np.zeros((3, 2)))
