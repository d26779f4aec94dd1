"""The per-worker training step as plain functions: runs the same with or without Ray (tests use none).

A Ray Train worker (:mod:`jointssl.train.trainer`) only adds the data shard, DDP wrapping and
checkpoint reporting around these; keeping them free of Ray makes the arithmetic testable in
milliseconds on tiny random batches.

One step: numpy/tensor batch -> checked tensors -> :class:`MultiModalEncoder` -> the configured
joint-embedding objective over the present modalities (:mod:`jointssl.train.objective`; BYOL: online
predictions against the momentum target's projections) -> backward -> gradient-norm clipping -> AdamW
with the learning rate set from :func:`jointssl.train.schedule.warmup_cosine` for this step -> the
objective's after-step update (BYOL: the target's EMA).

Precision and layout, by configuration (``pretrain.amp``, ``pretrain.channels_last``,
``pretrain.pin_memory``): the forward passes under bf16 autocast with the loss in float32 (by default where
the device computes bf16 natively: :func:`native_bf16`), channels-last inputs and weights, and page-locked
host batches copied asynchronously (CUDA only).
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

from jointssl.models.config import ModelConfig
from jointssl.models.multimodal import ModalityInput, MultiModalEncoder
from jointssl.train.config import PretrainConfig
from jointssl.train.objective import Objective, build_objective, views_of
from jointssl.train.probe import knn_scores, macro_auprc
from jointssl.train.schedule import warmup_cosine


def seed_everything(seed: int) -> None:
    """Same seed -> same initial weights and augmentation draws on every run (and every rank)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def to_tensors(batch: Mapping[str, Any], modalities: Sequence[ModalityInput],
               device: torch.device | str = "cpu", channels_last: bool = False,
               pin_memory: bool = False) -> dict[str, Tensor]:
    """Chip batch (numpy or tensors) -> ``{m: [B C H W] float32, m_present: [B] bool}`` on ``device``.

    Only the model's inputs are kept (ids, labels and reasons stay behind). Shapes are checked here,
    at the edge, so a wrong preset or chip size fails with the modality's name instead of deep in a conv.
    ``channels_last``: chips in that memory format (same values); ``pin_memory``: page-locked host copies sent
    asynchronously, only when ``device`` is CUDA (elsewhere nothing to pin).
    """
    target = torch.device(device)
    pin = pin_memory and target.type == "cuda"
    layout = torch.channels_last if channels_last else torch.contiguous_format
    out: dict[str, Tensor] = {}
    size: int | None = None
    for spec in modalities:
        if spec.name not in batch:
            expected = [m.name for m in modalities]
            raise ValueError(f"batch has no '{spec.name}' column; expected the modalities {expected}")
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
        x = x.to(dtype=torch.float32)
        if pin:
            x, mask = x.pin_memory(), mask.pin_memory()
        out[spec.name] = x.to(device=target, non_blocking=pin).contiguous(memory_format=layout)  # [B C H W]
        out[f"{spec.name}_present"] = mask.to(device=target, dtype=torch.bool, non_blocking=pin)  # [B]
    return out


@dataclass
class TrainState:
    """Everything a checkpoint holds."""

    model: nn.Module
    """The online encoder; under DDP the wrapped module (``unwrap`` gives the plain one)."""
    optimizer: torch.optim.Optimizer
    objective: Objective
    """The loss and, for BYOL, the momentum target."""
    step: int = 0
    """Optimizer steps taken so far (global: the schedule's position)."""
    epoch: int = 0
    """Epoch in progress (0-based)."""
    step_in_epoch: int = 0
    """Steps of ``epoch`` already taken: where a resumed run continues the data."""


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under a DDP wrapper (the one to save, probe and export)."""
    return getattr(model, "module", model)


def build_model(config: ModelConfig, modalities: Sequence[ModalityInput], seed: int,
                channels_last: bool = False) -> MultiModalEncoder:
    seed_everything(seed)
    model = MultiModalEncoder(config, list(modalities))
    return model.to(memory_format=torch.channels_last) if channels_last else model


def build_state(model: nn.Module, model_config: ModelConfig, train: PretrainConfig) -> TrainState:
    """AdamW over ``model`` (no weight decay on biases and norm weights, as is usual) and the objective.

    The fused AdamW kernel: the same update as the per-tensor loop (tests/train/test_loop.py), measured
    3.3x less CPU per step for the demo's three ResNet-18s on 2 cores, where the loop took about a fifth
    of each training step."""
    plain = unwrap(model)
    decay = [p for p in plain.parameters() if p.requires_grad and p.dim() > 1]
    rest = [p for p in plain.parameters() if p.requires_grad and p.dim() <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": train.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=train.lr, fused=True)
    return TrainState(model, optimizer, build_objective(model_config, plain))


def compute_loss(state: TrainState, batch: Mapping[str, Tensor], second: Mapping[str, Tensor] | None = None,
                 amp: bool = False) -> Tensor:
    """The objective over every pair of present views of the batch, in float32.

    Views are the modalities of ``batch`` (cross-modal, the paper's point); with ``second`` (another
    augmentation of the same chips, for single-modality SSL such as S2-only SimCLR) each modality also
    has a second view ``m@2``, and the same losses apply unchanged. ``amp``: the forward passes under
    bf16 autocast on the batch's device; the loss itself always in float32, outside autocast.
    """
    device = next(iter(batch.values())).device.type
    context = torch.autocast(device, dtype=torch.bfloat16) if amp else nullcontext()
    with context:
        online = views_of(state.model, batch, second)
        target = state.objective.target_views(views_of, batch, second)
    return state.objective.loss(online.float(), None if target is None else target.float())


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: CUDA GPUs, and CPUs with AMX tiles (Intel Xeon since
    Sapphire Rapids), where oneDNN runs bf16 convolutions on the tile unit. Elsewhere bf16 is emulated and
    slower than float32. Measured on a 2-core AMX Xeon (the demo's three ResNet-18s, 64 sites, 2 threads):
    a training step 0.93 -> 0.74 s under bf16 autocast."""
    if device.type == "cuda":
        return True
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)  # torch's own CPU-feature probe (no public one)
    return device.type == "cpu" and amx is not None and bool(amx())


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
    loss = compute_loss(state, batch, second, amp=amp)  # bf16 needs no loss scaling
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss is {loss.item()} at step {state.step}; lower pretrain.lr")
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
    params = [p for p in state.model.parameters() if p.grad is not None]
    clip = train.grad_clip if train.grad_clip > 0 else float("inf")
    norm = torch.nn.utils.clip_grad_norm_(params, clip)
    state.optimizer.step()
    state.objective.after_step(unwrap(state.model), state.step, total_steps)
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
    # torch leaves convert_sync_batchnorm unannotated
    converted: nn.Module = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # type: ignore[no-untyped-call]  # unannotated in torch
    return converted
