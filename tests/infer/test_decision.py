"""What decides a detection: the explicit threshold, a numeric operating point, the model's named
operating points, or the fallback for classifiers registered without them."""

from __future__ import annotations

import numpy as np
import pytest

from jointssl.classify.calibration import ClassPoint, OperatingPoint
from jointssl.config.load import ConfigError
from jointssl.infer.config import InferConfig
from jointssl.infer.decision import resolve_decision

CLASSES = ["cafo", "landfill"]
POINTS = {"f1": OperatingPoint("f1", tuple(CLASSES), (ClassPoint(0.3, 0.8, 0.9, 20), ClassPoint(0.6, 0.7, 0.5, 9)))
          .to_dict(),
          "precision90": OperatingPoint("precision90", tuple(CLASSES),
                                        (ClassPoint(0.7, 0.92, 0.6, 20), ClassPoint(None, None, None, 9))).to_dict()}


def test_the_models_operating_point_is_the_default():
    d = resolve_decision(InferConfig(), POINTS, CLASSES)
    assert (d.point, d.source, d.thresholds) == ("f1", "model", (0.3, 0.6))
    assert d.expected["cafo"]["val_precision"] == 0.8 and d.expected["cafo"]["test_recall"] is None
    test = {"f1": {"cafo": {"precision": 0.7, "precision_ci": [0.5, 0.9], "recall": 0.8, "recall_ci": [0.6, 1.0]}}}
    d = resolve_decision(InferConfig(), POINTS, CLASSES, test)
    assert d.expected["cafo"]["test_precision_ci"] == [0.5, 0.9] and d.expected["landfill"]["test_recall"] is None


def test_unsupported_classes_are_never_detected_at_that_point():
    d = resolve_decision(InferConfig(operating_point="precision90"), POINTS, CLASSES)
    assert d.unsupported() == ["landfill"] and np.isnan(d.array()[1]) and d.to_dict()["thresholds"]["cafo"] == 0.7


def test_explicit_threshold_beats_a_numeric_operating_point_which_beats_the_models():
    assert resolve_decision(InferConfig(operating_point=0.8), POINTS, CLASSES).thresholds == (0.8, 0.8)
    d = resolve_decision(InferConfig(operating_point=0.8, threshold=0.4), POINTS, CLASSES)
    assert (d.source, d.thresholds) == ("infer.threshold", (0.4, 0.4))


def test_a_classifier_without_operating_points_falls_back_to_one_half(caplog):
    d = resolve_decision(InferConfig(), {}, CLASSES)
    assert (d.source, d.thresholds) == ("fallback", (0.5, 0.5)) and "no operating point" in caplog.text


def test_bad_operating_points_are_config_errors():
    with pytest.raises(ConfigError, match="f1, precision90 or a number"):
        InferConfig(operating_point="best")
    with pytest.raises(ConfigError, match="probability"):
        InferConfig(operating_point=1.5)
    assert InferConfig(operating_point="0.25").operating_point == 0.25
