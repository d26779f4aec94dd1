"""MLP heads on top of the backbone: the projector (all four objectives) and BYOL's predictor.

SimCLR (Chen et al. 2020, arXiv:2002.05709, sec. 4.2) showed that a non-linear projection head
before the loss improves the representation below it; VICReg (arXiv:2105.04906) and Barlow Twins
(arXiv:2103.03230) use a 3-layer 8192-wide "expander"; BYOL (Grill et al. 2020, arXiv:2006.07733)
uses Linear-BN-ReLU-Linear for both projector (4096 -> 256) and predictor.
"""

from __future__ import annotations

from torch import Tensor, nn


class MLP(nn.Sequential):
    """``[B in] -> [B out]``: (Linear, BatchNorm1d, ReLU) x (layers - 1), then Linear."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, layers: int = 2):
        if min(in_dim, hidden_dim, out_dim) < 1 or layers < 1:
            raise ValueError(f"MLP needs positive sizes and >= 1 layer, got in={in_dim} hidden={hidden_dim} "
                             f"out={out_dim} layers={layers}")
        modules: list[nn.Module] = []
        width = in_dim
        for _ in range(layers - 1):
            modules += [nn.Linear(width, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
            width = hidden_dim
        modules.append(nn.Linear(width, out_dim))
        super().__init__(*modules)
        self.in_dim = in_dim
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"expected [B {self.in_dim}] input, got {tuple(x.shape)}")
        out: Tensor = super().forward(x)  # type: ignore[no-untyped-call]  # torch's Sequential.forward is unannotated
        return out


def projector(in_dim: int, hidden_dim: int, out_dim: int, layers: int) -> MLP:
    """The projection head: embedding ``[B F]`` -> loss input ``[B P]``."""
    return MLP(in_dim, hidden_dim, out_dim, layers)


def predictor(dim: int, hidden_dim: int) -> MLP:
    """BYOL's predictor: projection ``[B P]`` -> prediction of the target's projection ``[B P]``."""
    return MLP(dim, hidden_dim, dim, layers=2)
