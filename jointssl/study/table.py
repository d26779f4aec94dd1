"""The study's table and paired comparisons, from each finished trial's evaluation (results + test probabilities).

- cells: objective (and the random-init / supervised baselines) x sensor subset x label fraction, the fused
  linear probe's test macro AUPRC averaged over seeds, with a 95 % bootstrap interval over test sites;
- comparisons (paired: both arms scored on the same resamples of the same test sites): multi-modal vs the best
  single-sensor encoder of the same objective, each objective vs random init (same sensors), SSL vs supervised
  from scratch at the smallest label fraction. A difference whose interval holds 0 is "not resolved".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jointssl.errors import JointsslError
from jointssl.study.bootstrap import Estimate, estimate, paired_difference, resamples

RANDOM, SUPERVISED = "random init", "supervised"
ROW_KEYS = {RANDOM: "probe/random/fused", SUPERVISED: "scratch/supervised/fused"}
"""Baselines every trial's evaluation scores on its own sensors (results.json row keys without the fraction)."""
SSL_KEY = "probe/ssl/fused"


@dataclass(frozen=True)
class TrialResult:
    """One finished trial's fused test probabilities, by (encoder, fraction)."""

    objective: str
    sensors: str
    seed: int
    probs: dict[tuple[str, float], np.ndarray]
    """(objective name or RANDOM / SUPERVISED, label fraction) -> [N K] test probabilities."""


@dataclass
class Cells:
    """(encoder, sensors, fraction) -> one [N K] probability array per seed, on the shared test sites."""

    labels: np.ndarray
    site_ids: list[str]
    probs: dict[tuple[str, str, float], list[np.ndarray]] = field(default_factory=dict)
    seeds: dict[tuple[str, str, float], list[int]] = field(default_factory=dict)

    def add(self, key: tuple[str, str, float], seed: int, p: np.ndarray) -> None:
        if seed in self.seeds.setdefault(key, []):
            return  # a baseline is the same for every objective of one (sensors, seed): counted once
        self.seeds[key].append(seed)
        self.probs.setdefault(key, []).append(p)


def trial_result(record: dict[str, Any], probs: dict[str, np.ndarray]) -> TrialResult:
    """Pick the fused rows of one trial's ``test_probs.npz`` (row key -> [N K])."""
    out: dict[tuple[str, float], np.ndarray] = {}
    for key, p in probs.items():
        prefix, _, pct = key.rpartition("/")
        names = {SSL_KEY: record["objective"], **{v: k for k, v in ROW_KEYS.items()}}
        if prefix in names:
            out[(names[prefix], int(pct) / 100)] = p
    return TrialResult(record["objective"], "+".join(record["modalities"]), int(record["seed"]), out)


def collect(results: Sequence[tuple[TrialResult, list[str], np.ndarray]]) -> Cells:
    """Every trial's probabilities, checked to be on the same test sites in the same order."""
    if not results:
        raise JointsslError("no finished trial to tabulate", hint="run 'jointssl study' until some trials finish")
    _, sites, labels = results[0]
    cells = Cells(labels, sites)
    for result, s, _ in results:
        if s != sites:
            raise JointsslError(f"trial {result.objective}/{result.sensors}/seed {result.seed} was evaluated on other "
                                "test sites than the first trial", hint="every trial of a study must read one index")
        for (encoder, fraction), p in result.probs.items():
            cells.add((encoder, result.sensors, fraction), result.seed, p)
    return cells


def tabulate(cells: Cells, objectives: Sequence[str], bootstrap: int, seed: int) -> dict[str, Any]:
    """Cells with intervals, and the paired comparisons (JSON-able; see the module docstring)."""
    weights = resamples(len(cells.site_ids), bootstrap, seed)
    y = cells.labels
    table = [{"encoder": e, "sensors": s, "label_fraction": f, "seeds": cells.seeds[(e, s, f)],
              "seed_values": [round(float(estimate(y, [p], np.ones((1, len(y)))).value), 4) for p in ps],
              **estimate(y, ps, weights).to_dict()}
             for (e, s, f), ps in sorted(cells.probs.items())]
    return {"test_sites": len(y), "bootstrap": bootstrap, "cells": table,
            "comparisons": comparisons(cells, objectives, weights)}


