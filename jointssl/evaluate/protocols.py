"""Every protocol and baseline of the evaluation, as small functions that return typed rows.

For each label fraction (:func:`fraction_rows`): linear probes of the SSL encoder (fused and per
modality), of single-modality SSL encoders and of a random-init encoder; fine-tuning of the SSL
encoder; supervised training from scratch. Each is scored on the test split (:func:`scored`) and
comes back as an :class:`Evaluated`: the results row and the deployable classifier behind it.
Frozen embeddings are computed once per encoder and reused across fractions (:class:`EmbeddingCache`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jointssl.classify.model import Fusion, MethaneClassifier
from jointssl.evaluate.config import EvaluateConfig
from jointssl.evaluate.data import Split, label_budget
from jointssl.evaluate.fit import (
    Embedded,
    Fitted,
    embed_split,
    fit_end_to_end,
    fit_probe,
    probe_probabilities,
)
from jointssl.evaluate.metrics import best_thresholds, score
from jointssl.evaluate.report import Arm, Row
from jointssl.models.multimodal import MultiModalEncoder

log = logging.getLogger("jointssl.evaluate")


@dataclass(frozen=True)
class Encoders:
    """The encoder under test and the baselines' encoders."""

    ssl: MultiModalEncoder
    singles: dict[str, MultiModalEncoder]
    """Single-modality SSL encoders, by modality."""
    random_init: MultiModalEncoder | None


@dataclass(frozen=True)
class Splits:
    train: Split
    val: Split
    test: Split


@dataclass(frozen=True)
class Evaluated:
    row: Row
    classifier: MethaneClassifier


@dataclass
class EmbeddingCache:
    """Frozen embeddings of (train, val, test) per encoder name, computed on first use."""

    splits: Splits
    cache: dict[str, tuple[Embedded, Embedded, Embedded]] = field(default_factory=dict)

    def train_of(self, name: str) -> Embedded | None:
        """The train split's embeddings by the encoder called ``name``, when already computed."""
        return self.cache[name][0] if name in self.cache else None

    def get(self, name: str, encoder: MultiModalEncoder) -> tuple[Embedded, Embedded, Embedded]:
        if name not in self.cache:
            s = self.splits
            self.cache[name] = (embed_split(encoder, s.train), embed_split(encoder, s.val),
                                embed_split(encoder, s.test))
        return self.cache[name]


def scored(arm: Arm, fitted: Fitted, splits: Splits, budget: np.ndarray, bootstrap: int, seed: int,
           probs_test: np.ndarray | None = None) -> Evaluated:
    """``fitted`` scored on test with thresholds chosen on validation, as a results row. ``probs_test``:
    the test probabilities when already known (a probe's, from frozen embeddings); else the test chips
    are classified."""
    if probs_test is None:
        probs_test = fitted.classifier.predict_proba(splits.test.chips, calibrated=False)
    scores = score(splits.test.labels, probs_test, best_thresholds(splits.val.labels, fitted.probs_val),
                   bootstrap=bootstrap, seed=seed)
    row = Row(arm, len(budget), fitted.val_macro_auprc, scores, fitted.detail, probs_test)
    log.info("%-34s val %.3f  test macro AUPRC %.3f  (%s)", row.key, fitted.val_macro_auprc,
             scores.overall["auprc"], fitted.detail)
    return Evaluated(row, fitted.classifier)


def fraction_rows(encoders: Encoders, splits: Splits, cache: EmbeddingCache, e: EvaluateConfig, fraction: float,
                  sensors: dict[str, Any], seed: int) -> list[Evaluated]:
    """Every protocol at one label fraction (see the module docstring)."""
    budget = label_budget(splits.train.labels, fraction, seed)
    y_budget = splits.train.labels[budget]
    all_mods = tuple(encoders.ssl.modalities)
    probe: dict[str, Any] = {"fusions": e.fusions, "epochs": e.probe_epochs, "lr": e.probe_lr, "l2": e.probe_l2,
                             "sensors": sensors, "seed": seed}

    def probed(arm: Arm, name: str, encoder: MultiModalEncoder) -> Evaluated:
        tr, va, te = cache.get(name, encoder)
        fitted = fit_probe(encoder, list(arm.modalities), tr.subset(budget), y_budget, va, splits.val.labels, **probe)
        probs_test = probe_probabilities(fitted.classifier, arm.modalities, te)
        return scored(arm, fitted, splits, budget, e.bootstrap, seed, probs_test)

    out = [probed(Arm("ssl", "probe", all_mods, fraction, fused=True), "ssl", encoders.ssl)]
    fusion: Fusion = out[0].classifier.fusion  # fine-tuning and supervised rows use the same fusion
    if e.per_modality and len(all_mods) > 1:
        out += [probed(Arm("ssl", "probe", (m,), fraction), "ssl", encoders.ssl) for m in all_mods]
    out += [probed(Arm("single", "probe", (m,), fraction), f"single/{m}", enc) for m, enc in encoders.singles.items()]
    if e.random_init and encoders.random_init is not None:
        out.append(probed(Arm("random", "probe", all_mods, fraction, fused=True), "random", encoders.random_init))
    out += _end_to_end_rows(encoders, splits, cache, e, fraction, budget, fusion, sensors, seed)
    return out


