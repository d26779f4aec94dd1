from collections import Counter

from jointssl.labels import FACILITY_CLASSES
from jointssl.world.sites import UNLABELLED, sample_sites


def test_splits_and_labels():
    sites = sample_sites(400, 20, seed=0)
    labelled = [s for s in sites if s.labelled]
    assert len(labelled) == 140
    assert Counter(s.split for s in labelled) == {"train": 84, "val": 28, "test": 28}
    assert sum(not s.labelled for s in sites) == 260 > len(labelled)
    assert all(s.split == UNLABELLED and s.labels is None for s in sites if not s.labelled)
    primaries = Counter(s.primary for s in labelled)
    assert set(primaries) == {*FACILITY_CLASSES, "negative"} and set(primaries.values()) == {20}
    assert any(len(s.classes) == 2 for s in labelled), "multi-label sites must exist"
    assert all(s.labels == [] for s in labelled if not s.classes)


def test_deterministic_and_in_us_utm():
    a, b = sample_sites(60, 5, seed=3), sample_sites(60, 5, seed=3)
    assert a == b and a != sample_sites(60, 5, seed=4)
    for s in a:
        assert -125 <= s.lon <= -66 and 24 <= s.lat <= 50
        assert 32610 <= s.utm_epsg <= 32619
        if s.primary == "cafo":
            assert s.source.startswith("livestock:")
