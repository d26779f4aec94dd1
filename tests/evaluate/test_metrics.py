"""METER-ML metrics: known values on tiny inputs, validation thresholds, bootstrap intervals, budgets."""

from __future__ import annotations

import numpy as np
import pytest

from jointssl.evaluate.data import label_budget
from jointssl.evaluate.metrics import best_thresholds, macro_auprc, score

CLASSES = ("a", "b")


def test_perfect_and_inverted_rankings_give_known_auprc():
    y = np.array([[1, 0], [0, 1], [0, 0], [1, 1]], dtype=np.float32)
    perfect = score(y, y * 0.9 + 0.05, np.array([0.5, 0.5]), classes=CLASSES)
    assert perfect.overall["auprc"] == 1.0 and perfect.overall["auroc"] == 1.0 and perfect.overall["f1"] == 1.0
    inverted = score(y, 1 - y, np.array([0.5, 0.5]), classes=CLASSES)
    # class a: both positives tie last of 4: one step to recall 1 at precision 2/4 -> AP = 0.5
    assert inverted.per_class["a"].auprc == pytest.approx(0.5)
    assert inverted.overall["auroc"] == 0.0 and inverted.overall["recall"] == 0.0


def test_classes_without_test_positives_are_left_out_of_overall():
    y = np.array([[1, 0], [0, 0], [1, 0]], dtype=np.float32)
    s = score(y, np.array([[0.9, 0.2], [0.1, 0.9], [0.8, 0.1]]), np.array([0.5, 0.5]), classes=CLASSES)
    assert list(s.per_class) == ["a"] and s.overall["auprc"] == 1.0
    with pytest.raises(ValueError, match="no positive"):
        score(np.zeros((2, 2)), np.zeros((2, 2)), np.array([0.5, 0.5]), classes=CLASSES)
    with pytest.raises(ValueError, match="must both be"):
        score(y, np.zeros((3, 3)), np.array([0.5, 0.5]), classes=CLASSES)


def test_threshold_maximises_validation_f1_then_applies_unchanged_to_test():
    y_val = np.array([[1], [1], [0], [0]], dtype=np.float32)
    p_val = np.array([[0.3], [0.4], [0.2], [0.1]])  # every positive above 0.25: best cut 0.3
    t = best_thresholds(y_val, p_val)
    assert t[0] == pytest.approx(0.3)
    test = score(np.array([[1], [0]], dtype=np.float32), np.array([[0.35], [0.25]]), t, classes=("a",))
    assert test.per_class["a"].precision == 1.0 and test.per_class["a"].recall == 1.0


def test_bootstrap_interval_brackets_the_point_estimate():
    rng = np.random.default_rng(0)
    y = (rng.random((200, 2)) < 0.3).astype(np.float32)
    p = np.clip(y * 0.4 + rng.random((200, 2)) * 0.6, 0, 1)
    s = score(y, p, np.array([0.5, 0.5]), classes=CLASSES, bootstrap=200, seed=1)
    low, high = s.overall_auprc_ci
    assert low < s.overall["auprc"] < high and high - low < 0.3
    assert s.per_class["a"].auprc_ci[0] < s.per_class["a"].auprc < s.per_class["a"].auprc_ci[1]


def test_macro_auprc_is_undefined_without_positives():
    with pytest.raises(ValueError, match="undefined"):
        macro_auprc(np.zeros((3, 2)), np.zeros((3, 2)))


def test_label_budget_is_seeded_sized_and_keeps_every_class():
    labels = np.zeros((100, 6), dtype=np.float32)
    labels[np.arange(60), np.arange(60) % 6] = 1  # 10 per class, 40 negatives
    rows = label_budget(labels, 0.1, seed=3)
    assert len(rows) == 10 and len(set(rows)) == 10
    assert labels[rows].any(axis=0).all()  # every class keeps a positive
    assert (rows == label_budget(labels, 0.1, seed=3)).all() and not (rows == label_budget(labels, 0.1, seed=4)).all()
    assert len(label_budget(labels, 0.01, seed=0)) == 6  # never below one positive per class
    assert (label_budget(labels, 1.0, seed=0) == np.arange(100)).all()
