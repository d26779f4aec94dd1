"""The champion policy of jointssl.classify.registry (the MLflow round trip is tested in tests/evaluate)."""

from __future__ import annotations

from jointssl.classify.registry import beats, score_tag


def test_champion_moves_only_for_a_better_score_at_the_tags_precision():
    score = 0.83912345678
    tagged = float(score_tag(score))  # what the champion's version tag holds: 0.839123
    assert tagged != score and score > tagged  # the full-precision score would beat its own tag
    assert not beats(score, tagged)  # the same score again: the champion stays
    assert beats(score + 2e-6, tagged) and not beats(score - 2e-6, tagged)
    assert beats(0.1, None) and beats(0.1, float("nan"))  # no champion / an untagged one
