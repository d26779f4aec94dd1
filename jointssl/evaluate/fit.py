"""Training the classifiers that evaluation compares: linear probes, fine-tuning, supervised.

- :func:`fit_probe`: a linear head (Standardize -> Linear) on *frozen* embeddings, full batch AdamW
  with binary cross-entropy per class; the L2 strength is picked on the validation split's macro
  AUPRC. Embeddings are computed once; modality dropout (for fused heads) hides whole modality blocks
  of the cached embeddings, which is exactly what hiding the chips would produce for a frozen encoder.
- :func:`fit_end_to_end`: encoder + head trained together on chips (fine-tuning from SSL weights, or
  supervised from random weights), mini-batches, the head at 10x the encoder's learning rate, the
  epoch with the best validation macro AUPRC kept.

Both return a :class:`~jointssl.classify.model.MethaneClassifier`, so every row of the results
table is a model that could be registered and deployed as is.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from jointssl.classify.model import Fusion, MethaneClassifier, Standardize, drop_modalities, fuse, fused_dim
from jointssl.evaluate.data import Split
from jointssl.evaluate.metrics import macro_auprc
from jointssl.models.encoder import ModalityEncoder
from jointssl.models.multimodal import MultiModalEncoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Embedded:
    """A split's frozen embeddings: m -> [N F] and presence m -> [N] bool."""

    embeddings: dict[str, Tensor]
    present: dict[str, Tensor]

    def subset(self, rows: np.ndarray) -> Embedded:
        return Embedded({m: v[rows] for m, v in self.embeddings.items()},
                        {m: v[rows] for m, v in self.present.items()})


@torch.no_grad()
def embed_split(encoder: MultiModalEncoder, split: Split, chunk: int = 128) -> Embedded:
    """Backbone embeddings of every site of ``split`` (eval mode, no gradients)."""
    encoder.eval()
    parts: dict[str, list[Tensor]] = {m: [] for m in encoder.modalities}
    for start in range(0, len(split), chunk):
        out = encoder({k: v[start:start + chunk] for k, v in split.chips.items()})
        for m in encoder.modalities:
            parts[m].append(out.embeddings[m].float())
    return Embedded({m: torch.cat(v) for m, v in parts.items()},
                    {m: split.chips[f"{m}_present"] for m in encoder.modalities})


def _features(e: Embedded, modalities: Sequence[str], fusion: Fusion, dropout: float = 0.0,
              generator: torch.Generator | None = None) -> Tensor:
    present = {m: e.present[m] for m in modalities}
    if dropout > 0:
        present = drop_modalities(present, dropout, generator)
    return fuse({m: e.embeddings[m] for m in modalities}, present, modalities, fusion)  # [N D]


@dataclass(frozen=True)
class Fitted:
    classifier: MethaneClassifier
    val_macro_auprc: float
    detail: str
    """What was chosen (e.g. the weight decay or the best epoch), for the report."""
    probs_val: np.ndarray
    """The classifier's uncalibrated probabilities on the validation split [V K], as scored when chosen."""


def fit_probe(encoder: MultiModalEncoder, modalities: Sequence[str], train: Embedded, y_train: np.ndarray,
              val: Embedded, y_val: np.ndarray, *, fusions: Sequence[Fusion], epochs: int, lr: float,
              l2: Sequence[float], sensors: dict[str, Any], seed: int) -> Fitted:
    """Linear probe on frozen ``encoder`` features of ``modalities`` (one: a per-modality probe).

    Fusion and L2 penalty are chosen together on the validation split's macro AUPRC. The heads of all
    L2 penalties of one fusion train together as one batched linear map (:func:`_train_heads`).
    """
    y = torch.as_tensor(y_train, dtype=torch.float32)  # [N K]
    best: tuple[float, str, Fusion, nn.Module, np.ndarray] | None = None
    for fusion in (fusions if len(modalities) > 1 else fusions[:1]):
        x_train = _features(train, modalities, fusion)  # [N D]
        x_val = _features(val, modalities, fusion)  # [V D]
        norm = Standardize.fit(x_train)
        heads = _train_heads(norm(x_train), y, l2, epochs=epochs, lr=lr, seed=seed)
        z_val = norm(x_val)
        for penalty, linear in zip(l2, heads, strict=True):
            with torch.no_grad():
                probs_val = torch.sigmoid(linear(z_val)).numpy()  # [V K]
            score = macro_auprc(y_val, probs_val)
            if best is None or score > best[0]:
                best = (score, f"fusion={fusion} l2={penalty:g}", fusion, nn.Sequential(norm, linear), probs_val)
    assert best is not None
    classifier = MethaneClassifier(_restricted(encoder, modalities), best[3], best[2], sensors)
    return Fitted(classifier, best[0], best[1], best[4])


def probe_probabilities(classifier: MethaneClassifier, modalities: Sequence[str], embedded: Embedded) -> np.ndarray:
    """A probe's uncalibrated probabilities [N K] from frozen embeddings of a split: what
    ``classifier.predict_proba(chips, calibrated=False)`` gives, without encoding the chips again."""
    with torch.no_grad():
        logits = classifier.head(_features(embedded, modalities, classifier.fusion))  # [N K]
    return torch.sigmoid(logits).numpy()


