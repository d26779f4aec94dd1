"""The input profile: Mahalanobis scores in units of a conformal validation threshold; the false-alarm
rate on fresh in-domain data matches the recorded level, shifted inputs are flagged."""

from __future__ import annotations

import numpy as np

from jointssl.classify.ood import SensorInputs, chip_statistics, fit_profile


def inputs(rng: np.random.Generator, n: int, shift: float = 0.0, present: float = 1.0) -> dict[str, SensorInputs]:
    chips = rng.normal(shift, 1.0, (n, 2, 4, 4)) + rng.normal(0, 0.5, (n, 2, 1, 1))  # per-chip band offsets
    emb = rng.normal(0, 1, (n, 24)) @ np.diag(np.linspace(0.2, 3, 24))  # anisotropic, D ~ N/10
    return {"s2": SensorInputs(chip_statistics(chips), emb, rng.random(n) < present)}


def test_false_alarms_hold_the_recorded_level_and_shifted_chips_are_flagged():
    rng = np.random.default_rng(0)
    profile = fit_profile(inputs(rng, 300), inputs(rng, 199), level=0.01)
    assert profile.level == 0.01 and profile.val_sites == 199
    fresh = inputs(rng, 20_000)["s2"]
    n = len(fresh.present)
    scores = profile.sensors["s2"].raw(fresh.chip_stats, fresh.embeddings) / profile.threshold
    far = float((scores > 1).mean())
    assert 0.002 < far < 0.03, far  # ~1 % (one validation draw of 199: a conformal level, not exact)
    shifted = inputs(rng, 500, shift=-3.0)["s2"]  # band means ~5 sd off
    assert (profile.sensors["s2"].raw(shifted.chip_stats, shifted.embeddings) / profile.threshold > 1).mean() > 0.99
    chips = {"s2": np.zeros((n, 2, 4, 4))}
    out = profile.scores(chips, {"s2": fresh.embeddings}, {"s2": np.arange(n) % 2 == 0})
    assert np.isnan(out["s2"][1::2]).all() and np.isfinite(out["s2"][::2]).all()  # absent: no score


def test_few_validation_sites_record_the_level_they_can_hold():
    rng = np.random.default_rng(1)
    profile = fit_profile(inputs(rng, 100), inputs(rng, 35), level=0.01)
    assert profile.level == 1 / 36  # the largest validation score: P(new > max of 35) = 1/36
    fresh = inputs(rng, 20_000)["s2"]
    far = float((profile.sensors["s2"].raw(fresh.chip_stats, fresh.embeddings) / profile.threshold > 1).mean())
    assert far < 0.1, far
