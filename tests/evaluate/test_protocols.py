"""Rows are typed (an Arm, not a key re-parsed later): keys stay as MLflow metric prefixes, and the
science notes find their rows by what they are."""

from __future__ import annotations

from jointssl.evaluate.metrics import Scores
from jointssl.evaluate.protocols import science_notes
from jointssl.evaluate.report import Arm, Row

MODS = ("naip", "s2", "s1")


def row(arm: Arm, auprc: float) -> Row:
    return Row(arm, 10, auprc, Scores({}, {"auprc": auprc, "auroc": 0.5, "precision": 0, "recall": 0, "f1": 0}))


def test_keys_and_titles_come_from_the_arm():
    assert Arm("ssl", "probe", MODS, 1.0, fused=True).key == "probe/ssl/fused/100"
    assert Arm("ssl", "probe", ("s2",), 0.1).key == "probe/ssl/s2/10"
    single = row(Arm("single", "probe", ("s1",), 0.5), 0.3)
    assert single.key == "probe/ssl-s1-only/s1/50" and single.title == "SSL (s1 only), linear probe, s1, 50% labels"
    assert row(Arm("supervised", "scratch", MODS, 1.0, fused=True), 0.2).protocol == "from scratch"


def test_science_notes_compare_the_rows_they_name():
    rows = [row(Arm("ssl", "probe", MODS, 1.0, fused=True), 0.8),
            row(Arm("random", "probe", MODS, 1.0, fused=True), 0.6),
            row(Arm("ssl", "probe", ("s2",), 1.0), 0.99),  # a per-modality probe is not the fused one
            row(Arm("single", "probe", ("s2",), 1.0), 0.7), row(Arm("ssl", "probe", MODS, 0.1, fused=True), 0.4),
            row(Arm("supervised", "scratch", MODS, 0.1, fused=True), 0.3)]
    notes = science_notes(rows, 1.0)
    assert "multimodal SSL 0.800 vs random init 0.600: difference +0.200 (no interval" in notes[0]
    assert "multimodal SSL 0.800 vs SSL (s2 only) 0.700" in notes[1]
    assert ("10% labels: SSL + linear probe vs supervised from scratch: multimodal SSL 0.400 vs supervised 0.300"
            in notes[2])
    assert not any("bar:" in n for n in notes)


def test_science_notes_give_the_test_size_and_a_paired_interval():
    import numpy as np

    rng = np.random.default_rng(0)
    y = (rng.random((200, 6)) < 0.2).astype(int)

    def with_probs(arm: Arm, noise: float) -> Row:
        p = y + rng.normal(0, noise, y.shape)
        return Row(arm, 10, 0.5, Scores({}, {"auprc": 0.5}), test_probs=p)

    strong = with_probs(Arm("ssl", "probe", MODS, 1.0, fused=True), 0.5)
    weak = with_probs(Arm("random", "probe", MODS, 1.0, fused=True), 5.0)
    twin = with_probs(Arm("single", "probe", ("s2",), 1.0), 0.5)
    notes = science_notes([strong, weak, twin], 1.0, y, bootstrap=200)
    assert "(200 test sites)" in notes[0] and "95 % paired bootstrap" in notes[0] and ": resolved" in notes[0]
    assert "not resolved (the interval holds 0)" in notes[1]
