"""A compact description of a classifier's training inputs, and how far a new tile lies from it.

Per sensor, two feature vectors of each chip are compared with what the classifier was trained on:

- the chip's statistics: per band, the mean and the standard deviation of its *scaled* pixels
  (``[2C]``; a wrong processing baseline, unit or catalog moves these first);
- the encoder's embedding of the chip (``[F]``; what the head actually sees).

Each is summarised by the training sites' mean, per-dimension scale and a Ledoit-Wolf shrunk
covariance (more dimensions than sites for the embeddings), and a chip is scored by its Mahalanobis
distance to it. A sensor's raw score is the larger of the two distances, each divided by its median
over the validation sites; the tile's score is the largest over the sensors it has.

**Threshold** (chosen on validation, conformal): the ``ceil((n + 1)(1 - level))``-th smallest tile
score of the ``n`` validation sites, so a new in-domain tile exceeds it with probability at most
``level`` (default 1 %). With fewer than ``1/level - 1`` validation sites no order statistic achieves
that level: the largest validation score is used and the level actually held, ``1/(n + 1)``, is
recorded as ``level``. Scores are written in units of the threshold: above 1 is out of distribution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_LEVEL = 0.01
"""False-alarm rate the threshold is set for: the share of in-domain tiles marked out of distribution."""


def chip_statistics(chips: np.ndarray) -> np.ndarray:
    """[B C H W] scaled chips -> [B 2C]: per band mean, then per band standard deviation."""
    flat = chips.reshape(chips.shape[0], chips.shape[1], -1).astype(np.float64)  # [B C HW]
    return np.concatenate([flat.mean(axis=2), flat.std(axis=2)], axis=1)  # [B 2C]


@dataclass(frozen=True)
class Gaussian:
    """Mean, per-dimension scale and shrunk precision of standardised training features."""

    mean: np.ndarray
    """[D]"""
    scale: np.ndarray
    """[D]"""
    precision: np.ndarray
    """[D D] inverse of the Ledoit-Wolf covariance of (x - mean) / scale."""

    @classmethod
    def fit(cls, x: np.ndarray) -> Gaussian:
        """[N D] training features (N >= 2)."""
        from sklearn.covariance import LedoitWolf

        mean = x.mean(axis=0)
        scale = np.maximum(x.std(axis=0), 1e-6)
        lw = LedoitWolf().fit((x - mean) / scale)
        return cls(mean.astype(np.float32), scale.astype(np.float32), lw.precision_.astype(np.float32))

    def distance(self, x: np.ndarray) -> np.ndarray:
        """[B D] -> [B] Mahalanobis distance, divided by sqrt(D) (a typical in-domain value is ~1)."""
        z = (x - self.mean) / self.scale  # [B D]
        d2 = np.einsum("bi,ij,bj->b", z, self.precision, z)  # [B]
        return np.asarray(np.sqrt(np.maximum(d2, 0.0) / x.shape[1]), dtype=np.float64)


@dataclass(frozen=True)
class SensorProfile:
    chips: Gaussian
    embeddings: Gaussian
    chip_median: float
    """Median chip distance of the validation sites with this sensor (the raw score's unit)."""
    embedding_median: float
    train_sites: int

    def raw(self, chip_stats: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
        """[B 2C] and [B F] -> [B] raw score (see the module docstring)."""
        return np.maximum(self.chips.distance(chip_stats) / self.chip_median,
                          self.embeddings.distance(embeddings) / self.embedding_median)


@dataclass(frozen=True)
class InputProfile:
    """What the classifier's training inputs look like, per sensor, and the out-of-distribution threshold."""

    sensors: dict[str, SensorProfile]
    threshold: float
    """On the raw tile score (the largest raw sensor score of a tile)."""
    level: float
    """False-alarm rate the threshold holds for in-domain tiles (see the module docstring)."""
    val_sites: int
    notes: dict[str, str] = field(default_factory=dict)

    def scores(self, chips: Mapping[str, np.ndarray], embeddings: Mapping[str, np.ndarray],
               present: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per sensor [B] score in units of the threshold (NaN where the tile lacks the sensor).

        ``chips``: m -> [B C H W] scaled chips, ``embeddings``: m -> [B F], ``present``: m -> [B] bool."""
        stats = {m: chip_statistics(np.asarray(chips[m])) for m in self.sensors if m in chips}
        return self.scores_of_statistics(stats, embeddings, present)

    def scores_of_statistics(self, stats: Mapping[str, np.ndarray], embeddings: Mapping[str, np.ndarray],
                             present: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """:meth:`scores` from each chip's statistics (m -> [B S], :func:`chip_statistics`) instead of the
        chips: what the embedding cache keeps of a sensor it does not read again."""
        out: dict[str, np.ndarray] = {}
        for m, profile in self.sensors.items():
            if m not in stats:
                continue
            rows = np.flatnonzero(np.asarray(present[m], dtype=bool))
            score = np.full(len(present[m]), np.nan, dtype=np.float32)
            if len(rows):
                raw = profile.raw(np.asarray(stats[m])[rows], np.asarray(embeddings[m])[rows].astype(np.float64))
                score[rows] = raw / self.threshold
            out[m] = score
        return out

    def to_state(self) -> tuple[dict[str, object], dict[str, np.ndarray]]:
        """The profile as plain data and named arrays (``<sensor>.<chips|embeddings>.<mean|scale|precision>``),
        for a JSON file and a safetensors file: :meth:`from_state` rebuilds it, nothing is pickled."""
        arrays: dict[str, np.ndarray] = {}
        for m, p in self.sensors.items():
            for part, g in (("chips", p.chips), ("embeddings", p.embeddings)):
                for name in ("mean", "scale", "precision"):
                    arrays[f"{m}.{part}.{name}"] = np.ascontiguousarray(getattr(g, name), dtype=np.float32)
        sensors = {m: {"chip_median": p.chip_median, "embedding_median": p.embedding_median,
                       "train_sites": p.train_sites} for m, p in self.sensors.items()}
        return ({"threshold": self.threshold, "level": self.level, "val_sites": self.val_sites,
                 "notes": dict(self.notes), "sensors": sensors}, arrays)

    @classmethod
    def from_state(cls, data: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> InputProfile:
        """The inverse of :meth:`to_state`; KeyError naming a missing array."""
        sensors: dict[str, SensorProfile] = {}
        for m, p in dict(data["sensors"]).items():
            gaussians = [Gaussian(*(np.asarray(arrays[f"{m}.{part}.{name}"], dtype=np.float32)
                                    for name in ("mean", "scale", "precision"))) for part in ("chips", "embeddings")]
            sensors[m] = SensorProfile(gaussians[0], gaussians[1], float(p["chip_median"]),
                                       float(p["embedding_median"]), int(p["train_sites"]))
        return cls(sensors, float(data["threshold"]), float(data["level"]), int(data["val_sites"]),
                   dict(data.get("notes") or {}))

    def describe(self) -> dict[str, object]:
        """JSON-able summary (for the registered model's metadata)."""
        return {"level": self.level, "val_sites": self.val_sites, "threshold": self.threshold,
                "sensors": {m: {"train_sites": p.train_sites, "chip_features": int(p.chips.mean.shape[0]),
                                "embedding_features": int(p.embeddings.mean.shape[0])}
                            for m, p in self.sensors.items()}}


@dataclass(frozen=True)
class SensorInputs:
    """One split's inputs of one sensor: chip statistics [N 2C], embeddings [N F], presence [N]."""

    chip_stats: np.ndarray
    embeddings: np.ndarray
    present: np.ndarray


def fit_profile(train: Mapping[str, SensorInputs], val: Mapping[str, SensorInputs],
                level: float = DEFAULT_LEVEL) -> InputProfile:
    """The profile of ``train`` with its threshold chosen on ``val`` (sensors with < 2 training sites are left out)."""
    sensors: dict[str, SensorProfile] = {}
    for m, tr in train.items():
        rows = np.asarray(tr.present, dtype=bool)
        v = val[m]
        vrows = np.asarray(v.present, dtype=bool)
        if rows.sum() < 2 or not vrows.any():
            continue
        chips, emb = Gaussian.fit(tr.chip_stats[rows]), Gaussian.fit(tr.embeddings[rows])
        sensors[m] = SensorProfile(chips, emb, float(np.median(chips.distance(v.chip_stats[vrows]))),
                                   float(np.median(emb.distance(v.embeddings[vrows]))), int(rows.sum()))
    if not sensors:
        raise ValueError("no sensor has 2 training sites and a validation site: no input profile")
    n = len(next(iter(val.values())).present)
    raw = np.full((n, len(sensors)), -np.inf)  # [N M]
    for j, (m, profile) in enumerate(sensors.items()):
        rows = np.flatnonzero(np.asarray(val[m].present, dtype=bool))
        raw[rows, j] = profile.raw(val[m].chip_stats[rows], val[m].embeddings[rows])
    tile = raw.max(axis=1)
    tile = np.sort(tile[np.isfinite(tile)])
    rank = math.ceil((len(tile) + 1) * (1 - level))  # 1-based order statistic
    held = level if rank <= len(tile) else 1.0 / (len(tile) + 1)
    threshold = float(tile[min(rank, len(tile)) - 1])
    return InputProfile(sensors, threshold, held, len(tile))