def comparisons(cells: Cells, objectives: Sequence[str], weights: np.ndarray) -> list[dict[str, Any]]:
    y, p = cells.labels, cells.probs
    fractions = sorted({f for _, _, f in p})
    subsets = {s for _, s, _ in p}
    full = max(subsets, key=lambda s: len(s.split("+")))
    singles = [s for s in subsets if "+" not in s]
    out = []

    def compare(question: str, a: tuple[str, str, float], b: tuple[str, str, float]) -> None:
        if a in p and b in p:
            d = paired_difference(y, p[a], p[b], weights)
            out.append({"question": question, "a": list(a), "b": list(b), "difference": d.to_dict(),
                        "verdict": verdict(d)})

    for o in objectives:
        for f in fractions:
            present = [s for s in singles if (o, s, f) in p and s != full]
            if present:
                ones = np.ones((1, len(y)))
                best = max(present, key=lambda s: estimate(y, p[(o, s, f)], ones).value)
                compare("multi-modal vs best single sensor", (o, full, f), (o, best, f))
            compare("SSL vs random init", (o, full, f), (RANDOM, full, f))
        if fractions:
            compare("SSL vs supervised (fewest labels)", (o, full, fractions[0]), (SUPERVISED, full, fractions[0]))
    return out


def verdict(d: Estimate) -> str:
    if not d.resolved:
        return "not resolved (the interval holds 0)"
    return "A better" if d.value > 0 else "B better"


def markdown(tab: dict[str, Any], name: str) -> str:
    """results.md: one table per label fraction (rows: encoders, columns: sensor subsets), then the comparisons."""
    cells = tab["cells"]
    lines = [f"# Study {name}", "",
             f"Test macro AUPRC of the fused linear probe, mean over seeds, 95 % bootstrap interval over the "
             f"{tab['test_sites']} test sites ({tab['bootstrap']} resamples) in brackets.", ""]
    for f in sorted({c["label_fraction"] for c in cells}):
        here = [c for c in cells if c["label_fraction"] == f]
        sensors = sorted({c["sensors"] for c in here}, key=lambda s: (-len(s.split("+")), s))
        encoders = sorted({c["encoder"] for c in here}, key=lambda e: (e in (RANDOM, SUPERVISED), e))
        lines += [f"## {f:.0%} labels", "", "| encoder | " + " | ".join(sensors) + " |",
                  "|---|" + "---|" * len(sensors)]
        for e in encoders:
            row = []
            for s in sensors:
                c = next((c for c in here if c["encoder"] == e and c["sensors"] == s), None)
                row.append(f"{c['value']:.3f} [{c['low']:.3f}, {c['high']:.3f}] (n={len(c['seeds'])})" if c else "")
            lines.append(f"| {e} | " + " | ".join(row) + " |")
        lines.append("")
    lines += ["## Paired comparisons (A - B, same test sites)", "",
              "| question | A | B | A - B [95 %] | verdict |", "|---|---|---|---|---|"]
    for c in tab["comparisons"]:
        d = c["difference"]
        lines.append(f"| {c['question']} | {_arm(c['a'])} | {_arm(c['b'])} | {d['value']:+.3f} "
                     f"[{d['low']:+.3f}, {d['high']:+.3f}] | {c['verdict']} |")
    return "\n".join(lines) + "\n"


def _arm(a: Sequence[Any]) -> str:
    return f"{a[0]}, {a[1]}, {float(a[2]):.0%}"


def plot_png(tab: dict[str, Any], path: str) -> None:
    """Macro AUPRC of every cell with its interval, one panel per label fraction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fractions = sorted({c["label_fraction"] for c in tab["cells"]})
    fig, axes = plt.subplots(1, len(fractions), figsize=(6 * len(fractions), 0.3 * len(tab["cells"]) + 2),
                             dpi=100, squeeze=False)
    for ax, f in zip(axes[0], fractions, strict=True):
        here = [c for c in tab["cells"] if c["label_fraction"] == f]
        ys = np.arange(len(here))
        values = np.array([c["value"] for c in here])
        # [2 C]; a point estimate may fall outside its percentile interval on few test sites: no negative bar
        errors = np.clip(np.array([[c["value"] - c["low"] for c in here], [c["high"] - c["value"] for c in here]]),
                         0.0, None)
        ax.errorbar(values, ys, xerr=errors, fmt="o", ms=4, capsize=3)
        ax.set_yticks(ys, [f"{c['encoder']} | {c['sensors']}" for c in here], fontsize=7)
        ax.set(xlabel="test macro AUPRC (95 % interval)", title=f"{f:.0%} labels")
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