def _train_heads(z: Tensor, y: Tensor, l2: Sequence[float], *, epochs: int, lr: float, seed: int) -> list[nn.Linear]:
    """One linear head per L2 penalty on standardised features ``z`` [N D] and labels ``y`` [N K]:
    full-batch Adam on BCE + penalty x |W|^2, all heads stepped at once.

    The heads are independent (the summed loss separates, and Adam's update is element-wise), and each
    starts from the same seeded initialisation, so every head is the one a separate fit would give;
    batching them costs one optimiser step per epoch instead of one per penalty.
    """
    torch.manual_seed(seed)
    init = nn.Linear(z.shape[1], y.shape[1])
    n = len(l2)
    weight = nn.Parameter(init.weight.detach().T.unsqueeze(0).repeat(n, 1, 1).contiguous())  # [P D K]
    bias = nn.Parameter(init.bias.detach().unsqueeze(0).repeat(n, 1).contiguous())  # [P K]
    penalty = torch.tensor(list(l2), dtype=z.dtype)  # [P]
    opt = torch.optim.Adam([weight, bias], lr=lr)
    target = y.unsqueeze(0).expand(n, -1, -1)  # [P N K]
    for _ in range(epochs):
        logits = torch.einsum("nd,pdk->pnk", z, weight) + bias.unsqueeze(1)  # [P N K]
        bce = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=(1, 2))
        loss = (bce + penalty * weight.pow(2).sum(dim=(1, 2))).sum()  # heads are independent: sum of [P]
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
        opt.step()
    heads = []
    for p in range(n):
        head = nn.Linear(z.shape[1], y.shape[1])
        with torch.no_grad():
            head.weight.copy_(weight[p].T)
            head.bias.copy_(bias[p])
        heads.append(head)
    return heads


def fit_end_to_end(encoder: MultiModalEncoder, train: Split, val: Split, *, fusion: Fusion, epochs: int,
                   batch_size: int, lr: float, dropout: float, sensors: dict[str, Any], seed: int,
                   embedded: Embedded | None = None) -> Fitted:
    """Encoder + linear head trained together with BCE (fine-tuning or supervised from scratch). ``embedded``:
    ``encoder``'s frozen embeddings of ``train`` when already computed (the head's initial standardisation)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    encoder = copy.deepcopy(encoder)
    modalities = list(encoder.modalities)
    with torch.no_grad():
        feats = _features(embedded or embed_split(encoder, train), modalities, fusion)  # [N D] initial statistics
    first: ModalityEncoder = next(iter(encoder.encoders.values()))  # type: ignore[assignment]  # ModuleDict yields Module
    dim = fused_dim(first.out_dim, len(modalities), fusion)
    head = nn.Sequential(Standardize.fit(feats), nn.Linear(dim, train.labels.shape[1]))
    model = MethaneClassifier(encoder, head, fusion, sensors)
    opt = torch.optim.AdamW([{"params": encoder.encoders.parameters(), "lr": lr},
                             {"params": head.parameters(), "lr": 10 * lr}], weight_decay=1e-4,
                            fused=True)  # one kernel for every tensor: a fraction of the per-tensor loop's CPU
    y = torch.as_tensor(train.labels, dtype=torch.float32)  # [N K]
    best: tuple[float, int, dict[str, Tensor], np.ndarray] | None = None
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train), generator=g)
        for start in range(0, len(train) - 1, batch_size):  # batch norm needs >= 2 sites per batch
            rows = order[start:start + batch_size]
            if len(rows) < 2:
                continue
            batch = {k: v[rows] for k, v in train.chips.items()}
            if dropout > 0 and len(modalities) > 1:
                kept = drop_modalities({m: batch[f"{m}_present"] for m in modalities}, dropout, g)
                batch.update({f"{m}_present": kept[m] for m in modalities})
            loss = nn.functional.binary_cross_entropy_with_logits(model(batch), y[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
            opt.step()
        probs_val = model.predict_proba(val.chips, calibrated=False)
        score = macro_auprc(val.labels, probs_val)
        if best is None or score > best[0]:
            best = (score, epoch, copy.deepcopy(model.state_dict()), probs_val)
    assert best is not None
    model.load_state_dict(best[2])
    return Fitted(model.eval(), best[0], f"best epoch {best[1] + 1}/{epochs}", best[3])


def _restricted(encoder: MultiModalEncoder, modalities: Sequence[str]) -> MultiModalEncoder:
    """The encoder reduced to ``modalities`` (a per-modality probe deploys one backbone, not three)."""
    if list(modalities) == list(encoder.modalities):
        return encoder
    small = copy.deepcopy(encoder)
    for name in list(small.inputs):
        if name not in modalities:
            del small.encoders[name], small.projectors[name]
            if small.predictors is not None:
                del small.predictors[name]
            del small.inputs[name]
    return small
