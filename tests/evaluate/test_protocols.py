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
    assert "multimodal SSL 0.800 vs random init 0.600 (gap +0.200" in notes[0]
    assert "SSL (s2 only) 0.700 vs multimodal 0.800" in notes[1]
    assert "10% labels: SSL + linear probe 0.400 vs supervised from scratch 0.300" in notes[2]
