"""Objective names (as written in configs) -> loss classes."""

from __future__ import annotations

from typing import Any

from torch import nn

from jointssl.losses.barlow_twins import BarlowTwinsLoss
from jointssl.losses.byol import BYOLLoss
from jointssl.losses.infonce import InfoNCELoss
from jointssl.losses.vicreg import VICRegLoss

LOSSES: dict[str, type[nn.Module]] = {
    "infonce": InfoNCELoss,
    "vicreg": VICRegLoss,
    "barlow_twins": BarlowTwinsLoss,
    "byol": BYOLLoss,
}


def loss_class(name: str) -> type[nn.Module]:
    if name not in LOSSES:
        raise ValueError(f"unknown objective {name!r}; known: {', '.join(sorted(LOSSES))}")
    return LOSSES[name]


def build_loss(name: str, **hparams: Any) -> nn.Module:
    """``build_loss("vicreg", invariance_weight=25.0)``; unknown names or hyperparameters raise ValueError."""
    cls = loss_class(name)
    try:
        return cls(**hparams)
    except TypeError as err:
        raise ValueError(f"bad hyperparameters for objective {name!r}: {err}") from None
