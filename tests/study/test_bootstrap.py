"""The vectorised bootstrap against scikit-learn, and the paired difference's behaviour."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score

from jointssl.study.bootstrap import average_precision, macro_auprc, paired_difference, resamples


def test_weighted_average_precision_equals_sklearn_on_the_resampled_sites():
    rng = np.random.default_rng(0)
    y = (rng.random(60) < 0.3).astype(int)
    p = np.round(rng.random(60), 1)  # many ties
    weights = resamples(60, 25, seed=1)
    ours = average_precision(y, p, weights)
    for b in range(25):
        drawn = np.repeat(np.arange(60), weights[b].astype(int))
        if y[drawn].any():
            assert abs(ours[b] - average_precision_score(y[drawn], p[drawn])) < 1e-9
        else:
            assert np.isnan(ours[b])


def test_macro_auprc_on_all_sites_matches_sklearn_macro():
    rng = np.random.default_rng(2)
    y = (rng.random((80, 6)) < 0.2).astype(int)
    y[:, 5] = 0  # a class without test positives is left out
    p = rng.random((80, 6))
    want = np.mean([average_precision_score(y[:, c], p[:, c]) for c in range(5)])
    assert abs(macro_auprc(y, p, np.ones((1, 80)))[0] - want) < 1e-12


def test_paired_difference_resolves_a_real_gap_and_not_noise():
    rng = np.random.default_rng(3)
    y = (rng.random((400, 6)) < 0.15).astype(int)
    good = y + rng.normal(0, 0.6, y.shape)
    bad = y + rng.normal(0, 3.0, y.shape)
    weights = resamples(400, 300, seed=0)
    gap = paired_difference(y, [good], [bad], weights)
    assert gap.value > 0 and gap.resolved
    twin = y + rng.normal(0, 0.6, y.shape)  # the same quality: the interval must hold 0
    same = paired_difference(y, [good], [twin], weights)
    assert same.low < same.value < same.high and not same.resolved
