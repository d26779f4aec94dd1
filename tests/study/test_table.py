"""The study table from trials' test probabilities: cells over seeds, paired comparisons, Markdown."""

from __future__ import annotations

import numpy as np
import pytest

from jointssl.errors import JointsslError
from jointssl.study.table import collect, markdown, tabulate, trial_result


def trial(objective, mods, seed, y, noise, rng):
    probs = {f"probe/ssl/fused/{pct}": y + rng.normal(0, noise, y.shape) for pct in (10, 100)}
    probs |= {f"probe/random/fused/{pct}": y + rng.normal(0, 4.0, y.shape) for pct in (10, 100)}
    probs |= {f"scratch/supervised/fused/{pct}": y + rng.normal(0, 4.0, y.shape) for pct in (10, 100)}
    probs["probe/ssl/naip/100"] = y  # a per-modality row: not in the study table
    record = {"objective": objective, "modalities": mods, "seed": seed}
    return trial_result(record, probs)


def test_table_cells_and_paired_comparisons(tmp_path):
    rng = np.random.default_rng(0)
    y = (rng.random((300, 6)) < 0.2).astype(int)
    sites = [f"s{i}" for i in range(300)]
    results = [(trial("infonce", ["naip", "s2"], seed, y, 0.5, rng), sites, y) for seed in (0, 1)]
    results += [(trial("infonce", [m], seed, y, 2.0, rng), sites, y) for m in ("naip", "s2") for seed in (0, 1)]
    tab = tabulate(collect(results), ["infonce"], bootstrap=200, seed=0)
    cells = {(c["encoder"], c["sensors"], c["label_fraction"]): c for c in tab["cells"]}
    assert ("random init", "naip+s2", 1.0) in cells and ("infonce", "s2", 0.1) in cells
    full = cells[("infonce", "naip+s2", 1.0)]
    assert full["seeds"] == [0, 1] and full["low"] <= full["value"] <= full["high"]
    assert cells[("random init", "naip+s2", 1.0)]["seeds"] == [0, 1]  # one baseline per (sensors, seed)
    questions = {(c["question"], c["a"][2]): c for c in tab["comparisons"]}
    assert questions[("multi-modal vs best single sensor", 1.0)]["verdict"] == "A better"
    assert questions[("SSL vs random init", 0.1)]["difference"]["low"] > 0
    assert ("SSL vs supervised (fewest labels)", 0.1) in questions
    text = markdown(tab, "t")
    assert "## 10% labels" in text and "| infonce |" in text and "A - B" in text and "300 test sites" in text


def test_trials_on_other_test_sites_are_refused():
    rng = np.random.default_rng(1)
    y = (rng.random((20, 6)) < 0.3).astype(int)
    a = (trial("infonce", ["naip"], 0, y, 1.0, rng), [f"s{i}" for i in range(20)], y)
    b = (trial("vicreg", ["naip"], 0, y, 1.0, rng), [f"t{i}" for i in range(20)], y)
    with pytest.raises(JointsslError, match="other test sites"):
        collect([a, b])
