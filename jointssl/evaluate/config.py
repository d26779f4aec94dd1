"""The ``evaluate`` section of a job config: which encoders, which protocols, which label budgets.

The protocol follows the paper (Berg, Pham, Courty, IGARSS 2023) and METER-ML (Zhu et al. 2022,
arXiv:2207.11166): frozen encoders are scored by a linear probe, the SSL encoder also by fine-tuning,
against random-init encoders, single-modality SSL encoders and supervised training from scratch, at
several fractions of the training labels, with per-class AUPRC as the headline metric.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from jointssl.config.load import ConfigError


@dataclass(frozen=True)
class EvaluateConfig:
    encoder: str = "models:/jointssl-encoder@current"
    """The multi-modal SSL encoder under test: an MLflow model URI or a pre-training checkpoint folder."""
    single_modality: dict[str, str] = field(default_factory=dict)
    """Baselines: encoders pre-trained on one modality alone, modality name -> reference
    (e.g. ``{s2: models:/jointssl-encoder-s2@current}``); each is probed on its own modality."""
    random_init: bool = True
    """Baseline: the same architecture with random weights (what pre-training must beat)."""
    supervised: bool = True
    """Baseline: encoder + head trained from scratch on the labels alone."""
    finetune: bool = True
    """Also fine-tune the SSL encoder end to end with the head (beside the frozen linear probe)."""
    per_modality: bool = True
    """Also probe each modality of the SSL encoder alone (beside the fused probe)."""
    label_fractions: list[float] = field(default_factory=lambda: [0.1, 1.0])
    """Fractions of the training labels (seeded, at least one positive per class kept)."""
    fusions: list[Literal["concat", "mean"]] = field(default_factory=lambda: ["concat", "mean"])
    """How modality embeddings may be combined for the fused rows (jointssl.classify.model.fuse); each
    fused probe picks one on the validation split, and fine-tuning uses the SSL probe's choice."""
    modality_dropout: float = field(default=0.25, metadata={"min": 0.0, "max": 0.9})
    """Probability of hiding a modality while fine-tuning / training from scratch, so the deployable
    classifier serves sites that lack a sensor (a site always keeps one). Linear probes train on complete
    sites, as the paper's protocol does (measured on the demo world: dropout costs probes 0.05-0.1 AUPRC)."""
    probe_epochs: int = field(default=300, metadata={"min": 1})
    """Full-batch Adam steps of a linear probe on frozen features."""
    probe_lr: float = field(default=1e-2, metadata={"min": 0.0})
    probe_l2: list[float] = field(default_factory=lambda: [1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    """L2 penalties on the probe's weights tried for each probe; the best on validation is kept."""
    train_epochs: int = field(default=15, metadata={"min": 1})
    """Epochs of fine-tuning and of supervised training (mini-batches of train_batch_size sites)."""
    train_batch_size: int = field(default=16, metadata={"min": 2})
    train_lr: float = field(default=3e-4, metadata={"min": 0.0})
    """AdamW learning rate of the encoder when fine-tuning / training from scratch (head: 10x)."""
    bootstrap: int = field(default=1000, metadata={"min": 0})
    """Bootstrap resamples of the test split for 95 % confidence intervals (0: none)."""
    register_model: str = "methane-classifier"
    """Registered-model name of the best classifier; alias 'champion' moves only if it beats the champion."""
    out: str | None = field(default=None, metadata={"url": True})
    """Where the table and plots go; null: <storage.root>/evaluation/<run.name>."""

    def __post_init__(self) -> None:
        if not self.label_fractions:
            raise ConfigError("label_fractions", "give at least one fraction, e.g. [0.1, 1.0]")
        for f in self.label_fractions:
            if not 0.0 < f <= 1.0:
                raise ConfigError("label_fractions", f"{f} is not a fraction in (0, 1]")
        if not self.probe_l2 or any(w < 0 for w in self.probe_l2):
            raise ConfigError("probe_l2", "give one or more non-negative L2 penalties, e.g. [0.001, 0.01, 0.1]")
        if not self.fusions:
            raise ConfigError("fusions", "give at least one of 'concat', 'mean'")
