"""Learning-rate schedule: linear warmup, then cosine decay to a floor (Loshchilov & Hutter, 2017,
arXiv:1608.03983; warmup as in Goyal et al., 2017, arXiv:1706.02677), as SimCLR/VICReg/BYOL train."""

from __future__ import annotations

import math


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, floor: float = 0.0) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based): 0 -> 1 over warmup, then cosine -> floor."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be within [0, total_steps={total_steps}], got {warmup_steps}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
