"""Per-modality encoders: band-sized stems, the small-chip (CIFAR-style) stem, stem/trunk split."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from jointssl.models.encoder import create_backbone, modality_encoder, shared_trunk, split_resnet, use_small_input_stem
from jointssl.models.projector import MLP, predictor, projector


@pytest.mark.parametrize("bands, size", [(4, 64), (12, 32), (2, 32)])  # world: naip, s2, s1
def test_encoder_output_shape_per_modality(bands: int, size: int) -> None:
    encoder = modality_encoder("resnet18", bands, small_input_stem=size <= 32).eval()
    with torch.no_grad():
        out = encoder(torch.randn(2, bands, size, size))
    assert out.shape == (2, 512) and encoder.out_dim == 512
    assert encoder.stem[0].in_channels == bands


def test_small_input_stem_keeps_spatial_detail() -> None:
    plain = create_backbone("resnet18", 12).eval()
    small = create_backbone("resnet18", 12, small_input_stem=True).eval()
    assert isinstance(small.maxpool, nn.Identity)
    assert small.conv1.stride == (1, 1) and small.conv1.kernel_size == (3, 3)
    x = torch.randn(1, 12, 32, 32)
    with torch.no_grad():
        assert plain.forward_features(x).shape[-2:] == (1, 1)  # 32 / 32
        assert small.forward_features(x).shape[-2:] == (4, 4)  # 32 / 8


def test_small_input_stride_two_halves_the_first_stage() -> None:
    small = create_backbone("resnet18", 12, small_input_stem=True, small_input_stride=2).eval()
    assert small.conv1.stride == (2, 2) and isinstance(small.maxpool, nn.Identity)
    x = torch.randn(1, 12, 32, 32)
    with torch.no_grad():
        assert small.act1(small.bn1(small.conv1(x))).shape[-2:] == (16, 16)
        assert small.forward_features(x).shape[-2:] == (2, 2)  # 32 / 16


def test_split_is_the_same_function_and_embed_dim() -> None:
    model = create_backbone("resnet18", 2).eval()
    stem, trunk = split_resnet(model)
    x = torch.randn(2, 2, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(trunk(stem(x)), model(x))
    encoder = modality_encoder("resnet18", 2, embed_dim=64).eval()
    with torch.no_grad():
        assert encoder(x).shape == (2, 64)


def test_shared_trunk_is_one_module() -> None:
    trunk = shared_trunk("resnet18")
    a = modality_encoder("resnet18", 4, trunk=trunk)
    b = modality_encoder("resnet18", 12, small_input_stem=True, trunk=trunk)
    assert a.trunk is b.trunk
    assert a.stem[0].in_channels == 4 and b.stem[0].in_channels == 12


def test_bad_input_raises() -> None:
    encoder = modality_encoder("resnet18", 4)
    with pytest.raises(ValueError, match=r"\[B 4 H W\]"):
        encoder(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="not a timm model"):
        create_backbone("no_such_net", 4)
    with pytest.raises(ValueError, match="ResNet"):
        use_small_input_stem(nn.Linear(2, 2), 2)
    with pytest.raises(ValueError, match="in_chans"):
        create_backbone("resnet18", 0)


def test_heads() -> None:
    head = projector(512, 64, 16, layers=3)
    assert head(torch.randn(4, 512)).shape == (4, 16)
    assert sum(isinstance(m, nn.Linear) for m in head) == 3
    assert predictor(16, 32)(torch.randn(4, 16)).shape == (4, 16)
    with pytest.raises(ValueError, match=r"\[B 512\]"):
        head(torch.randn(4, 16))
    with pytest.raises(ValueError, match="layer"):
        MLP(4, 4, 4, layers=0)
