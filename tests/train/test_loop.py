"""The per-worker training step without Ray, on tiny random batches with the test world's band counts."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import torch

from jointssl.models.config import ModelConfig, ObjectiveConfig
from jointssl.models.multimodal import ModalityInput
from jointssl.train.config import PretrainConfig
from jointssl.train.loop import ProbeSet, build_model, build_state, probe, to_tensors, train_step

# the world preset's modalities at reduced chip sizes (bands as in the test world: NAIP 4, S2 12, S1 2)
MODALITIES = [ModalityInput("naip", 4, 16), ModalityInput("s2", 12, 8), ModalityInput("s1", 2, 8)]


def tiny_model_config(objective: str = "infonce") -> ModelConfig:
    return ModelConfig(backbone="resnet10t", shared_trunk=True, small_input_max_px=64, embed_dim=32,
                       proj_hidden_dim=32, proj_dim=16, pred_hidden_dim=32,
                       objective=ObjectiveConfig(name=objective))  # type: ignore[arg-type]  # Literal


def random_batch(n: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    batch: dict[str, np.ndarray] = {"labels": rng.integers(0, 2, (n, 7)).astype(np.float32)}
    for m in MODALITIES:
        batch[m.name] = rng.normal(size=(n, m.bands, m.chip_size, m.chip_size)).astype(np.float32)
        batch[f"{m.name}_present"] = np.ones(n, dtype=bool)
    batch["s1_present"][:2] = False  # a site may lack a modality
    return batch


@pytest.mark.parametrize("objective", ["infonce", "vicreg", "barlow_twins", "byol"])
def test_loss_decreases_on_a_fixed_batch(objective):
    config = tiny_model_config(objective)
    train = PretrainConfig(lr=3e-3, warmup_fraction=0.0, weight_decay=0.0)
    state = build_state(build_model(config, MODALITIES, seed=0), config, train)
    batch = to_tensors(random_batch(), MODALITIES)
    losses = [train_step(state, batch, train, total_steps=1000).loss for _ in range(20)]
    assert state.step == 20 and all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < losses[0], losses


def test_same_seed_same_first_steps():
    config = tiny_model_config()
    train = PretrainConfig()
    runs = []
    for _ in range(2):
        state = build_state(build_model(config, MODALITIES, seed=7), config, train)
        batch = to_tensors(random_batch(seed=1), MODALITIES)
        runs.append([train_step(state, batch, train, total_steps=10).loss for _ in range(3)])
    assert runs[0] == runs[1]


def test_the_fused_adamw_trains_like_the_per_tensor_loop():
    config = tiny_model_config()
    train = PretrainConfig(weight_decay=0.05)
    runs = []
    for fused in (True, False):
        state = build_state(build_model(config, MODALITIES, seed=7), config, train)
        assert state.optimizer.defaults["fused"] is True
        state.optimizer.defaults["fused"] = fused or None
        for group in state.optimizer.param_groups:
            group["fused"] = fused or None
        batch = to_tensors(random_batch(seed=1), MODALITIES)
        losses = [train_step(state, batch, train, total_steps=10).loss for _ in range(3)]
        runs.append((losses, [p.detach().clone() for p in state.model.parameters()]))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-5)
    # Adam divides by sqrt(v): where a gradient is ~0 the kernels' rounding differs by a fraction of one
    # step; a wrong update (learning rate, weight decay, bias correction) would be a whole step or more
    for a, b in zip(runs[0][1], runs[1][1], strict=True):
        assert (a - b).abs().max().item() < 0.5 * train.lr


def test_learning_rate_follows_warmup_cosine():
    config = tiny_model_config()
    train = PretrainConfig(lr=1e-2, warmup_fraction=0.2)
    state = build_state(build_model(config, MODALITIES, seed=0), config, train)
    batch = to_tensors(random_batch(), MODALITIES)
    lrs = [train_step(state, batch, train, total_steps=10).lr for _ in range(10)]
    assert lrs[0] == pytest.approx(5e-3) and lrs[1] == pytest.approx(1e-2)
    assert lrs[-1] < lrs[2] and all(a >= b for a, b in pairwise(lrs[1:]))


def test_bad_batches_raise_with_the_modality_name():
    batch = random_batch()
    with pytest.raises(ValueError, match="batch\\['s2'\\] must be \\[B 12 8 8\\]"):
        to_tensors({**batch, "s2": batch["s2"][:, :3]}, MODALITIES)
    with pytest.raises(ValueError, match="no 's1' column"):
        to_tensors({k: v for k, v in batch.items() if not k.startswith("s1")}, MODALITIES)
    with pytest.raises(ValueError, match="s1_present"):
        to_tensors({**batch, "s1_present": np.ones(3, dtype=bool)}, MODALITIES)
    with pytest.raises(ValueError, match="sites"):
        to_tensors({**batch, "s1": batch["s1"][:5], "s1_present": np.ones(5, dtype=bool)}, MODALITIES)


def test_to_tensors_keeps_only_model_inputs():
    out = to_tensors(random_batch(), MODALITIES)
    assert set(out) == {"naip", "naip_present", "s2", "s2_present", "s1", "s1_present"}
    assert out["s2"].dtype == torch.float32 and out["s1_present"].dtype == torch.bool


def test_probe_scores_in_unit_range():
    config = tiny_model_config()
    model = build_model(config, MODALITIES, seed=0)
    bank, queries = random_batch(12, seed=2), random_batch(6, seed=3)
    probe_set = ProbeSet(to_tensors(bank, MODALITIES), bank["labels"], to_tensors(queries, MODALITIES),
                         queries["labels"])
    score = probe(model, probe_set, k=3)
    assert 0.0 <= score <= 1.0


def test_sync_batchnorm_conversion_keeps_the_state_dict_keys():
    from torch import nn

    from jointssl.train.loop import use_sync_batchnorm

    model = build_model(tiny_model_config(), MODALITIES, seed=0)
    keys = set(model.state_dict())
    synced = use_sync_batchnorm(model)
    kinds = {type(m) for m in synced.modules()}
    assert nn.SyncBatchNorm in kinds and nn.BatchNorm2d not in kinds and nn.BatchNorm1d not in kinds
    assert set(synced.state_dict()) == keys  # checkpoints load into the plain model for export
    plain = build_model(tiny_model_config(), MODALITIES, seed=1)
    plain.load_state_dict(synced.state_dict())


def test_run_probe_returns_the_val_embeddings():
    from jointssl.train.loop import run_probe

    model = build_model(tiny_model_config(), MODALITIES, seed=0)
    bank, queries = random_batch(12, seed=2), random_batch(6, seed=3)
    probe_set = ProbeSet(to_tensors(bank, MODALITIES), bank["labels"], to_tensors(queries, MODALITIES),
                         queries["labels"])
    result = run_probe(model, probe_set, k=3)
    assert result.queries.shape == (6, 3 * 32)  # 3 modalities x embed_dim 32, side by side
    assert result.macro_auprc == probe(model, probe_set, k=3)


def test_single_modality_ssl_trains_on_two_augmentations_of_one_sensor():
    """S2-only SimCLR is the same step with a second augmented view: the loss is finite and falls."""
    from jointssl.train.augment import Augmenter, ViewSpec
    from jointssl.train.config import AugmentConfig
    from jointssl.train.loop import compute_loss

    torch.manual_seed(0)
    spec = ModalityInput("s2", 4, 16)
    model_config = ModelConfig(backbone="resnet10t", small_input_stem=False, embed_dim=8, proj_hidden_dim=16,
                               proj_dim=8)
    state = build_state(build_model(model_config, [spec], seed=0), model_config, PretrainConfig(lr=1e-2))
    augment = Augmenter(AugmentConfig(), [ViewSpec("s2", "optical", (0.0,) * 4, (1.0,) * 4)], seed=0)
    chips = {"s2": torch.randn(8, 4, 16, 16), "s2_present": torch.ones(8, dtype=torch.bool)}
    with pytest.raises(ValueError):  # one view alone has no positive pair
        compute_loss(state, augment(chips, 0))
    first, second = augment(chips, 0), augment(chips, 0, view=1)
    assert not torch.equal(first["s2"], second["s2"]) and torch.equal(augment(chips, 0)["s2"], first["s2"])
    losses = [train_step(state, augment(chips, step), PretrainConfig(lr=1e-2), 20,
                         second=augment(chips, step, view=1)).loss for step in range(20)]
    assert all(np.isfinite(losses)) and np.mean(losses[-5:]) < np.mean(losses[:5])


@pytest.mark.parametrize("objective", ["infonce", "barlow_twins", "byol"])
def test_bf16_autocast_and_channels_last_keep_the_loss(objective):
    """GPU settings on CPU: bf16 autocast (loss in float32) and channels-last give the float32 losses."""
    config = tiny_model_config(objective)
    train = PretrainConfig(warmup_fraction=0.0)
    losses = {}
    for amp, channels_last in ((False, False), (True, False), (False, True)):
        state = build_state(build_model(config, MODALITIES, seed=0, channels_last=channels_last), config, train)
        batch = to_tensors(random_batch(), MODALITIES, channels_last=channels_last, pin_memory=True)
        losses[amp, channels_last] = [train_step(state, batch, train, total_steps=10, amp=amp).loss for _ in range(2)]
    reference = losses[False, False]
    np.testing.assert_allclose(losses[False, True], reference, rtol=1e-4)
    np.testing.assert_allclose(losses[True, False], reference, rtol=3e-2)  # bf16 has 8 mantissa bits


def test_bf16_by_default_only_where_the_device_computes_it_natively():
    from jointssl.train.loop import native_bf16

    assert native_bf16(torch.device("cuda"))  # a device object: no GPU needed to ask
    assert not native_bf16(torch.device("meta"))
    assert native_bf16(torch.device("cpu")) == torch.cpu._is_amx_tile_supported()  # AMX: bf16 on the tile unit


def test_a_sync_batchnorm_model_trains_like_the_plain_one_in_one_process():
    from jointssl.train.loop import use_sync_batchnorm

    config, train = tiny_model_config(), PretrainConfig(warmup_fraction=0.0)
    losses = []
    for convert in (False, True):
        model = build_model(config, MODALITIES, seed=0)
        state = build_state(use_sync_batchnorm(model) if convert else model, config, train)
        batch = to_tensors(random_batch(), MODALITIES)
        losses.append([train_step(state, batch, train, total_steps=10).loss for _ in range(2)])
    assert losses[0] == losses[1]


def test_the_byol_target_follows_the_loss_schedule():
    from jointssl.train.objective import MomentumObjective

    config, train = tiny_model_config("byol"), PretrainConfig(warmup_fraction=0.0)
    state = build_state(build_model(config, MODALITIES, seed=0), config, train)
    assert isinstance(state.objective, MomentumObjective)
    before = [p.clone() for p in state.objective.target.parameters()]
    train_step(state, to_tensors(random_batch(), MODALITIES), train, total_steps=10)
    moved = [p for p, q in zip(state.objective.target.parameters(), before) if not torch.equal(p, q)]
    assert moved and state.objective.loss_fn.momentum(0, 10) == pytest.approx(0.996)
    assert set(state.objective.state_dict()) == set(state.objective.target.state_dict())
