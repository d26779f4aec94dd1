"""The study section: validated at the edge, and the grid it makes."""

from __future__ import annotations

import pytest

from jointssl.config import load_job_config
from jointssl.config.load import ConfigError
from jointssl.study.grid import trials


def grid(*overrides: str):
    return trials(load_job_config("configs/test.yaml", list(overrides)))


def test_default_grid_is_every_objective_times_every_sensor_subset():
    got = grid("--study.seeds", "[0, 1]")
    assert len(got) == 4 * 7 * 2
    assert {t.modalities for t in got} == {("naip", "s2", "s1"), ("naip", "s2"), ("naip", "s1"), ("s2", "s1"),
                                           ("naip",), ("s2",), ("s1",)}
    assert len({t.name for t in got}) == len(got) and got[0].name == "test-infonce-naip+s2+s1-s0"


def test_subsets_follow_the_index_order_and_single_sensors_get_augmentations():
    (t,) = grid("--study.objectives", "[vicreg]", "--study.modalities", "[[s1]]", "--study.name", "x")
    assert t.name == "x-vicreg-s1-s0" and "--pretrain.augment.enabled" in t.overrides()
    (t,) = grid("--study.objectives", "[byol]", "--study.modalities", "[[s1, naip]]")
    assert t.modalities == ("naip", "s1") and "--pretrain.augment.enabled" not in t.overrides()


@pytest.mark.parametrize("overrides, key, words", [
    (["--study.objectives", "[simclr]"], "study.objectives", "unknown objective 'simclr'"),
    (["--study.objectives", "[]"], "study.objectives", "at least one"),
    (["--study.modalities", "[[naip], []]"], "study.modalities[1]", "empty sensor subset"),
    (["--study.modalities", "[[naip, s2], [s2, naip]]"], "study.modalities", "given twice"),
    (["--study.seeds", "[0, 0]"], "study.seeds", "0 is given twice"),
    (["--study.seeds", "[]"], "study.seeds", "at least one seed"),
    (["--study.colour", "red"], "study.colour", "unknown key"),
])
def test_bad_study_sections_name_the_key(overrides, key, words):
    with pytest.raises(ConfigError) as err:
        load_job_config("configs/test.yaml", overrides)
    assert err.value.key == key and words in str(err.value)


def test_a_subset_outside_the_indexed_sensors_is_an_error():
    with pytest.raises(ConfigError, match=r"hyperspectral not in index\.modalities"):
        grid("--study.modalities", "[[hyperspectral]]")
