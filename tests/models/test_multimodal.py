"""MultiModalEncoder on the world's modalities: shapes, shared trunk, missing modalities, config."""

from __future__ import annotations

import pytest
import torch

from jointssl.config.load import ConfigError, from_dict
from jointssl.losses import build_loss
from jointssl.models.config import ModelConfig
from jointssl.models.multimodal import ModalityInput, MultiModalEncoder, MultiModalOutput
from jointssl.sensors.registry import load_preset

SMALL = dict(proj_hidden_dim=32, proj_dim=16, pred_hidden_dim=32)
FAST = dict(SMALL, small_input_stem=False)  # the small-input stem costs 16x compute per chip


@pytest.fixture(scope="module")
def world() -> list:
    return list(load_preset("world").values())


def batch_of(modalities, present: dict[str, list[int]] | None = None, size: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    batch: dict[str, torch.Tensor] = {}
    for m in modalities:
        batch[m.name] = torch.randn(size, len(m.bands), m.chip_size, m.chip_size, generator=g)
        mask = torch.ones(size, dtype=torch.bool) if present is None else torch.tensor(present[m.name]).bool()
        batch[m.name][~mask] = 0.0  # what the data plane sends for a missing chip
        batch[f"{m.name}_present"] = mask
    return batch


def test_world_modalities_and_output_shapes(world) -> None:
    assert [(m.name, len(m.bands), m.chip_size) for m in world] == [("naip", 4, 64), ("s2", 12, 32), ("s1", 2, 32)]
    model = MultiModalEncoder(ModelConfig(**SMALL), world)
    out = model(batch_of(world))
    assert isinstance(out, MultiModalOutput) and out.modalities == ("naip", "s2", "s1")
    for name in out.modalities:
        assert out.embeddings[name].shape == (4, 512)
        assert out.projections[name].shape == (4, 16)
        assert out.present[name].dtype == torch.bool and out.present[name].all()
    assert out.predictions is None
    # naip (64 px) keeps the ImageNet stem, the 32 px modalities get the small-input stem
    assert model.encoders["naip"].stem[0].stride == (2, 2)
    assert model.encoders["s2"].stem[0].stride == (1, 1)


def test_shared_trunk_switch_and_parameter_counts(world) -> None:
    separate = MultiModalEncoder(ModelConfig(**SMALL), world)
    shared = MultiModalEncoder(ModelConfig(shared_trunk=True, **SMALL), world)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731  (parameters() counts a shared trunk once)
    trunk = sum(p.numel() for p in shared.encoders["s2"].trunk.parameters())
    assert 10e6 < trunk < 12e6  # resnet18 without stem and classifier: ~11.2 M
    assert 30e6 < count(separate) < 36e6  # three resnet18s
    assert count(separate) - count(shared) == pytest.approx(2 * trunk, rel=1e-6)
    assert shared.encoders["naip"].trunk is shared.encoders["s1"].trunk
    with torch.no_grad():
        out = shared.eval()(batch_of(world))
    assert {k: v.shape for k, v in out.embeddings.items()} == {"naip": (4, 512), "s2": (4, 512), "s1": (4, 512)}


def test_missing_modality_rows_are_zero_and_do_not_touch_batch_norm(world) -> None:
    present = {"naip": [1, 1, 0, 1], "s2": [1, 1, 1, 1], "s1": [0, 0, 0, 1]}
    model = MultiModalEncoder(ModelConfig(**FAST), world)
    out = model(batch_of(world, present))
    assert torch.all(out.embeddings["naip"][2] == 0) and torch.all(out.projections["naip"][2] == 0)
    assert out.embeddings["naip"][0].abs().sum() > 0
    assert torch.all(out.projections["s1"][:3] == 0)  # one site only: run on all, masked
    # a present site's output does not depend on the absent sites' placeholder chips
    model.eval()
    b1 = batch_of(world, present)
    b2 = {k: v.clone() for k, v in b1.items()}
    b2["naip"][2] = 5.0
    with torch.no_grad():
        torch.testing.assert_close(model(b1).embeddings["naip"], model(b2).embeddings["naip"])
    model.train()
    loss = build_loss("vicreg")(out.projections, out.present)
    loss.backward()
    assert all(p.grad is not None for p in model.encoders["s1"].parameters())  # in the graph (DDP)


def test_byol_predictors_and_single_modality(world) -> None:
    cfg = from_dict(ModelConfig, {"objective": {"name": "byol"}, **FAST})
    model = MultiModalEncoder(cfg, [ModalityInput("s2", 12, 32)])
    out = model(batch_of([world[1]]))
    assert out.predictions is not None and out.predictions["s2"].shape == (4, 16)
    assert cfg.objective.hparams() == {"base_momentum": 0.996}


def test_config_rules_and_hparams() -> None:
    cfg = from_dict(ModelConfig, {"backbone": "resnet50", "objective": {"name": "vicreg"}})
    assert cfg.objective.hparams() == {"invariance_weight": 25.0, "variance_weight": 25.0, "covariance_weight": 1.0}
    assert build_loss(cfg.objective.name, **cfg.objective.hparams()).variance_weight == 25.0
    with pytest.raises(ConfigError, match="proj_dim"):
        from_dict(ModelConfig, {"proj_dim": 0})
    with pytest.raises(ConfigError, match="objective.name"):
        from_dict(ModelConfig, {"objective": {"name": "simsiam"}})
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(ModelConfig, {"projector_dim": 8})


def test_bad_batches_raise(world) -> None:
    model = MultiModalEncoder(ModelConfig(**FAST), world[1:])
    batch = batch_of(world[1:])
    with pytest.raises(ValueError, match="no 's1' tensor"):
        model({k: v for k, v in batch.items() if not k.startswith("s1")})
    with pytest.raises(ValueError, match=r"\[B 12 H W\]"):
        model({**batch, "s2": batch["s2"][:, :4]})
    with pytest.raises(ValueError, match="s2_present"):
        model({**batch, "s2_present": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="repeat"):
        MultiModalEncoder(ModelConfig(**SMALL), [world[1], world[1]])


def test_eval_pads_present_rows_to_few_shapes_with_the_same_outputs(world) -> None:
    from jointssl.models.multimodal import bucket_rows

    assert [bucket_rows(n) for n in (0, 1, 2, 3, 5, 8, 9, 17, 33, 35, 64, 65)] == [1, 1, 2, 4, 8, 8, 16, 32, 48, 48, 64,
                                                                                    80]
    assert {bucket_rows(n) for n in range(1, 65)} == {1, 2, 4, 8, 16, 32, 48, 64}
    assert all(n <= bucket_rows(n) < n + 16 for n in range(1, 257))
    model = MultiModalEncoder(ModelConfig(**FAST), world[1:2]).eval()  # s2 only
    seen: set[int] = set()
    model.encoders["s2"].register_forward_pre_hook(lambda _m, args: seen.add(args[0].shape[0]))
    batch = batch_of(world[1:2], size=12)
    with torch.no_grad():
        one_by_one = torch.cat([model({k: v[i:i + 1] for k, v in batch.items()}).embeddings["s2"] for i in range(12)])
        for n in range(1, 13):  # every count of present sites: 1..12
            present = torch.arange(12) < n
            out = model({"s2": batch["s2"] * present[:, None, None, None], "s2_present": present})
            torch.testing.assert_close(out.embeddings["s2"][:n], one_by_one[:n], rtol=1e-4, atol=1e-5)
            assert (out.embeddings["s2"][n:] == 0).all() and (out.projections["s2"][n:] == 0).all()
    assert seen == {1, 2, 4, 8, 16}  # 5 shapes for 12 counts, not 12
