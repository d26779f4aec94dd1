"""Intra-modal augmentations: shapes, absent sites, the kind decides the radiometric change, seeds,
exact pixel permutations, and the speckle's statistics against the gamma model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from jointssl.config import load_job_config
from jointssl.config.load import ConfigError
from jointssl.sensors.registry import PRESETS, load_preset
from jointssl.train.augment import Augmenter, ViewSpec, augment_view, speckle
from jointssl.train.config import AugmentConfig

NAIP = ViewSpec("naip", "optical", (0.40, 0.42, 0.38, 0.50), (0.16, 0.14, 0.13, 0.18))
S2 = ViewSpec("s2", "optical", tuple([0.1] * 12), tuple([0.05] * 12))
S1 = ViewSpec("s1", "sar", (-11.0, -18.0), (4.0, 4.0))
VIEWS = [NAIP, S2, S1]
SIZES = {"naip": 16, "s2": 8, "s1": 8}
OFF = AugmentConfig(flip=False, rot90=False, crop_scale_min=1.0, spectral_jitter=0.0, speckle_looks=0.0)


def batch(n: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for v in VIEWS:
        out[v.name] = torch.randn(n, len(v.mean), SIZES[v.name], SIZES[v.name], generator=g)  # [B C H W]
        out[f"{v.name}_present"] = torch.ones(n, dtype=torch.bool)  # [B]
    out["s1"][:2] = 0.0  # two sites without S1: zero chips, marked absent
    out["s1_present"][:2] = False
    out["naip_present"][-1] = False
    out["naip"][-1] = 0.0
    return out


def dihedral(x: torch.Tensor) -> list[torch.Tensor]:
    """The 8 flips/rotations of a [C H W] chip."""
    rotations = [torch.rot90(x, k, dims=(-2, -1)) for k in range(4)]
    return rotations + [r.flip(-1) for r in rotations]


def test_shapes_dtypes_and_other_keys_preserved():
    b = batch()
    out = Augmenter(AugmentConfig(), VIEWS, seed=0)(b, step=3)
    assert set(out) == set(b)
    for v in VIEWS:
        assert out[v.name].shape == b[v.name].shape and out[v.name].dtype == torch.float32
        assert torch.equal(out[f"{v.name}_present"], b[f"{v.name}_present"])
        assert not torch.equal(out[v.name], b[v.name])  # something happened


def test_absent_rows_are_untouched():
    b = batch()
    out = Augmenter(AugmentConfig(crop_scale_min=0.3, spectral_jitter=0.5, speckle_looks=1.0), VIEWS, seed=1)(b, 0)
    assert torch.equal(out["s1"][:2], torch.zeros_like(out["s1"][:2]))  # zeros stay zeros
    assert torch.equal(out["naip"][-1], b["naip"][-1])
    assert not torch.equal(out["s1"][2:], b["s1"][2:])


def test_sar_gets_no_spectral_jitter_and_optical_no_speckle():
    b = batch()
    jitter_only = Augmenter(AugmentConfig(**{**OFF.__dict__, "spectral_jitter": 0.3}), VIEWS, seed=0)(b, 0)
    assert torch.equal(jitter_only["s1"], b["s1"])
    assert not torch.equal(jitter_only["s2"], b["s2"]) and not torch.equal(jitter_only["naip"], b["naip"])
    speckle_only = Augmenter(AugmentConfig(**{**OFF.__dict__, "speckle_looks": 4.0}), VIEWS, seed=0)(b, 0)
    assert torch.equal(speckle_only["s2"], b["s2"]) and torch.equal(speckle_only["naip"], b["naip"])
    assert not torch.equal(speckle_only["s1"][2:], b["s1"][2:])


def test_spectral_jitter_is_a_per_band_affine_map_in_physical_units():
    x = batch()["s2"]
    out = augment_view(x, torch.ones(len(x), dtype=torch.bool), S2,
                       AugmentConfig(**{**OFF.__dict__, "spectral_jitter": 0.2}), torch.Generator().manual_seed(0))
    mean, std = torch.tensor(S2.mean)[None, :, None, None], torch.tensor(S2.std)[None, :, None, None]
    phys, phys_out = x * std + mean, out * std + mean  # [B C H W] reflectance
    flat, flat_out = phys.flatten(2), phys_out.flatten(2)  # [B C HW]
    gain = (flat_out[..., 1] - flat_out[..., 0]) / (flat[..., 1] - flat[..., 0])  # [B C]
    offset = flat_out[..., 0] - gain * flat[..., 0]  # [B C], reflectance
    np.testing.assert_allclose(flat_out, gain[..., None] * flat + offset[..., None], rtol=1e-4, atol=1e-5)
    assert ((gain >= 0.8 - 1e-5) & (gain <= 1.2 + 1e-5)).all()
    assert (offset.abs() <= 0.2 * std.flatten()[None] + 1e-5).all()


def test_speckle_is_log_gamma_noise_in_db():
    looks = 4.0
    x = torch.zeros(64, 2, 32, 32)  # every pixel at the band mean
    out = speckle(x, S1, looks, torch.Generator().manual_seed(0))
    noise_db = (out * torch.tensor(S1.std)[None, :, None, None]).flatten().double()
    # E[10 log10 G] = 10/ln10 (psi(L) - ln L); Var = (10/ln10)^2 psi'(L), G ~ Gamma(L, 1/L)
    db = 10 / math.log(10)
    assert noise_db.mean().item() == pytest.approx(db * (torch.digamma(torch.tensor(looks)).item() - math.log(looks)),
                                                   abs=0.02)
    assert noise_db.var().item() == pytest.approx(db**2 * torch.polygamma(1, torch.tensor(looks)).item(), rel=0.02)
    linear = 10 ** (noise_db / 10)
    assert linear.mean().item() == pytest.approx(1.0, abs=0.01)  # multiplicative, mean 1 in linear power


def test_flips_and_rot90_are_exact_pixel_permutations():
    b = batch(n=16)
    config = AugmentConfig(**{**OFF.__dict__, "flip": True, "rot90": True})
    out = Augmenter(config, VIEWS, seed=0)(b, step=0)
    seen = set()
    for v in VIEWS:
        for i in range(len(b[v.name])):
            matches = [k for k, d in enumerate(dihedral(b[v.name][i])) if torch.equal(d, out[v.name][i])]
            assert matches, f"{v.name}[{i}] is not a flip/rotation of its input"
            seen.add(matches[0])
    assert len(seen) >= 4  # and the draws vary


def test_crop_resizes_back_within_the_input_range_and_scale_one_is_identity():
    b = batch()
    out = augment_view(b["naip"], b["naip_present"], NAIP, AugmentConfig(**{**OFF.__dict__, "crop_scale_min": 0.3}),
                       torch.Generator().manual_seed(0))
    assert out.shape == b["naip"].shape
    lo, hi = b["naip"].amin(dim=(1, 2, 3)), b["naip"].amax(dim=(1, 2, 3))  # bilinear: convex combinations
    assert (out.amin(dim=(1, 2, 3)) >= lo - 1e-5).all() and (out.amax(dim=(1, 2, 3)) <= hi + 1e-5).all()
    same = Augmenter(OFF, VIEWS, seed=0)(b, 0)
    assert all(torch.equal(same[v.name], b[v.name]) for v in VIEWS)


def test_same_seed_same_views_and_steps_differ():
    b = batch()
    one = Augmenter(AugmentConfig(), VIEWS, seed=5)(b, step=7)
    two = Augmenter(AugmentConfig(), VIEWS, seed=5)(b, step=7)
    assert all(torch.equal(one[v.name], two[v.name]) for v in VIEWS)
    later = Augmenter(AugmentConfig(), VIEWS, seed=5)(b, step=8)
    other_rank = Augmenter(AugmentConfig(), VIEWS, seed=5, rank=1)(b, step=7)
    assert not torch.equal(one["s2"], later["s2"]) and not torch.equal(one["s2"], other_rank["s2"])


def test_disabled_returns_the_batch():
    b = batch()
    out = Augmenter(AugmentConfig(enabled=False), VIEWS, seed=0)(b, 0)
    assert all(out[k] is b[k] for k in b)


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown modality kind"):
        Augmenter(AugmentConfig(), [ViewSpec("x", "lidar", (0.0,), (1.0,))], seed=0)


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_mark_sar_as_sar(preset):
    """Every modality in decibels is SAR, every other one optical: the kinds in the presets are right."""
    for modality in load_preset(preset).values():
        assert modality.kind == ("sar" if modality.transform == "db" else "optical"), modality.collection
        assert ViewSpec.of(modality).std == tuple(b.std for b in modality.bands)


def test_config_ranges_checked():
    with pytest.raises(ConfigError, match="pretrain.augment.crop_scale_min"):
        load_job_config("configs/test.yaml", ["--pretrain.augment.crop_scale_min", "0"])
    with pytest.raises(ConfigError, match="pretrain.augment.speckle_loks"):
        load_job_config("configs/test.yaml", ["--pretrain.augment.speckle_loks", "4"])
    with pytest.raises(ConfigError, match="pretrain.sync_batchnorm"):
        load_job_config("configs/test.yaml", ["--pretrain.sync_batchnorm", "true"])
