"""The label space: METER-ML's methane source classes (Zhu et al., 2022, arXiv:2207.11166).

A site holds zero or more facility classes (multi-label, as METER-ML encodes it); a site that holds
none is a *negative*. Models predict one probability per facility class; "negative" is not a
model output but the absence of every class, reported as such in tables.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

FACILITY_CLASSES: tuple[str, ...] = (
    "cafo",  # concentrated animal feeding operations
    "landfill",
    "coal_mine",
    "gas_processing",  # natural gas processing plants ("Proc Plants" in METER-ML)
    "refinery_terminal",  # oil refineries and petroleum terminals ("R&Ts")
    "wastewater",  # wastewater treatment plants ("WWTPs")
)
NEGATIVE = "negative"
CLASS_TITLES = {
    "cafo": "CAFOs",
    "landfill": "Landfills",
    "coal_mine": "Coal Mines",
    "gas_processing": "Proc Plants",
    "refinery_terminal": "R&Ts",
    "wastewater": "WWTPs",
    NEGATIVE: "Negative",
}


def encode(labels: Iterable[str]) -> np.ndarray:
    """``["landfill", "wastewater"]`` -> multi-hot float32 vector over FACILITY_CLASSES; [] -> zeros."""
    vector = np.zeros(len(FACILITY_CLASSES), dtype=np.float32)
    for label in labels:
        if label == NEGATIVE:
            continue
        if label not in FACILITY_CLASSES:
            raise ValueError(f"unknown class {label!r}; known: {', '.join(FACILITY_CLASSES)} or {NEGATIVE!r}")
        vector[FACILITY_CLASSES.index(label)] = 1.0
    return vector


def decode(vector: np.ndarray, threshold: float = 0.5) -> list[str]:
    """Multi-hot (or probabilities) -> class names above ``threshold``; none above -> ['negative']."""
    names = [c for c, v in zip(FACILITY_CLASSES, vector, strict=False) if v >= threshold]
    return names or [NEGATIVE]
