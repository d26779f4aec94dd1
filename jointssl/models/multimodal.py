"""The joint encoder: one encoder (or stem on a shared trunk) per modality, projector heads, output.

Input is a chip batch as :mod:`jointssl.data.dataset` yields it, as tensors: per modality ``m``
``m`` [B C H W] float32 (invalid pixels already 0), and ``m_present`` [B] bool (optional, all
present when absent). Output is a typed :class:`MultiModalOutput`, ready for
:mod:`jointssl.losses` (``loss(out.projections, out.present)``).

Missing chips: only sites that have a modality go through its encoder, so all-zero placeholder
chips never enter batch-norm statistics; their outputs are zeros and ``present`` marks them.
When fewer than two sites have a modality, the whole batch goes through (batch norm cannot train
on one sample) and the outputs are still masked, which keeps every parameter in the autograd graph
as DDP expects. In eval mode (inference, embedding extraction) the present rows are padded with zero
chips to the next power of two, so a long run meets a handful of batch shapes per modality, not one per
count of present sites: on CPU, oneDNN keeps a compiled primitive per shape it has seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from jointssl.losses import loss_class
from jointssl.models.config import ModelConfig
from jointssl.models.encoder import ModalityEncoder, modality_encoder, shared_trunk
from jointssl.models.projector import predictor, projector
from jointssl.sensors.spec import Modality


@dataclass(frozen=True)
class ModalityInput:
    """What the model needs to know of a modality: band count and chip size."""

    name: str
    bands: int
    chip_size: int

    @classmethod
    def of(cls, modality: Modality) -> ModalityInput:
        return cls(modality.name, len(modality.bands), modality.chip_size)


@dataclass(frozen=True)
class MultiModalOutput:
    """Per-modality outputs of :class:`MultiModalEncoder`, keyed by modality name."""

    embeddings: dict[str, Tensor]
    """m -> [B F] backbone embedding (the representation used downstream)."""
    projections: dict[str, Tensor]
    """m -> [B P] projector output (the loss input; under BYOL the target network's projections are
    these outputs of the target copy of this model)."""
    present: dict[str, Tensor]
    """m -> [B] bool, whether the site has the modality (outputs of absent sites are zeros)."""
    predictions: dict[str, Tensor] | None = None
    """m -> [B P] the online network's predictor output (objectives with a momentum target: BYOL);
    None for the other objectives."""

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.embeddings)


class MultiModalEncoder(nn.Module):
    """Encoders, projectors (and BYOL predictors) for each modality.

    Args:
        config: the model section (backbone, shared trunk, stems, head sizes, objective).
        modalities: the modalities to encode, e.g. ``[ModalityInput.of(m) for m in preset]``.
    """

    def __init__(self, config: ModelConfig, modalities: list[ModalityInput] | list[Modality]):
        super().__init__()
        inputs = [m if isinstance(m, ModalityInput) else ModalityInput.of(m) for m in modalities]
        if not inputs:
            raise ValueError("MultiModalEncoder needs at least one modality")
        names = [m.name for m in inputs]
        if len(set(names)) != len(names):
            raise ValueError(f"modality names repeat: {names}")
        self.config = config
        self.inputs = {m.name: m for m in inputs}
        trunk = shared_trunk(config.backbone) if config.shared_trunk else None
        self.encoders = nn.ModuleDict({
            m.name: modality_encoder(config.backbone, m.bands,
                                     config.small_input_stem and m.chip_size <= config.small_input_max_px,
                                     config.embed_dim, trunk, config.small_input_stride)
            for m in inputs
        })
        first: ModalityEncoder = next(iter(self.encoders.values()))  # type: ignore[assignment]  # ModuleDict yields Module
        dim = first.out_dim
        self.projectors = nn.ModuleDict({
            m.name: projector(dim, config.proj_hidden_dim, config.proj_dim, config.proj_layers) for m in inputs
        })
        self.predictors: nn.ModuleDict | None = None
        # BYOL: the online network predicts the target
        if getattr(loss_class(config.objective.name), "momentum_target", False):
            self.predictors = nn.ModuleDict({
                m.name: predictor(config.proj_dim, config.pred_hidden_dim) for m in inputs
            })

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.inputs)

    def forward(self, batch: Mapping[str, Tensor]) -> MultiModalOutput:
        embeddings: dict[str, Tensor] = {}
        projections: dict[str, Tensor] = {}
        predictions: dict[str, Tensor] = {}
        present: dict[str, Tensor] = {}
        for name in self.inputs:
            x, mask = self._modality_input(batch, name)
            encoder: ModalityEncoder = self.encoders[name]  # type: ignore[assignment]  # ModuleDict
            heads = [self.projectors[name]]
            if self.predictors is not None:
                heads.append(self.predictors[name])
            outs = _run_present(x, mask, encoder, heads)
            embeddings[name], projections[name] = outs[0], outs[1]
            if self.predictors is not None:
                predictions[name] = outs[2]
            present[name] = mask
        return MultiModalOutput(embeddings, projections, present,
                                predictions if self.predictors is not None else None)

    def _modality_input(self, batch: Mapping[str, Tensor], name: str) -> tuple[Tensor, Tensor]:
        """Check ``batch[name]`` ([B C H W] float) and ``batch[name_present]`` ([B] bool)."""
        if name not in batch:
            raise ValueError(f"batch has no '{name}' tensor; the model encodes {list(self.inputs)}")
        x = batch[name]
        spec = self.inputs[name]
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != spec.bands:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"batch['{name}'] must be [B {spec.bands} H W], got {shape}")
        mask = batch.get(f"{name}_present")
        if mask is None:
            return x, torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        if not isinstance(mask, Tensor) or tuple(mask.shape) != (x.shape[0],):
            raise ValueError(f"batch['{name}_present'] must be a [B]={x.shape[0]} tensor")
        return x, mask.to(device=x.device, dtype=torch.bool)


def _run_present(x: Tensor, mask: Tensor, encoder: nn.Module, heads: list[nn.Module]) -> list[Tensor]:
    """[embedding, head outputs...] for every site; rows of absent sites are zeros."""
    n = int(mask.sum())
    if not encoder.training:
        return _run_present_bucketed(x, mask, n, encoder, heads)
    rows = x[mask] if n >= 2 else x  # [N C H W]; < 2 sites: whole batch (batch norm needs 2)
    outs = _chain(encoder, heads, rows)  # [N D], [N P] (, [N P])
    if n >= 2:
        full = []
        for out in outs:
            placed = out.new_zeros((x.shape[0], out.shape[1]))  # [B D]
            full.append(placed.index_put((mask,), out))
        return full
    return [out * mask[:, None].to(out.dtype) for out in outs]  # [B D], absent rows -> 0


def _run_present_bucketed(x: Tensor, mask: Tensor, n: int, encoder: nn.Module, heads: list[nn.Module]
                          ) -> list[Tensor]:
    """Eval mode: the present rows padded with zero chips to ``bucket_rows(n)`` rows, encoded, and the
    padding dropped (batch norm uses running statistics, so rows do not see each other)."""
    rows = x.new_zeros((bucket_rows(n), *x.shape[1:]))  # [N' C H W], N' = bucket_rows(n) >= n
    rows[:n] = x[mask]
    outs = _chain(encoder, heads, rows)  # [N' D], [N' P] (, [N' P])
    full = []
    for out in outs:
        placed = out.new_zeros((x.shape[0], out.shape[1]))  # [B D]
        full.append(placed.index_put((mask,), out[:n]))
    return full


BUCKET_STEP = 16
"""Above this many rows, eval batches are padded to a multiple of it (below, to a power of two)."""


def bucket_rows(n: int) -> int:
    """Rows an eval batch of ``n`` present chips is padded to: 1, 2, 4, 8, 16, then 32, 48, 64, ... (a
    handful of shapes for oneDNN / cuDNN, and less than ``BUCKET_STEP`` rows of padding above 16: 35 val
    sites encode 48 rows, not the next power of two's 64)."""
    if n <= BUCKET_STEP:
        return 1 << max(0, n - 1).bit_length()
    return -(-n // BUCKET_STEP) * BUCKET_STEP


def _chain(encoder: nn.Module, heads: list[nn.Module], x: Tensor) -> list[Tensor]:
    """encoder -> projector (-> predictor): each head reads the previous output."""
    outs = [encoder(x)]
    for head in heads:
        outs.append(head(outs[-1]))
    return outs
