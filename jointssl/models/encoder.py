"""One modality's backbone: a timm model whose stem is sized to the modality's bands and chips.

Backbones come from timm (``timm.create_model(name, in_chans=C, pretrained=False, num_classes=0)``):
ImageNet weights assume 3 RGB bands, and our modalities have 4 (NAIP), 12 (Sentinel-2) and 2
(Sentinel-1) bands, so every model is trained from scratch with a first convolution of the right
width (He et al. 2016, ResNet, arXiv:1512.03385, is the default family).

Small chips: the ImageNet stem (7x7 stride-2 conv, then a stride-2 max-pool) divides the image by 4
before the first residual stage; a 32x32 Sentinel-2 chip is 8x8 there and 1x1 after the last stage.
For small inputs SimCLR (Chen et al. 2020, arXiv:2002.05709, appendix B.9, CIFAR-10) replaces the
stem by a 3x3 stride-1 conv and drops the max-pool, which keeps 4x4 after the last stage at a 16x
compute cost per chip (still cheap at 32 px). :func:`use_small_input_stem` does this; with ``stride`` 2
it keeps a 32 px chip 16x16 in the first stage and 2x2 after the last, at about a quarter of that cost.

ResNets are split into a *stem* (conv1, bn1, act1, maxpool) and a *trunk* (the residual stages and
global pooling) so that modalities can share one trunk behind their own stems.
"""

from __future__ import annotations

from typing import cast

import timm
from torch import Tensor, nn

RESNET_STEM = ("conv1", "bn1", "act1", "maxpool")
RESNET_TRUNK = ("layer1", "layer2", "layer3", "layer4", "global_pool")


def create_backbone(name: str, in_chans: int, small_input_stem: bool = False, small_input_stride: int = 1
                    ) -> nn.Module:
    """A randomly initialised timm model ``[B C H W] -> [B F]`` (no classifier)."""
    if in_chans < 1:
        raise ValueError(f"in_chans must be >= 1, got {in_chans}")
    try:
        model = timm.create_model(name, in_chans=in_chans, pretrained=False, num_classes=0)
    except RuntimeError as err:  # timm: "Unknown model (...)"
        raise ValueError(f"backbone {name!r} is not a timm model: {err}") from None
    if small_input_stem:
        use_small_input_stem(model, in_chans, small_input_stride)
    return model


def is_resnet(model: nn.Module) -> bool:
    return all(hasattr(model, part) for part in RESNET_STEM + RESNET_TRUNK)


def use_small_input_stem(model: nn.Module, in_chans: int, stride: int = 1) -> None:
    """In place: ResNet stem conv -> 3x3 with ``stride`` (1: CIFAR-style), max-pool -> identity."""
    if not is_resnet(model):
        raise ValueError(f"small_input_stem needs a ResNet-family backbone (conv1/bn1/maxpool), "
                         f"got {type(model).__name__}")
    width = cast(nn.BatchNorm2d, model.bn1).num_features  # nn.Module.__getattr__ is typed Tensor | Module
    model.conv1 = nn.Conv2d(in_chans, width, kernel_size=3, stride=stride, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()


def split_resnet(model: nn.Module) -> tuple[nn.Sequential, nn.Sequential]:
    """(stem, trunk) of a timm ResNet; ``trunk(stem(x))`` equals ``model(x)`` for ``num_classes=0``."""
    if not is_resnet(model):
        raise ValueError(f"shared_trunk needs a ResNet-family backbone, got {type(model).__name__}")
    stem = nn.Sequential(*(getattr(model, part) for part in RESNET_STEM))
    trunk = nn.Sequential(*(getattr(model, part) for part in RESNET_TRUNK))
    return stem, trunk


class ModalityEncoder(nn.Module):
    """``[B C H W] -> [B F]``: stem, trunk (possibly shared with other modalities), optional linear.

    Args:
        stem: modality-specific first layers (``nn.Identity()`` when the trunk is a whole model).
        trunk: the rest of the backbone, ending in global pooling.
        in_chans: the modality's band count, checked on every call.
        features: the trunk's output width.
        embed_dim: project the features to this width with a linear layer (None: keep ``features``).
    """

    def __init__(self, stem: nn.Module, trunk: nn.Module, in_chans: int, features: int,
                 embed_dim: int | None = None):
        super().__init__()
        self.stem = stem
        self.trunk = trunk
        self.embed = nn.Identity() if embed_dim is None else nn.Linear(features, embed_dim)
        self.in_chans = in_chans
        self.out_dim = features if embed_dim is None else embed_dim

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"expected [B {self.in_chans} H W] input, got {tuple(x.shape)}")
        out: Tensor = self.embed(self.trunk(self.stem(x)))  # [B C H W] -> [B F] -> [B D]
        return out


def modality_encoder(backbone: str, in_chans: int, small_input_stem: bool = False,
                     embed_dim: int | None = None, trunk: nn.Module | None = None,
                     small_input_stride: int = 1) -> ModalityEncoder:
    """An encoder with its own backbone, or (``trunk`` given) its own stem in front of ``trunk``."""
    model = create_backbone(backbone, in_chans, small_input_stem, small_input_stride)
    features = int(cast(int, model.num_features))  # timm sets an int; nn.Module.__getattr__ says Tensor | Module
    if trunk is not None:
        stem, _ = split_resnet(model)
        return ModalityEncoder(stem, trunk, in_chans, features, embed_dim)
    if is_resnet(model):
        stem, own_trunk = split_resnet(model)
        return ModalityEncoder(stem, own_trunk, in_chans, features, embed_dim)
    return ModalityEncoder(nn.Identity(), model, in_chans, features, embed_dim)


def shared_trunk(backbone: str) -> nn.Sequential:
    """The residual stages + pooling of one ``backbone``, to be shared by every modality's stem."""
    _, trunk = split_resnet(create_backbone(backbone, in_chans=3))
    return trunk
