"""A worker's chip batches: the same chips in the same order from the COGs and from the chip cache, and the
same losses from them (the cache path and the shuffle path change no arithmetic)."""

from __future__ import annotations

import numpy as np

from jointssl.data.chip_cache import (
    ChipCacheReader,
    ChipCacheWriter,
    cache_location,
    commit,
)
from jointssl.data.dataset import ChipBatchLoader
from jointssl.models.multimodal import ModalityInput
from jointssl.train.config import PretrainConfig
from jointssl.train.loop import build_model, build_state, to_tensors, train_step
from jointssl.train.sampler import EpochPlan
from jointssl.train.stream import CachedChips, CogChips, StreamStats, stream_batches
from tests.data.test_chip_cache import sites_on_one_item
from tests.train.test_loop import tiny_model_config


def losses_of(batches, modality, steps=3):
    config, train = tiny_model_config(), PretrainConfig(warmup_fraction=0.0)
    inputs = [ModalityInput.of(modality)]
    state = build_state(build_model(config, inputs, seed=0), config, train)
    out = []
    for chips in batches[:steps]:
        batch = to_tensors(chips, inputs)
        out.append(train_step(state, batch, train, total_steps=10, second=batch).loss)
    return out


def test_cogs_then_cache_give_the_same_batches_and_losses(tmp_path):
    modality, table = sites_on_one_item(tmp_path / "cogs", n=14)
    plan = EpochPlan(seed=0, epoch=0, sites=len(table), world=2, batch_size=3)  # 2 steps, 2 leftover sites
    url = cache_location(str(tmp_path / "cache"), table, [modality])
    cogs = CogChips(table, [modality])
    first, stats = [], StreamStats()
    for rank in range(2):  # each rank writes its batches and its leftover sites
        first.append([b.chips for b in stream_batches(cogs, plan.rows(rank), 3, sink=ChipCacheWriter(url, [modality]),
                                                       extra=plan.leftover(rank), stats=stats)])
    assert stats.sites == 12 and stats.extra_sites == 2 and stats.cpu_s > 0
    assert commit(url, len(table)) == []
    cached = CachedChips(ChipCacheReader(url, [modality]))
    for rank in range(2):
        again = [b.chips for b in stream_batches(cached, plan.rows(rank), 3, depth=3)]
        assert [b["site_id"].tolist() for b in again] == [b["site_id"].tolist() for b in first[rank]]
        for a, b in zip(again, first[rank]):
            np.testing.assert_array_equal(a["s2"], b["s2"])
        assert losses_of(again, modality) == losses_of(first[rank], modality)


def test_the_shuffled_stream_trains_like_the_same_rows_read_directly(tmp_path):
    modality, table = sites_on_one_item(tmp_path, n=9)
    rows = EpochPlan(seed=4, epoch=1, sites=len(table), world=1, batch_size=3).rows(0)
    streamed = [b.chips for b in stream_batches(CogChips(table, [modality]), rows, 3, depth=2)]
    direct = [ChipBatchLoader([modality])(table.iloc[rows[i:i + 3]].reset_index(drop=True)) for i in range(0, 9, 3)]
    np.testing.assert_allclose(losses_of(streamed, modality), losses_of(direct, modality), rtol=0, atol=0)


def test_an_epoch_counts_the_chips_it_could_not_read_and_fails_when_none_can_be_learnt(tmp_path):
    """Every yielded batch is tallied (sites, chips read per site, skips by modality and reason); an epoch
    whose sites have nothing to learn from is an error naming the reasons, not a run of zero losses."""
    import pytest

    from jointssl.errors import JointsslError
    from jointssl.train.stream import require_learnable

    modality, table = sites_on_one_item(tmp_path / "cogs", n=10)  # the last site has no item
    rows = np.arange(10)
    stats = StreamStats()
    assert len(list(stream_batches(CogChips(table, [modality]), rows, 5, stats=stats))) == 2
    assert stats.sites == 10 and stats.sites_with(1) == 9 and stats.sites_with(2) == 0
    assert stats.skipped_text() == "s2 no_item 1"
    require_learnable(stats, 1, "of the test")  # one modality: one chip is a pair of augmentations

    for cog in (tmp_path / "cogs").rglob("*.tif"):
        cog.unlink()  # the item's COGs are gone
    gone = StreamStats()
    for _ in stream_batches(CogChips(table, [modality]), rows, 5, stats=gone):
        pass
    assert gone.sites == 10 and gone.sites_with(1) == 0
    assert gone.skipped_text() == "s2 missing_file 9, s2 no_item 1"
    with pytest.raises(JointsslError, match=r"(?s)none of the 10 sites of the test has a chip to learn from "
                                            r"\(chips not read: s2 missing_file 9, s2 no_item 1\).*fix:"):
        require_learnable(gone, 1, "of the test")
    with pytest.raises(JointsslError, match="has chips of two sensors to learn from"):
        require_learnable(stats, 2, "of the test")  # two modalities: a site needs two views
