"""What the registered classifier is deployed with, chosen on validation and measured on test.

1. a per-class Platt calibration fitted on the validation logits (:func:`jointssl.classify.calibration.fit_platt`);
2. per-class operating points on the calibrated validation probabilities ('f1', 'precision90');
3. on the test split: precision and recall at each operating point with 95 % bootstrap intervals (what
   a user of the deployed model should expect), and the expected calibration error per class before
   and after calibration (with the reliability curves for the plot);
4. the input profile for the out-of-distribution guard: statistics of the training sites' scaled
   chips and embeddings, threshold chosen on the validation sites (:mod:`jointssl.classify.ood`).

:func:`deploy` attaches 1, 2 and 4 to the classifier, so registering it registers them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from jointssl.classify.calibration import (
    Calibration,
    OperatingPoint,
    choose_operating_points,
    expected_calibration_error,
    fit_platt,
)
from jointssl.classify.model import MethaneClassifier
from jointssl.classify.ood import (
    DEFAULT_LEVEL,
    InputProfile,
    SensorInputs,
    chip_statistics,
    fit_profile,
)
from jointssl.evaluate.data import Split
from jointssl.evaluate.fit import embed_split


@dataclass(frozen=True)
class PointScore:
    """One class at one operating point on the test split."""

    threshold: float | None
    precision: float | None
    recall: float | None
    precision_ci: tuple[float, float] | None
    recall_ci: tuple[float, float] | None
    positives: int


@dataclass(frozen=True)
class Deployment:
    calibration: Calibration
    operating_points: dict[str, OperatingPoint]
    test_points: dict[str, dict[str, PointScore]]
    """Operating point -> class -> test precision / recall with intervals."""
    ece: dict[str, dict[str, float]]
    """Class -> {'before', 'after'}: expected calibration error on the test split."""
    test_uncalibrated: np.ndarray
    """[N K] test probabilities before calibration (for the reliability diagram)."""
    test_calibrated: np.ndarray
    """[N K] after."""
    profile: InputProfile | None

    def to_dict(self) -> dict[str, Any]:
        return {"calibration": self.calibration.to_dict(),
                "operating_points": {k: p.to_dict() for k, p in self.operating_points.items()},
                "test_operating_points": {k: {c: asdict(s) for c, s in v.items()} for k, v in self.test_points.items()},
                "ece_test": self.ece, "ood": self.profile.describe() if self.profile else None}


@torch.no_grad()
def logits_of(classifier: MethaneClassifier, chips: dict[str, torch.Tensor], chunk: int = 256) -> np.ndarray:
    """[N K] raw logits (eval mode)."""
    classifier.eval()
    n = next(iter(chips.values())).shape[0]
    parts = [classifier({k: v[i:i + chunk] for k, v in chips.items()}).double().numpy() for i in range(0, n, chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, len(classifier.classes)))


def deploy(classifier: MethaneClassifier, train: Split, val: Split, test: Split, bootstrap: int, seed: int,
           level: float = DEFAULT_LEVEL) -> Deployment:
    """Fit and attach calibration, operating points and the input profile; measure them on ``test``."""
    classes = list(classifier.classes)
    val_logits, test_logits = logits_of(classifier, val.chips), logits_of(classifier, test.chips)
    calibration = fit_platt(val_logits, val.labels)
    cal_val = calibration.apply(torch.from_numpy(val_logits)).numpy()  # [V K]
    raw_test = torch.sigmoid(torch.from_numpy(test_logits)).numpy()  # [N K]
    cal_test = calibration.apply(torch.from_numpy(test_logits)).numpy()  # [N K]
    points = choose_operating_points(val.labels, cal_val, classes)
    test_points = {name: point_scores(test.labels, cal_test, p, bootstrap, seed) for name, p in points.items()}
    ece = {c: {"before": expected_calibration_error(test.labels[:, k], raw_test[:, k]),
               "after": expected_calibration_error(test.labels[:, k], cal_test[:, k])}
           for k, c in enumerate(classes)}
    profile = input_profile(classifier, train, val, level)
    deployment = Deployment(calibration, points, test_points, ece, raw_test, cal_test, profile)
    expected = json.loads(json.dumps(deployment.to_dict()["test_operating_points"]))  # plain lists: YAML metadata
    classifier.deploy(calibration, points, profile, expected)
    return deployment


def point_scores(y: np.ndarray, p: np.ndarray, point: OperatingPoint, bootstrap: int, seed: int
                 ) -> dict[str, PointScore]:
    """Precision and recall per class at ``point``'s thresholds ([N K] labels and calibrated probabilities),
    95 % percentile intervals over ``bootstrap`` resamples of the sites."""
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(y), len(y)) for _ in range(bootstrap)]
    out: dict[str, PointScore] = {}
    for k, (c, threshold) in enumerate(zip(point.classes, point.thresholds())):
        truth = y[:, k] > 0
        if np.isnan(threshold):
            out[c] = PointScore(None, None, None, None, None, int(truth.sum()))
            continue
        pred = p[:, k] >= threshold
        prec, rec = _precision_recall(truth, pred)
        boots = np.array([_precision_recall(truth[r], pred[r]) for r in draws], dtype=np.float64).reshape(-1, 2)
        out[c] = PointScore(float(threshold), prec, rec, _interval(boots[:, 0]), _interval(boots[:, 1]),
                            int(truth.sum()))
    return out


def _precision_recall(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """NaN where undefined (no predicted positive / no positive)."""
    tp = float((truth & pred).sum())
    return (tp / pred.sum() if pred.any() else float("nan"), tp / truth.sum() if truth.any() else float("nan"))


def _interval(values: np.ndarray) -> tuple[float, float] | None:
    values = values[~np.isnan(values)]
    return (float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))) if len(values) else None


def sensor_inputs(classifier: MethaneClassifier, split: Split) -> dict[str, SensorInputs]:
    """Per sensor of the classifier: chip statistics, embeddings and presence of ``split``'s sites."""
    embedded = embed_split(classifier.encoder, split)
    return {m: SensorInputs(chip_statistics(split.chips[m].numpy()), embedded.embeddings[m].double().numpy(),
                            split.chips[f"{m}_present"].numpy().astype(bool)) for m in classifier.modalities}


def input_profile(classifier: MethaneClassifier, train: Split, val: Split, level: float) -> InputProfile | None:
    """The OOD profile of ``classifier`` (None when no sensor has enough sites to describe)."""
    try:
        return fit_profile(sensor_inputs(classifier, train), sensor_inputs(classifier, val), level)
    except ValueError:
        return None
