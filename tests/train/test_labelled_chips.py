"""The labelled sites' chips are read once per process for one index: pre-training's probe set reads the train
and val sites, evaluation takes them and reads the test sites (jointssl.data.labelled); a changed split, or
chips above the bound, are read again."""

from __future__ import annotations

import numpy as np
import pytest

from jointssl.data import labelled
from jointssl.data.dataset import ChipBatchLoader


@pytest.fixture
def counted(monkeypatch, test_world):
    """The test world's config, and the rows the real batch loader reads, per call."""
    from jointssl.config import load_job_config

    calls: list[list[str]] = []
    real = ChipBatchLoader.__call__

    def spy(self, rows):
        calls.append(list(rows["site_id"]))
        return real(self, rows)

    monkeypatch.setattr(ChipBatchLoader, "__call__", spy)
    monkeypatch.setattr(labelled, "_KEPT", {})
    return load_job_config("configs/test.yaml", test_world.args()), calls


def test_evaluation_takes_the_chips_the_probe_set_read(counted) -> None:
    from jointssl.data.pipeline import load_site_table, modalities_of
    from jointssl.evaluate.data import labelled_sites
    from jointssl.train.trainer import probe_set_of

    config, calls = counted
    table, modalities = load_site_table(config), modalities_of(config)
    probe = probe_set_of(table, modalities, config.chips)
    assert probe is not None
    assert [set(c) for c in calls] == [set(table.site_id[table.split == s]) for s in ("train", "val")]
    probe.bank[modalities[0].name][:] = -1.0  # the probe's tensors are its own
    data = labelled_sites(config, modalities)
    assert [set(c) for c in calls[2:]] == [set(table.site_id[table.split == "test"])]  # only the test sites
    train = data.splits["train"].chips[modalities[0].name]
    assert not (train == -1.0).all()
    labelled_sites(config, modalities)  # evaluation took them out: read again
    assert len(calls) == 6
    labelled.labelled_chips(table, modalities)
    other = table.assign(split=np.where(table.site_id == table.site_id[table.split == "test"].iloc[0], "val",
                                        table.split))
    labelled.labelled_chips(other, modalities)  # one site moved from test to val: those two splits read again
    assert len(calls) == 11


def test_chips_above_the_bound_are_read_again(counted, monkeypatch) -> None:
    from jointssl.data.pipeline import load_site_table, modalities_of

    config, calls = counted
    monkeypatch.setattr(labelled, "KEEP_BYTES", 1024)
    table, modalities = load_site_table(config), modalities_of(config)
    labelled.labelled_chips(table, modalities)
    labelled.labelled_chips(table, modalities)
    assert len(calls) == 6 and labelled._KEPT == {}
