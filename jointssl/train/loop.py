"""The per-worker training step as plain functions: runs the same with or without Ray (tests use none).

A Ray Train worker (:mod:`jointssl.train.trainer`) only adds the data shard, DDP wrapping and
checkpoint reporting around these; keeping them free of Ray makes the arithmetic testable in
milliseconds on tiny random batches.

One step: numpy/tensor batch -> checked tensors -> :class:`MultiModalEncoder` -> the configured
joint-embedding loss over the present modalities (BYOL: online predictions against the momentum
target's projections) -> backward -> gradient-norm clipping -> AdamW with the learning rate set
from :func:`jointssl.train.schedule.warmup_cosine` for this step.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from jointssl.losses import build_loss, cosine_momentum, ema_update, make_target
from jointssl.models.config import ModelConfig
from jointssl.models.multimodal import ModalityInput, MultiModalEncoder
from jointssl.train.config import PretrainConfig
from jointssl.train.probe import knn_scores, macro_auprc
from jointssl.train.schedule import warmup_cosine


def seed_everything(seed: int) -> None:
    """Same seed -> same initial weights and augmentation draws on every run (and every rank)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def to_tensors(batch: Mapping[str, Any], modalities: Sequence[ModalityInput],
               device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """Chip batch (numpy or tensors) -> ``{m: [B C H W] float32, m_present: [B] bool}`` on ``device``.

    Only the model's inputs are kept (ids, labels and reasons stay behind). Shapes are checked here,
    at the edge, so a wrong preset or chip size fails with the modality's name instead of deep in a conv.
    """
    out: dict[str, Tensor] = {}
    size: int | None = None
    for spec in modalities:
        if spec.name not in batch:
            raise ValueError(f"batch has no '{spec.name}' column; expected the modalities {[m.name for m in modalities]}")
        x = torch.as_tensor(np.asarray(batch[spec.name]) if not isinstance(batch[spec.name], Tensor)
                            else batch[spec.name])
        want = (spec.bands, spec.chip_size, spec.chip_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(f"batch['{spec.name}'] must be [B {' '.join(map(str, want))}], got {tuple(x.shape)}")
        if size is None:
            size = x.shape[0]
        elif x.shape[0] != size:
            raise ValueError(f"batch['{spec.name}'] has {x.shape[0]} sites but an earlier modality has {size}")
        present = batch.get(f"{spec.name}_present")
        mask = (torch.ones(size, dtype=torch.bool) if present is None
                else torch.as_tensor(np.asarray(present) if not isinstance(present, Tensor) else present))
        if tuple(mask.shape) != (size,):
            raise ValueError(f"batch['{spec.name}_present'] must be [B]={size}, got {tuple(mask.shape)}")
        out[spec.name] = x.to(device=device, dtype=torch.float32)  # [B C H W]
        out[f"{spec.name}_present"] = mask.to(device=device, dtype=torch.bool)  # [B]
    return out


@dataclass
class TrainState:
    """Everything a checkpoint holds, plus the loss module (stateless but configured)."""

    model: nn.Module
    """The online encoder; under DDP the wrapped module (``unwrap`` gives the plain one)."""
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    objective: str
    target: nn.Module | None = None
    """BYOL's momentum target; None for the other objectives."""
    step: int = 0
    """Optimizer steps taken so far (global: the schedule's position)."""
    epoch: int = 0
    """Epoch in progress (0-based)."""
    step_in_epoch: int = 0
    """Steps of ``epoch`` already taken: where a resumed run continues the data."""


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under a DDP wrapper (the one to save, probe and export)."""
    return getattr(model, "module", model)


def build_model(config: ModelConfig, modalities: Sequence[ModalityInput], seed: int) -> MultiModalEncoder:
    seed_everything(seed)
    return MultiModalEncoder(config, list(modalities))


def build_state(model: nn.Module, model_config: ModelConfig, train: PretrainConfig) -> TrainState:
    """AdamW over ``model`` (no weight decay on biases and norm weights, as is usual), the loss, the target."""
    plain = unwrap(model)
    decay = [p for p in plain.parameters() if p.requires_grad and p.dim() > 1]
    rest = [p for p in plain.parameters() if p.requires_grad and p.dim() <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": train.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=train.lr)
    objective = model_config.objective
    loss_fn = build_loss(objective.name, **objective.hparams())
    target = make_target(plain) if objective.name == "byol" else None
    return TrainState(model, optimizer, loss_fn, objective.name, target)


def compute_loss(state: TrainState, batch: Mapping[str, Tensor], second: Mapping[str, Tensor] | None = None) -> Tensor:
    """The objective over every pair of present views of the batch.

    Views are the modalities of ``batch`` (cross-modal, the paper's point); with ``second`` (another
    augmentation of the same chips, for single-modality SSL such as S2-only SimCLR) each modality also
    has a second view ``m@2``, and the same losses apply unchanged.
    """
    out = state.model(batch)
    other = state.model(second) if second is not None else None
    projections, present = dict(out.projections), dict(out.present)
    predictions = dict(out.predictions) if out.predictions is not None else None
    if other is not None:
        projections.update({f"{m}@2": p for m, p in other.projections.items()})  # m -> [B P]
        present.update({f"{m}@2": p for m, p in other.present.items()})
        if predictions is not None and other.predictions is not None:
            predictions.update({f"{m}@2": p for m, p in other.predictions.items()})
    if state.objective == "byol":
        if state.target is None or predictions is None:
            raise ValueError("objective 'byol' needs a target network and predictor heads")
        with torch.no_grad():
            targets = dict(state.target(batch).projections)  # m -> [B P]
            if second is not None:
                targets.update({f"{m}@2": p for m, p in state.target(second).projections.items()})
        return state.loss_fn(predictions, targets, present)
    return state.loss_fn(projections, present)


@dataclass(frozen=True)
class StepResult:
    loss: float
    lr: float
    grad_norm: float


def train_step(state: TrainState, batch: Mapping[str, Tensor], train: PretrainConfig, total_steps: int,
               amp: bool = False, second: Mapping[str, Tensor] | None = None) -> StepResult:
    """One optimizer step at ``state.step`` of ``total_steps``; advances ``state.step``/``step_in_epoch``."""
    warmup = min(total_steps, round(train.warmup_fraction * total_steps))
    lr = train.lr * warmup_cosine(state.step, total_steps, warmup, train.lr_floor)
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    state.model.train()
    # bf16 autocast on GPU needs no loss scaling; CPUs train in float32
    context = torch.autocast("cuda", dtype=torch.bfloat16) if amp else nullcontext()
    with context:
        loss = compute_loss(state, batch, second)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss is {loss.item()} at step {state.step}; lower pretrain.lr")
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for p in state.model.parameters() if p.grad is not None]
    clip = train.grad_clip if train.grad_clip > 0 else float("inf")
    norm = torch.nn.utils.clip_grad_norm_(params, clip)
    state.optimizer.step()
    if state.target is not None:
        ema_update(state.target, unwrap(state.model), cosine_momentum(state.step, total_steps,
                                                                      state.loss_fn.base_momentum))
    state.step += 1
    state.step_in_epoch += 1
    return StepResult(float(loss.detach()), lr, float(norm))


@torch.no_grad()
def embed(model: nn.Module, batch: Mapping[str, Tensor], chunk: int = 64) -> np.ndarray:
    """[B F*M]: each site's backbone embeddings of every modality side by side (absent ones are zeros)."""
    plain = unwrap(model)
    was_training = plain.training
    plain.eval()
    n = next(iter(batch.values())).shape[0]
    parts = []
    for start in range(0, n, chunk):
        piece = {k: v[start:start + chunk] for k, v in batch.items()}
        out = plain(piece)
        parts.append(torch.cat([out.embeddings[m].float() for m in out.modalities], dim=1).cpu().numpy())
    plain.train(was_training)
    return np.concatenate(parts)


@dataclass(frozen=True)
class ProbeSet:
    """Labelled sites for the k-NN probe: the memory bank (train split) and the queries (val split)."""

    bank: dict[str, Tensor]
    bank_labels: np.ndarray
    """[N K] multi-hot."""
    queries: dict[str, Tensor]
    query_labels: np.ndarray
    """[M K] multi-hot."""


@dataclass(frozen=True)
class ProbeResult:
    macro_auprc: float
    queries: np.ndarray
    """[M F] the val sites' fused embeddings (for the embedding map)."""


def run_probe(model: nn.Module, probe_set: ProbeSet, k: int) -> ProbeResult:
    """k-NN classification of the val sites from the train sites' frozen embeddings."""
    bank = embed(model, probe_set.bank)  # [N F]
    queries = embed(model, probe_set.queries)  # [M F]
    score = macro_auprc(probe_set.query_labels, knn_scores(bank, probe_set.bank_labels, queries, k=k))
    return ProbeResult(score, queries)


def probe(model: nn.Module, probe_set: ProbeSet, k: int) -> float:
    """Macro AUPRC of the k-NN classifier on frozen embeddings (val sites against train sites)."""
    return run_probe(model, probe_set, k).macro_auprc


def use_sync_batchnorm(model: nn.Module) -> nn.Module:
    """Every BatchNorm layer -> SyncBatchNorm (statistics over all ranks); call before DDP wrapping.
    The state dict keeps its keys, so checkpoints load into the plain model for export."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)
