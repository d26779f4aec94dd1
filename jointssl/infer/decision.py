"""What makes a tile a detection in a run: per-class thresholds on the calibrated probability.

Precedence (first that applies):

1. ``infer.threshold`` (an explicit override): that threshold for every class;
2. ``infer.operating_point`` as a number: that threshold for every class;
3. ``infer.operating_point`` named ('f1', the default, or 'precision90'): the classifier's own per-class
   thresholds, chosen on validation when it was evaluated and registered with it. A class the
   validation split could not support at that point has no threshold and is never detected;
4. a classifier registered without operating points (before they existed): 0.5 for every class, with a
   warning.

Tiles marked out of distribution are not detections unless ``infer.ood_detections`` is set.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from jointssl.infer.config import InferConfig

log = logging.getLogger("jointssl.infer")

FALLBACK_THRESHOLD = 0.5


@dataclass(frozen=True)
class Decision:
    point: str
    """'f1', 'precision90', or 'fixed'."""
    source: str
    """What chose it: 'model', 'infer.threshold', 'infer.operating_point', or 'fallback'."""
    classes: tuple[str, ...]
    thresholds: tuple[float | None, ...]
    """Per class; None: never detected (unsupported at this operating point)."""
    expected: dict[str, dict[str, Any]]
    """Class -> precision / recall at this point: on validation (where the threshold was chosen) and, when
    the model carries them, on test with 95 % bootstrap intervals (empty for fixed thresholds)."""
    ood_detections: bool = False

    def array(self) -> np.ndarray:
        """[K] thresholds, NaN for unsupported classes (a NaN threshold never compares True)."""
        return np.array([np.nan if t is None else t for t in self.thresholds], dtype=np.float64)

    def unsupported(self) -> list[str]:
        return [c for c, t in zip(self.classes, self.thresholds) if t is None]

    def label(self) -> str:
        """For the map's title and logs: 'f1 (the model's per-class thresholds)' or 'p >= 0.5'."""
        if self.point == "fixed":
            return f"p >= {self.thresholds[0]:g}" if self.thresholds else "fixed"
        return f"operating point {self.point} (the model's per-class thresholds)"

    def to_dict(self) -> dict[str, Any]:
        return {"operating_point": self.point, "source": self.source,
                "thresholds": dict(zip(self.classes, self.thresholds)), "unsupported": self.unsupported(),
                "expected": self.expected, "ood_detections": self.ood_detections}


def resolve_decision(infer: InferConfig, operating_points: Mapping[str, Any], classes: Sequence[str],
                     expected_test: Mapping[str, Any] | None = None) -> Decision:
    """The run's decision (see the module docstring); ``operating_points`` as the registered model's
    metadata holds them (name -> ``OperatingPoint.to_dict()``), ``expected_test`` the test-set precision /
    recall evaluation measured at each (name -> class -> ``PointScore`` fields)."""
    k = len(classes)
    if infer.threshold is not None:
        return Decision("fixed", "infer.threshold", tuple(classes), (infer.threshold,) * k, {}, infer.ood_detections)
    if isinstance(infer.operating_point, float):
        return Decision("fixed", "infer.operating_point", tuple(classes), (infer.operating_point,) * k, {},
                        infer.ood_detections)
    point = operating_points.get(infer.operating_point)
    if point is None:
        log.warning("infer: the classifier carries no operating point %r (it has: %s; registered before "
                    "calibration?): detections at p >= %g for every class; re-run 'jointssl evaluate' to register "
                    "calibrated thresholds", infer.operating_point, ", ".join(operating_points) or "none",
                    FALLBACK_THRESHOLD)
        return Decision("fixed", "fallback", tuple(classes), (FALLBACK_THRESHOLD,) * k, {}, infer.ood_detections)
    per_class = point["classes"]
    missing = [c for c in classes if c not in per_class]
    if missing:
        raise ValueError(f"operating point {infer.operating_point!r} has no threshold for {missing}")
    thresholds = tuple(per_class[c]["threshold"] for c in classes)
    test = (expected_test or {}).get(infer.operating_point, {})
    expected = {c: {"val_precision": per_class[c]["val_precision"], "val_recall": per_class[c]["val_recall"],
                    **{f"test_{k}": test.get(c, {}).get(k) for k in ("precision", "precision_ci", "recall",
                                                                      "recall_ci")}}
                for c in classes}
    decision = Decision(infer.operating_point, "model", tuple(classes), thresholds, expected, infer.ood_detections)
    if decision.unsupported():
        log.warning("infer: at operating point %s, validation supports no threshold for %s: those classes are "
                    "never detected (use operating_point f1 to see them)", decision.point,
                    ", ".join(decision.unsupported()))
    return decision
