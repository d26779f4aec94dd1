"""Intra-modal augmentations of chip batches, on the worker, as batched tensor ops (any device).

Each view (one modality of one site) is augmented independently, as SimCLR augments its two views
(Chen et al. 2020, arXiv:2002.05709): a random square crop resized back to the chip size, random
flips, random 90-degree rotations, then the radiometric change that suits the sensor's physics:

- ``optical`` (reflectance): per-band gain and offset ("spectral jitter"). RGB colour jitter
  (hue/saturation) is not used: it assumes three visible bands.
- ``sar`` (backscatter, chips in dB): multiplicative gamma speckle of L looks in linear power, which
  is additive log-gamma noise in dB: ``10 log10(G)``, ``G ~ Gamma(L, 1/L)`` (Goodman's fully
  developed speckle model; Lee & Pottier 2009, ch. 4). No spectral jitter.

Which radiometric augmentation a modality gets is data: its ``kind`` in the sensor preset
(:class:`jointssl.sensors.spec.Modality`), looked up in :data:`RADIOMETRIC`.

Chips arrive normalised per band, ``(physical - mean) / std``, so the radiometric changes are
written in physical units and carried through the normalisation with each band's mean and std.
Rows of sites that lack a modality (``m_present`` false) are returned untouched. Draws come from
a ``torch.Generator`` seeded by (seed, rank, step): the same run draws the same augmentations,
also when it resumes from a checkpoint.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from jointssl.sensors.spec import Modality
from jointssl.train.config import AugmentConfig

DB_PER_NEPER = 10.0 / math.log(10.0)
"""10 log10(x) = DB_PER_NEPER * ln(x)."""


@dataclass(frozen=True)
class ViewSpec:
    """What the augmentations need to know of a modality (sent to the workers; no file access)."""

    name: str
    kind: str
    """'optical' or 'sar' (the Modality's kind): selects the radiometric augmentation."""
    mean: tuple[float, ...]
    std: tuple[float, ...]
    """Per-band normalisation statistics in physical units (dB for SAR)."""

    @classmethod
    def of(cls, modality: Modality) -> ViewSpec:
        return cls(modality.name, modality.kind, tuple(b.mean for b in modality.bands),
                   tuple(b.std for b in modality.bands))


# --- geometric: the same for every kind -----------------------------------------------------------

def random_resized_crop(x: Tensor, scale_min: float, generator: torch.Generator) -> Tensor:
    """[B C H W] -> [B C H W]: a square crop of area U(scale_min, 1) per site, resized back (bilinear)."""
    b = x.shape[0]
    area = scale_min + (1.0 - scale_min) * torch.rand(b, generator=generator, device=x.device)  # [B]
    side = area.sqrt()  # [B] crop side as a fraction of the chip
    shift = (1.0 - side)[:, None] * (2 * torch.rand(b, 2, generator=generator, device=x.device) - 1)  # [B 2]
    theta = x.new_zeros(b, 2, 3)  # [B 2 3] output grid -> input coordinates in [-1, 1]
    theta[:, 0, 0] = side
    theta[:, 1, 1] = side
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # [B H W 2]
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_flip(x: Tensor, generator: torch.Generator) -> Tensor:
    """[B C H W] -> [B C H W]: each site flipped left-right and/or up-down with probability 1/2."""
    flips = torch.rand(x.shape[0], 2, generator=generator, device=x.device) < 0.5  # [B 2]
    x = torch.where(flips[:, 0, None, None, None], x.flip(-1), x)
    return torch.where(flips[:, 1, None, None, None], x.flip(-2), x)


def random_rot90(x: Tensor, generator: torch.Generator) -> Tensor:
    """[B C H W] -> [B C H W] (H == W): each site rotated by k x 90 degrees, k uniform in 0..3."""
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"rot90 needs square chips, got {tuple(x.shape[-2:])}")
    k = torch.randint(0, 4, (x.shape[0],), generator=generator, device=x.device)  # [B]
    out = x
    for turns in (1, 2, 3):
        out = torch.where((k == turns)[:, None, None, None], torch.rot90(x, turns, dims=(-2, -1)), out)
    return out


# --- radiometric: chosen by the modality's kind ---------------------------------------------------

def spectral_jitter(x: Tensor, spec: ViewSpec, strength: float, generator: torch.Generator) -> Tensor:
    """[B C H W] normalised reflectance -> same; per site and band ``r' = g r + o`` in physical units,
    ``g ~ U(1-s, 1+s)``, ``o ~ U(-s, s)`` band stds. Normalised: ``x' = g x + (g-1) mean/std + o/std``."""
    b, c = x.shape[:2]
    gain = 1 + strength * (2 * torch.rand(b, c, 1, 1, generator=generator, device=x.device) - 1)  # [B C 1 1]
    offset = strength * (2 * torch.rand(b, c, 1, 1, generator=generator, device=x.device) - 1)  # [B C 1 1], in stds
    mean_over_std = x.new_tensor([m / s for m, s in zip(spec.mean, spec.std)])[None, :, None, None]  # [1 C 1 1]
    return gain * x + (gain - 1) * mean_over_std + offset


