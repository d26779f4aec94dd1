"""Platt calibration and operating points: calibrated probabilities match observed rates, thresholds
meet their validation targets or are marked unsupported, ECE measures what it should."""

from __future__ import annotations

import numpy as np
import torch

from jointssl.classify.calibration import (
    MIN_TRUE_POSITIVES,
    Calibration,
    OperatingPoint,
    choose_operating_points,
    expected_calibration_error,
    fit_platt,
)


def overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from sigmoid(z) but reported as logits 3 z - 1 (overconfident and biased): [n 1] each."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.float32)
    return (3 * z - 1)[:, None], y[:, None]


def test_platt_undoes_a_known_miscalibration_and_lowers_ece():
    logits, y = overconfident(2000, 0)
    cal = fit_platt(logits, y)
    assert abs(cal.slope[0] - 1 / 3) < 0.05 and abs(cal.bias[0] - 1 / 3) < 0.15  # z = (logit + 1) / 3
    test_logits, test_y = overconfident(2000, 1)
    before = torch.sigmoid(torch.from_numpy(test_logits)).numpy()[:, 0]
    after = cal.apply(torch.from_numpy(test_logits)).numpy()[:, 0]
    assert expected_calibration_error(test_y[:, 0], after) < 0.03 < expected_calibration_error(test_y[:, 0], before)
    assert np.array_equal(np.argsort(before), np.argsort(after))  # monotone: rankings unchanged


def test_classes_without_both_outcomes_keep_the_identity():
    cal = fit_platt(np.array([[1.0, 2.0], [3.0, -1.0]]), np.array([[1, 0], [1, 0]], dtype=np.float32))
    assert cal == Calibration.identity(2)


def test_operating_points_meet_validation_targets_or_are_unsupported():
    rng = np.random.default_rng(0)
    n = 400
    y = np.zeros((n, 3), dtype=np.float32)
    y[:100, 0] = 1  # separable: precision 0.9 reachable
    y[:2, 1] = 1  # 2 positives: below MIN_TRUE_POSITIVES
    p = rng.random((n, 3)) * 0.5
    p[:100, 0] += 0.5
    p[:2, 1] += 0.5
    points = choose_operating_points(y, p, ["a", "b", "c"])
    f1, p90 = points["f1"], points["precision90"]
    a = p90.points[0]
    assert a.threshold is not None and a.val_precision is not None and a.val_precision >= 0.9
    assert ((p[:, 0] >= a.threshold) & (y[:, 0] > 0)).sum() >= MIN_TRUE_POSITIVES
    assert f1.points[0].threshold is not None and f1.points[0].val_recall == 1.0
    assert p90.unsupported() == ["b", "c"] and f1.unsupported() == ["c"]  # c: no validation positive at all
    assert np.isnan(p90.thresholds()[1]) and OperatingPoint.from_dict(p90.to_dict()) == p90


def test_ece_is_zero_for_perfectly_calibrated_bins_and_large_for_confident_mistakes():
    p = np.array([0.25] * 4 + [0.75] * 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0], dtype=np.float32)
    assert expected_calibration_error(y, p) == 0.0
    assert expected_calibration_error(y, np.where(y > 0, 0.0, 1.0)) == 1.0
