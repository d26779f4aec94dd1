"""LR schedule shape, the k-NN probe on tiny, hand-checkable data, and average precision as sklearn's."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from jointssl.train.probe import knn_scores, macro_auprc, resampled_average_precision
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


def test_resampled_average_precision_is_sklearns_on_each_resample_ties_included():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(4)
    y = (rng.random(30) > 0.6).astype(int)
    p = np.round(rng.random(30), 1)  # coarse scores: many ties
    draws = [rng.integers(0, 30, 30) for _ in range(200)]
    counts = np.stack([np.bincount(rows, minlength=30) for rows in draws])  # [B N]
    got = resampled_average_precision(y, p, counts)
    for b, rows in enumerate(draws):
        if y[rows].any():
            assert got[b] == pytest.approx(average_precision_score(y[rows], p[rows]), abs=1e-12)
        else:
            assert np.isnan(got[b])


def test_macro_auprc_is_sklearns_mean_over_the_classes_present():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(5)
    y = (rng.random((40, 6)) > 0.7).astype(int)
    y[:, 5] = 0  # a class without positives is left out
    p = np.round(rng.random((40, 6)), 1)  # ties
    want = np.mean([average_precision_score(y[:, c], p[:, c]) for c in range(5)])
    assert macro_auprc(y, p) == pytest.approx(want, abs=1e-12)
