"""The science profile's val / test sets have METER-ML's size and class balance (docs/evaluation.md)."""

from collections import Counter

import pytest

from jointssl.config.load import ConfigError
from jointssl.labels import FACILITY_CLASSES, NEGATIVE
from jointssl.world.profile import load_profile
from jointssl.world.sites import sample_sites

CLASSES = (*FACILITY_CLASSES, NEGATIVE)


def _primaries(sites, split):
    return Counter(s.primary for s in sites if s.split == split)


def test_science_world_draws_meter_ml_val_and_test_sets():
    profile = load_profile("science").replace(sites=3000)  # every labelled site, fewer unlabelled ones
    sites = sample_sites(profile.sites, profile.labelled_per_class, 0, profile.multilabel_fraction,
                         profile.val_fraction, profile.test_fraction, profile.split_counts())
    # METER-ML Table 1: 515 val + 1,019 test expert-labelled sites.
    assert Counter(s.split for s in sites)["val"] == 515
    assert Counter(s.split for s in sites)["test"] == 1019
    for split in ("val", "test"):
        drawn = _primaries(sites, split)
        assert drawn == Counter(profile.eval_counts[split])
        total = sum(drawn.values())
        for cls in CLASSES:
            assert drawn[cls] / total == pytest.approx(profile.eval_counts[split][cls] / total)
    assert _primaries(sites, "test")["wastewater"] > _primaries(sites, "test")["coal_mine"], "not balanced"
    assert set(_primaries(sites, "train").values()) == {profile.labelled_per_class}
    assert any(len(s.classes) == 2 for s in sites if s.split == "test"), "facility sites stay multi-label"
    assert sum(not s.labelled for s in sites) == profile.sites - profile.labelled_total


def test_scaled_counts_keep_the_balance_within_rounding():
    profile = load_profile("science").replace(sites=400, labelled_per_class=4, eval_scale=0.1)
    counts = profile.split_counts()
    assert counts is not None
    sites = sample_sites(profile.sites, profile.labelled_per_class, 1, split_counts=counts)
    for split in ("val", "test"):
        drawn = _primaries(sites, split)
        for cls in CLASSES:
            assert abs(drawn[cls] - profile.eval_counts[split][cls] * 0.1) <= 0.5


def test_eval_counts_are_checked_at_the_edge():
    profile = load_profile("science")
    missing = {**profile.eval_counts, "test": {c: n for c, n in profile.eval_counts["test"].items() if c != "cafo"}}
    with pytest.raises(ConfigError, match=r"eval_counts\.test.*missing: \['cafo'\]"):
        profile.replace(eval_counts=missing)
    with pytest.raises(ConfigError, match="eval_counts"):
        profile.replace(eval_counts={"val": profile.eval_counts["val"]})
    with pytest.raises(ConfigError, match=r"'sites'.*2542 labelled sites"):
        profile.replace(sites=2000)
    with pytest.raises(ValueError, match="labelled sites planned"):
        sample_sites(100, profile.labelled_per_class, 0, split_counts=profile.split_counts())
