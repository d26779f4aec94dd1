"""Joint-embedding objectives, one per module, all over many views with presence masks and DDP-correct.

Every loss takes per-view embeddings (``{modality: [B D]}`` or a list) and optional presence masks
(``{modality: [B] bool}``) and averages over all pairs of present views; see
:mod:`jointssl.losses.views` and, for multi-process training, :mod:`jointssl.losses.distributed`.
"""

from jointssl.losses.barlow_twins import BarlowTwinsLoss
from jointssl.losses.byol import BYOLLoss, cosine_momentum, ema_update, make_target
from jointssl.losses.infonce import InfoNCELoss
from jointssl.losses.registry import LOSSES, build_loss, loss_class
from jointssl.losses.vicreg import VICRegLoss

__all__ = [
    "LOSSES",
    "BYOLLoss",
    "BarlowTwinsLoss",
    "InfoNCELoss",
    "VICRegLoss",
    "build_loss",
    "cosine_momentum",
    "ema_update",
    "loss_class",
    "make_target",
]