def _end_to_end_rows(encoders: Encoders, splits: Splits, cache: EmbeddingCache, e: EvaluateConfig, fraction: float,
                     budget: np.ndarray, fusion: Fusion, sensors: dict[str, Any], seed: int) -> list[Evaluated]:
    """Fine-tuning of the SSL encoder and supervised training from scratch, on the budget's sites (the head's
    initial standardisation from the probes' embeddings of those sites, when computed)."""
    args: dict[str, Any] = {"epochs": e.train_epochs, "batch_size": e.train_batch_size, "lr": e.train_lr,
                            "dropout": e.modality_dropout, "sensors": sensors, "seed": seed, "fusion": fusion}
    sub = splits.train.subset(budget)
    all_mods = tuple(encoders.ssl.modalities)

    def fitted(name: str, encoder: MultiModalEncoder) -> Fitted:
        embedded = cache.train_of(name)
        return fit_end_to_end(encoder, sub, splits.val, embedded=embedded.subset(budget) if embedded else None,
                              **args)

    out = []
    if e.finetune:
        out.append(scored(Arm("ssl", "finetune", all_mods, fraction, fused=True), fitted("ssl", encoders.ssl),
                          splits, budget, e.bootstrap, seed))
    if e.supervised and encoders.random_init is not None:
        out.append(scored(Arm("supervised", "scratch", all_mods, fraction, fused=True),
                          fitted("random", encoders.random_init), splits, budget, e.bootstrap, seed))
    return out


def best_fused(evaluated: Sequence[Evaluated], modalities: Sequence[str], fraction: float) -> Evaluated:
    """The classifier to register: best validation macro AUPRC among the rows with every sensor at ``fraction``."""
    candidates = [x for x in evaluated if x.row.modalities == list(modalities) and x.row.label_fraction == fraction]
    return max(candidates, key=lambda x: x.row.val_macro_auprc)


def science_notes(rows: Sequence[Row], full: float, y_test: np.ndarray | None = None, bootstrap: int = 1000,
                  seed: int = 0) -> list[str]:
    """The paper's three comparisons on these numbers, each with the test-set size and the 95 % paired bootstrap
    interval of the difference (both rows scored on the same resamples of the test sites); a difference whose
    interval holds 0 is stated as not resolved. Without ``y_test`` (or the rows' test probabilities) only the
    point difference is given."""
    def find(source: str, protocol: str, fraction: float) -> Row | None:
        return next((r for r in rows if r.arm.source == source and r.arm.protocol == protocol and r.arm.fused
                     and r.label_fraction == fraction), None)

    def auprc(r: Row) -> float:
        return r.scores.overall["auprc"]

    def compared(a: Row, b: Row) -> str:
        return f"{a.encoder} {auprc(a):.3f} vs {b.encoder} {auprc(b):.3f}: {_difference(a, b, y_test, bootstrap, seed)}"

    sites = f" ({len(y_test)} test sites)" if y_test is not None else ""
    notes = []
    ssl, rnd = find("ssl", "probe", full), find("random", "probe", full)
    if ssl and rnd:
        notes.append(f"Linear probe, {full:.0%} labels{sites}: {compared(ssl, rnd)}.")
    singles = [r for r in rows if r.arm.source == "single" and r.label_fraction == full]
    if ssl and singles:
        top = max(singles, key=auprc)
        notes.append(f"Multimodal vs the best single-modality SSL probe{sites}: {compared(ssl, top)}.")
    low = min((r.label_fraction for r in rows), default=full)
    ssl_low, sup_low = find("ssl", "probe", low), find("supervised", "scratch", low)
    if ssl_low and sup_low and low < full:
        notes.append(f"{low:.0%} labels{sites}: SSL + linear probe vs supervised from scratch: "
                     f"{compared(ssl_low, sup_low)}.")
    return notes


def _difference(a: Row, b: Row, y_test: np.ndarray | None, bootstrap: int, seed: int) -> str:
    """'difference +0.150 [95 % paired bootstrap +0.020, +0.280]: resolved' (or 'not resolved')."""
    from jointssl.study.bootstrap import paired_difference, resamples

    point = a.scores.overall["auprc"] - b.scores.overall["auprc"]
    if y_test is None or a.test_probs is None or b.test_probs is None or bootstrap < 10:
        return f"difference {point:+.3f} (no interval: test probabilities not kept)"
    d = paired_difference(y_test, [a.test_probs], [b.test_probs], resamples(len(y_test), bootstrap, seed))
    state = "resolved" if d.resolved else "not resolved (the interval holds 0)"
    return f"difference {point:+.3f} [95 % paired bootstrap {d.low:+.3f}, {d.high:+.3f}]: {state}"
