"""Calibrated probabilities and the operating points a classifier is deployed with.

**Calibration: Platt scaling per class** (Platt 1999): ``p = sigmoid(a_k * logit_k + b_k)`` with
``a_k > 0``, fitted on the validation split by maximum likelihood with Platt's smoothed targets
(``(N+ + 1) / (N+ + 2)`` for positives, ``1 / (N- + 2)`` for negatives), which keep a class with a few
validation positives from being pushed to 0/1. Why not isotonic: with ~35 validation sites per class
(a handful of them positive) isotonic regression has as many steps as distinct scores and reproduces
the validation set's noise; why not a temperature alone: a linear probe trained on few positives is
biased in its base rate as well as over/under-confident, which one slope cannot correct. Platt is
monotone (``a_k > 0``), so rankings (AUPRC, AUROC) are unchanged; classes without both a positive and
a negative in validation keep the identity (``a = 1, b = 0``).

**Operating points** are per-class thresholds on the *calibrated* probability, chosen on validation:

- ``f1``: the threshold maximising the class's validation F1;
- ``precision90``: the lowest threshold whose validation precision is at least 0.9 (most recall at that
  precision), *supported* only when at least :data:`MIN_TRUE_POSITIVES` validation positives lie above
  it; otherwise the class has no threshold at this point (it is never detected there).

Everything here is plain data (tuples of floats): saved as JSON with the classifier
(:meth:`jointssl.classify.model.MethaneClassifier.save`) and written into the registered model's metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

MIN_TRUE_POSITIVES = 5
"""Validation positives a precision target must be met on before its threshold is trusted."""
OPERATING_POINTS = ("f1", "precision90")
"""Named operating points every evaluated classifier carries (``infer.operating_point``)."""
PRECISION_TARGETS = {"precision90": 0.9}


@dataclass(frozen=True)
class Calibration:
    """Per-class Platt scaling of logits: ``sigmoid(slope * logit + bias)``; slopes > 0."""

    slope: tuple[float, ...]
    bias: tuple[float, ...]
    method: str = "platt"

    @classmethod
    def identity(cls, classes: int) -> Calibration:
        return cls((1.0,) * classes, (0.0,) * classes)

    def apply(self, logits: Tensor) -> Tensor:
        """[B K] logits -> [B K] calibrated probabilities."""
        a = torch.tensor(self.slope, dtype=logits.dtype, device=logits.device)  # [K]
        b = torch.tensor(self.bias, dtype=logits.dtype, device=logits.device)  # [K]
        return torch.sigmoid(logits * a + b)  # [B K]

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "slope": list(self.slope), "bias": list(self.bias)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """The inverse of :meth:`to_dict`."""
        return cls(tuple(float(v) for v in data["slope"]), tuple(float(v) for v in data["bias"]),
                   str(data.get("method", "platt")))


def fit_platt(logits: np.ndarray, labels: np.ndarray, steps: int = 200) -> Calibration:
    """[N K] validation logits and multi-hot labels -> per-class Platt scaling (see the module docstring)."""
    k = labels.shape[1]
    slopes, biases = [1.0] * k, [0.0] * k
    for c in range(k):
        y = labels[:, c] > 0
        if y.any() and not y.all():
            slopes[c], biases[c] = _platt(logits[:, c], y, steps)
    return Calibration(tuple(slopes), tuple(biases))


def _platt(logits: np.ndarray, y: np.ndarray, steps: int) -> tuple[float, float]:
    """One class: [N] logits and bool labels -> (slope, bias) by L-BFGS on the smoothed targets."""
    pos, neg = int(y.sum()), int((~y).sum())
    target = torch.as_tensor(np.where(y, (pos + 1) / (pos + 2), 1 / (neg + 2)), dtype=torch.float64)  # [N]
    z = torch.as_tensor(logits, dtype=torch.float64)  # [N]
    log_a = torch.zeros((), dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_a, b], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z * log_a.exp() + b, target)
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
        return loss

    opt.step(closure)  # type: ignore[no-untyped-call]  # LBFGS.step is unannotated
    return float(log_a.detach().exp()), float(b.detach())


@dataclass(frozen=True)
class ClassPoint:
    """One class at one operating point, as measured on validation."""

    threshold: float | None
    """On the calibrated probability; None: validation does not support this point for the class."""
    val_precision: float | None
    val_recall: float | None
    val_positives: int


@dataclass(frozen=True)
class OperatingPoint:
    name: str
    """'f1', 'precision90', or 'fixed' (one threshold for every class, given at inference)."""
    classes: tuple[str, ...]
    points: tuple[ClassPoint, ...]
    """One per class, in ``classes`` order."""

    def thresholds(self) -> np.ndarray:
        """[K] thresholds; NaN where unsupported (NaN compares False: never a detection)."""
        return np.array([np.nan if p.threshold is None else p.threshold for p in self.points], dtype=np.float64)

    def unsupported(self) -> list[str]:
        return [c for c, p in zip(self.classes, self.points) if p.threshold is None]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "classes": {c: asdict(p) for c, p in zip(self.classes, self.points)}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OperatingPoint:
        classes = tuple(data["classes"])
        return cls(data["name"], classes, tuple(ClassPoint(**data["classes"][c]) for c in classes))

    @classmethod
    def fixed(cls, threshold: float, classes: Sequence[str]) -> OperatingPoint:
        return cls("fixed", tuple(classes), tuple(ClassPoint(threshold, None, None, 0) for _ in classes))


def choose_operating_points(y_val: np.ndarray, p_val: np.ndarray, classes: Sequence[str]) -> dict[str, OperatingPoint]:
    """Validation labels and calibrated probabilities ([N K] each) -> every named operating point."""
    out = {"f1": OperatingPoint("f1", tuple(classes), tuple(_f1_point(y_val[:, c] > 0, p_val[:, c])
                                                            for c in range(len(classes))))}
    for name, target in PRECISION_TARGETS.items():
        out[name] = OperatingPoint(name, tuple(classes), tuple(_precision_point(y_val[:, c] > 0, p_val[:, c], target)
                                                             for c in range(len(classes))))
    return out


def _curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, true positives and threshold for each distinct score used as a threshold."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, cuts = precision_recall_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]  # the last point (recall 0) has no threshold
    return precision, recall, np.rint(recall * y.sum()).astype(int), cuts


def _f1_point(y: np.ndarray, p: np.ndarray) -> ClassPoint:
    if not y.any():
        return ClassPoint(None, None, None, 0)
    precision, recall, _, cuts = _curve(y, p)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    i = int(np.argmax(f1))
    return ClassPoint(float(cuts[i]), float(precision[i]), float(recall[i]), int(y.sum()))


def _precision_point(y: np.ndarray, p: np.ndarray, target: float) -> ClassPoint:
    if not y.any():
        return ClassPoint(None, None, None, 0)
    precision, recall, tp, cuts = _curve(y, p)
    ok = np.flatnonzero((precision >= target) & (tp >= MIN_TRUE_POSITIVES))
    if not len(ok):
        return ClassPoint(None, None, None, int(y.sum()))
    i = int(ok[np.argmax(recall[ok])])
    return ClassPoint(float(cuts[i]), float(precision[i]), float(recall[i]), int(y.sum()))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE of one class ([N] labels and probabilities): sum over equal-width bins of
    (share of sites in the bin) x |observed positive rate - mean probability|."""
    edges = np.minimum((p * bins).astype(int), bins - 1)  # [N] bin of each site
    total = 0.0
    for b in range(bins):
        rows = edges == b
        if rows.any():
            total += rows.mean() * abs(float(y[rows].mean()) - float(p[rows].mean()))
    return float(total)


def reliability_curve(y: np.ndarray, p: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean probability, observed positive rate, sites) per non-empty equal-width bin."""
    edges = np.minimum((p * bins).astype(int), bins - 1)
    kept = [b for b in range(bins) if (edges == b).any()]
    conf = np.array([p[edges == b].mean() for b in kept])
    rate = np.array([y[edges == b].mean() for b in kept])
    count = np.array([(edges == b).sum() for b in kept])
    return conf, rate, count
