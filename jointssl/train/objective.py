"""The training objective as one object: the loss over the model's views and, for momentum-target
methods (BYOL), the target network, its EMA after each step and its part of a checkpoint.

:func:`build_objective` is the only place that asks whether a loss needs a momentum target (the loss
class's ``momentum_target``); the step (:mod:`jointssl.train.loop`) and the checkpoints
(:mod:`jointssl.train.checkpoint`) call the same methods for every objective.

Precision: the forward passes may run under bf16 autocast; :meth:`Objective.loss` always receives the
views cast to float32 and runs outside autocast (the Barlow Twins cross-correlation and the InfoNCE
logits lose precision in bf16).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from jointssl.losses import build_loss, ema_update, make_target
from jointssl.models.config import ModelConfig


@dataclass(frozen=True)
class Views:
    """Every view of a step: ``m`` per modality and, with a second augmentation, ``m@2``."""

    projections: dict[str, Tensor]
    """view -> [B P]."""
    present: dict[str, Tensor]
    """view -> [B] bool."""
    predictions: dict[str, Tensor] | None
    """view -> [B P] the online network's predictor outputs (momentum-target objectives only)."""

    def float(self) -> Views:
        return Views({k: v.float() for k, v in self.projections.items()}, self.present,
                     None if self.predictions is None else {k: v.float() for k, v in self.predictions.items()})


def views_of(model: nn.Module, batch: Mapping[str, Tensor], second: Mapping[str, Tensor] | None = None) -> Views:
    """The model's outputs for ``batch`` (and ``second``, another augmentation of the same chips, as ``m@2``)."""
    out = model(batch)
    projections, present = dict(out.projections), dict(out.present)
    predictions = dict(out.predictions) if out.predictions is not None else None
    if second is not None:
        other = model(second)
        projections.update({f"{m}@2": p for m, p in other.projections.items()})  # m@2 -> [B P]
        present.update({f"{m}@2": p for m, p in other.present.items()})
        if predictions is not None and other.predictions is not None:
            predictions.update({f"{m}@2": p for m, p in other.predictions.items()})
    return Views(projections, present, predictions)


Forward = Callable[[nn.Module, Mapping[str, Tensor], Mapping[str, Tensor] | None], Views]


class Objective:
    """A joint-embedding loss over the online network's projections (InfoNCE, VICReg, Barlow Twins)."""

    def __init__(self, loss_fn: nn.Module):
        self.loss_fn = loss_fn

    def target_views(self, forward: Forward, batch: Mapping[str, Tensor],
                     second: Mapping[str, Tensor] | None) -> Views | None:
        """The views the online ones are compared with, when they come from another network."""
        return None

    def loss(self, online: Views, target: Views | None) -> Tensor:
        value: Tensor = self.loss_fn(online.projections, online.present)
        return value

    def after_step(self, online: nn.Module, step: int, total_steps: int) -> None:
        """Called after each optimizer step with the plain (unwrapped) online network."""

    def state_dict(self) -> dict[str, Any] | None:
        return None

    def load_state_dict(self, saved: dict[str, Any] | None) -> None:
        return None


class MomentumObjective(Objective):
    """BYOL (Grill et al. 2020): the online predictions of each view against a momentum target's projections of
    the other; the target follows the online network by an EMA at the loss's cosine schedule
    (``loss_fn.momentum(step, total_steps)``)."""

    def __init__(self, loss_fn: nn.Module, target: nn.Module):
        super().__init__(loss_fn)
        self.target = target

    def target_views(self, forward: Forward, batch: Mapping[str, Tensor],
                     second: Mapping[str, Tensor] | None) -> Views:
        with torch.no_grad():
            return forward(self.target, batch, second)

    def loss(self, online: Views, target: Views | None) -> Tensor:
        if online.predictions is None or target is None:
            raise ValueError(f"{type(self.loss_fn).__name__} needs the online network's predictor heads and the "
                             "target's projections")
        value: Tensor = self.loss_fn(online.predictions, target.projections, online.present)
        return value

    def after_step(self, online: nn.Module, step: int, total_steps: int) -> None:
        # getattr: nn.Module's __getattr__ would type the method as a Tensor
        momentum: Callable[[int, int], float] = getattr(self.loss_fn, "momentum")  # noqa: B009 - typed getattr
        ema_update(self.target, online, momentum(step, total_steps))

    def state_dict(self) -> dict[str, Any]:
        return dict(self.target.state_dict())

    def load_state_dict(self, saved: dict[str, Any] | None) -> None:
        if saved is not None:
            self.target.load_state_dict(saved)


def build_objective(config: ModelConfig, online: nn.Module) -> Objective:
    """The configured objective; ``online`` is the plain model (a momentum target starts as its copy)."""
    loss_fn = build_loss(config.objective.name, **config.objective.hparams())
    if getattr(loss_fn, "momentum_target", False):
        return MomentumObjective(loss_fn, make_target(online))
    return Objective(loss_fn)
