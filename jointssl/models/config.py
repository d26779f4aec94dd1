"""The model and objective section of a pre-training config, as frozen dataclasses.

Field rules (``metadata={"min": ...}``) are checked by :func:`jointssl.config.load.from_dict` when a
YAML file or command-line overrides are loaded, as for every section in
:mod:`jointssl.config.schema`. Defaults are sized for CPUs and small chips; each field's docstring
gives the value the paper used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class InfoNCEConfig:
    temperature: float = field(default=0.1, metadata={"min": 1e-4})
    """Softmax temperature; SimCLR (arXiv:2002.05709): 0.1 on ImageNet, 0.5 on CIFAR-10."""
    negatives: Literal["all", "cross"] = "all"
    """'all': SimCLR's NT-Xent (other sites in both views); 'cross': CLIP (arXiv:2103.00020), other view only."""


@dataclass(frozen=True)
class VICRegConfig:
    invariance_weight: float = field(default=25.0, metadata={"min": 0.0})
    """lambda; VICReg (arXiv:2105.04906): 25."""
    variance_weight: float = field(default=25.0, metadata={"min": 0.0})
    """mu; VICReg: 25."""
    covariance_weight: float = field(default=1.0, metadata={"min": 0.0})
    """nu; VICReg: 1."""


@dataclass(frozen=True)
class BarlowTwinsConfig:
    off_diagonal_weight: float = field(default=5e-3, metadata={"min": 0.0})
    """lambda; Barlow Twins (arXiv:2103.03230): 5e-3."""


@dataclass(frozen=True)
class BYOLConfig:
    base_momentum: float = field(default=0.996, metadata={"min": 0.0, "max": 1.0})
    """tau_base of the target EMA, raised to 1 by a cosine schedule; BYOL (arXiv:2006.07733): 0.996."""


@dataclass(frozen=True)
class ObjectiveConfig:
    name: Literal["infonce", "vicreg", "barlow_twins", "byol"] = "infonce"
    """Which joint-embedding loss (jointssl.losses.registry); only its own section below is used."""
    infonce: InfoNCEConfig = field(default_factory=InfoNCEConfig)
    vicreg: VICRegConfig = field(default_factory=VICRegConfig)
    barlow_twins: BarlowTwinsConfig = field(default_factory=BarlowTwinsConfig)
    byol: BYOLConfig = field(default_factory=BYOLConfig)

    def hparams(self) -> dict[str, Any]:
        """Keyword arguments of the chosen loss: ``build_loss(c.name, **c.hparams())``."""
        return asdict(getattr(self, self.name))


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "resnet18"
    """timm model name, one per modality (or one shared trunk); all four papers use resnet50."""
    shared_trunk: bool = False
    """false: an independent backbone per modality; true: modality-specific stems (sized to the bands)
    feeding one shared trunk (ResNet family only), fewer parameters and one feature space."""
    small_input_stem: bool = True
    """Replace the 7x7/2 stem conv and the max-pool by a 3x3/1 conv (CIFAR-style, as SimCLR does on
    CIFAR-10) for modalities whose chips are at most small_input_max_px wide: the ImageNet stem
    downsamples 4x before the first block, leaving a 32 px chip 8x8 there and 1x1 after the last
    stage, which discards the spatial detail that small chips have."""
    small_input_max_px: int = field(default=32, metadata={"min": 1})
    """Chip width (pixels) up to which small_input_stem applies (world: s2 and s1 at 32, naip at 64)."""
    small_input_stride: int = field(default=1, metadata={"min": 1, "max": 2})
    """Stride of the small-input stem's 3x3 conv: 1 keeps a 32 px chip 32x32 into the first stage (SimCLR's
    CIFAR-10 stem), 2 keeps it 16x16 there at about a quarter of the compute (the demo's choice on CPUs:
    measured 3.4x less CPU per 32 px chip for a ResNet-18 forward + backward)."""
    embed_dim: int | None = field(default=None, metadata={"min": 1})
    """Embedding size after the backbone; null keeps the backbone's width (resnet18 512, resnet50 2048)."""
    proj_hidden_dim: int = field(default=512, metadata={"min": 1})
    """Projector hidden width; SimCLR 2048, VICReg and Barlow Twins 8192, BYOL 4096."""
    proj_dim: int = field(default=128, metadata={"min": 1})
    """Projection (loss input) size; SimCLR 128, VICReg and Barlow Twins 8192, BYOL 256."""
    proj_layers: int = field(default=2, metadata={"min": 1})
    """Linear layers in the projector (BN + ReLU between); SimCLR and BYOL 2, VICReg and Barlow Twins 3."""
    pred_hidden_dim: int = field(default=512, metadata={"min": 1})
    """BYOL predictor hidden width (built only for objective 'byol'); BYOL 4096."""
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)

    def __post_init__(self) -> None:
        # imported here: jointssl.config's package imports its schema, which embeds this class
        from jointssl.config.load import ConfigError

        if not self.backbone:
            raise ConfigError("backbone", "a timm model name is required, e.g. 'resnet18'")