def speckle(x: Tensor, spec: ViewSpec, looks: float, generator: torch.Generator) -> Tensor:
    """[B C H W] normalised dB -> same, with gamma speckle of ``looks`` looks: in dB ``x + 10 log10(G)``,
    ``G ~ Gamma(looks, rate=looks)`` (mean 1 in linear power), divided by each band's std (in dB)."""
    concentration = torch.full(x.shape, float(looks), dtype=torch.float32, device=x.device)
    gamma = torch._standard_gamma(concentration, generator=generator) / looks  # [B C H W], mean 1
    noise_db = DB_PER_NEPER * gamma.clamp_min(torch.finfo(torch.float32).tiny).log()  # [B C H W]
    std = x.new_tensor(spec.std)[None, :, None, None]  # [1 C 1 1]
    return x + (noise_db / std).to(x.dtype)


def _jitter_if_set(x: Tensor, spec: ViewSpec, config: AugmentConfig, g: torch.Generator) -> Tensor:
    return spectral_jitter(x, spec, config.spectral_jitter, g) if config.spectral_jitter > 0 else x


def _speckle_if_set(x: Tensor, spec: ViewSpec, config: AugmentConfig, g: torch.Generator) -> Tensor:
    return speckle(x, spec, config.speckle_looks, g) if config.speckle_looks > 0 else x


RADIOMETRIC: dict[str, Callable[[Tensor, ViewSpec, AugmentConfig, torch.Generator], Tensor]] = {
    "optical": _jitter_if_set,
    "sar": _speckle_if_set,
}
"""Modality kind -> its radiometric augmentation (SAR never gets spectral jitter, optical never speckle)."""


# --- the whole chain ------------------------------------------------------------------------------

def augment_view(x: Tensor, present: Tensor, spec: ViewSpec, config: AugmentConfig,
                 generator: torch.Generator) -> Tensor:
    """[B C H W], [B] bool -> [B C H W]: crop, flips, rotation, then the kind's radiometric change;
    rows with ``present`` false come back as they were."""
    if spec.kind not in RADIOMETRIC:
        raise ValueError(f"modality '{spec.name}' has kind {spec.kind!r}; known kinds: {sorted(RADIOMETRIC)}")
    out = x
    if config.crop_scale_min < 1.0:
        out = random_resized_crop(out, config.crop_scale_min, generator)
    if config.flip:
        out = random_flip(out, generator)
    if config.rot90:
        out = random_rot90(out, generator)
    out = RADIOMETRIC[spec.kind](out, spec, config, generator)
    return torch.where(present.to(torch.bool)[:, None, None, None], out, x)


def step_seed(seed: int, rank: int, step: int, name: str) -> int:
    """A 64-bit seed for (run seed, rank, step, modality): independent streams, reproducible on resume,
    and adding a modality does not change the others' draws."""
    words = np.random.SeedSequence([seed, rank, step, zlib.crc32(name.encode())]).generate_state(2)
    return int(words[0]) | int(words[1]) << 32


class Augmenter:
    """Augments every configured modality of a tensor batch (``{m: [B C H W], m_present: [B]}``).

    Args:
        config: the ``pretrain.augment`` section.
        views: one :class:`ViewSpec` per modality to augment (others pass through).
        seed: the run seed; with the rank and step it seeds each call.
    """

    def __init__(self, config: AugmentConfig, views: Sequence[ViewSpec], seed: int, rank: int = 0):
        unknown = sorted({v.kind for v in views} - set(RADIOMETRIC))
        if unknown:
            raise ValueError(f"unknown modality kind(s) {unknown}; known kinds: {sorted(RADIOMETRIC)}")
        self.config = config
        self.views = list(views)
        self.seed = seed
        self.rank = rank
        self._generators: dict[torch.device, torch.Generator] = {}

    def __call__(self, batch: Mapping[str, Tensor], step: int, view: int = 0) -> dict[str, Tensor]:
        """The augmented batch of ``step``; ``view`` > 0 draws an independent second (third...) view of
        the same chips, as single-modality SSL needs (two augmentations of one image are its positives)."""
        out = dict(batch)
        if not self.config.enabled:
            return out
        for spec in self.views:
            x = batch[spec.name]  # [B C H W]
            present = batch.get(f"{spec.name}_present")
            if present is None:
                present = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)  # [B]
            generator = self._generator(x.device)
            stream = spec.name if view == 0 else f"{spec.name}#{view}"
            generator.manual_seed(step_seed(self.seed, self.rank, step, stream))
            out[spec.name] = augment_view(x, present, spec, self.config, generator)
        return out

    def _generator(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device)
        return self._generators[device]

