"""The classifier's forward for inference: encode only what is not cached, fuse, head, calibrate, OOD.

Equal to :meth:`jointssl.classify.model.MethaneClassifier.predict` (same encoders, :func:`fuse`, head,
calibration and input profile; tests/infer/test_forward.py), but built for a long inference stream:

- each sensor's *present, uncached* rows only go through its encoder, padded with zero chips to a few
  batch shapes (:func:`jointssl.models.multimodal.bucket_rows`, as the model's own eval mode pads: powers
  of two up to 16, then multiples of 16, so oneDNN / cuDNN keep a handful of kernels while a sensor on 33
  of 64 tiles encodes 48 rows, not 64); cached rows take their embedding and chip statistics from the
  embedding cache;
- the projector heads, which :class:`MultiModalEncoder` runs for training, are skipped;
- ``torch.inference_mode`` (no autograd bookkeeping at all), encoders and chips in ``channels_last``
  (``infer.channels_last``, default on GPUs only); on a GPU, chips go through pinned host memory;
  ``infer.precision: bf16`` runs the encoders under bf16 autocast (opt-in: it moves probabilities, see
  the tests); fusion, head and calibration stay float32;
- optionally ``torch.compile`` of each encoder (``infer.compile``; off by default: docs/benchmarks.md);
- on CPUs, each encoder frozen for inference (:func:`freeze_encoders`: traced, frozen and handed to
  ``torch.jit.optimize_for_inference``, which folds batch norm into the convolutions and prepacks their
  weights for oneDNN): the same embeddings within float32 rounding for 1.1-1.5x less CPU per encoder call
  on the measured CPU, after ~0.4 s of CPU per encoder to prepare (``infer.freeze``).

Per sensor it returns what the embedding cache keeps (embedding [B F], chip statistics [B 2C]) and which
rows it encoded, besides the probabilities [B K] and OOD scores m -> [B].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Precision = Literal["auto", "fp32", "bf16"]


@dataclass(frozen=True)
class ForwardSettings:
    device: str = "cpu"
    channels_last: bool = False
    precision: Precision = "auto"
    """'auto' is float32 (bf16 moved probabilities by up to 0.13 on the test world: tests/infer/test_forward.py);
    'bf16': bf16 autocast of the encoders (GPU throughput, opt-in)."""
    compile: bool = False
    freeze_after: int | None = None
    """CPU predictors: after this many batches, encode with :func:`freeze_encoders`'s modules (prepared in
    the background meanwhile); None: never."""

    @property
    def bf16(self) -> bool:
        return self.precision == "bf16"


@dataclass(frozen=True)
class ForwardOutput:
    probs: np.ndarray
    """[B K] calibrated probabilities."""
    ood: dict[str, np.ndarray]
    """m -> [B] OOD score in units of the threshold (NaN: sensor absent); empty without an input profile."""
    embeddings: dict[str, np.ndarray]
    """m -> [B F] float32 (zeros where the sensor is absent)."""
    chip_stats: dict[str, np.ndarray]
    """m -> [B 2C] float64 (zeros where absent)."""
    encoded: dict[str, np.ndarray]
    """m -> [B] bool: rows this call ran the encoder on."""


def prepare(model: Any, settings: ForwardSettings) -> Any:
    """The loaded classifier moved to the device, in eval mode, channels_last and compiled as configured."""
    import torch

    model = model.to(settings.device).eval()
    if settings.channels_last:
        model.encoder.encoders.to(memory_format=torch.channels_last)
    if settings.compile:
        for m in list(model.encoder.encoders):
            model.encoder.encoders[m] = torch.compile(model.encoder.encoders[m], dynamic=False)
    return model


FREEZE_AFTER_BATCHES = 4
"""``infer.freeze: null``: a CPU predictor's batches before it switches to frozen encoders (4 of 64 tiles:
a run of fewer never pays the ~1.2 s of CPU that freezing three encoders costs; the demo's 30 tiles)."""


def freeze_after(freeze: bool | None, device: str, compiled: bool) -> int | None:
    """ForwardSettings.freeze_after from ``infer.freeze`` (see :class:`jointssl.infer.config.InferConfig`)."""
    if freeze is False or compiled or device.startswith("cuda"):
        return None
    return 0 if freeze else FREEZE_AFTER_BATCHES


def freeze_encoders(model: Any) -> dict[str, Any]:
    """m -> the classifier's encoder of sensor m traced (on a zero chip), frozen and optimised for inference
    (``torch.jit.optimize_for_inference``): the same function of a [B C H W] batch, for any B.

    TorchScript is deprecated in favour of ``torch.compile``, which measured no gain on this CPU
    (docs/benchmarks.md); its deprecation warnings and the tracer's (the encoders' input checks become
    constants of the trace: inputs are checked before the forward) are kept out of the predictors' logs.
    Where torch no longer has it, the predictor keeps the eager encoders."""
    import warnings

    import torch
    from torch.jit._trace import TracerWarning

    frozen: dict[str, Any] = {}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=TracerWarning)
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
        for m in model.modalities:
            spec = model.encoder.inputs[m]
            example = torch.zeros(1, spec.bands, spec.chip_size, spec.chip_size)  # [1 C H W]
            traced = torch.jit.trace(  # type: ignore[no-untyped-call]  # torch leaves jit.trace unannotated
                model.encoder.encoders[m].eval(), example, check_trace=False)
            frozen[m] = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
    return frozen


def forward(model: Any, settings: ForwardSettings, chips: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray],
            cached: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
            encoders: Mapping[str, Any] | None = None) -> ForwardOutput:
    """Probabilities and OOD scores of a batch (``chips`` m -> [B C H W], ``present`` m -> [B] bool);
    ``cached`` m -> (rows [B] bool, embeddings [B F], chip stats [B 2C]) for rows not to encode; ``encoders``:
    m -> the module to encode with instead of the model's own (:func:`freeze_encoders`)."""
    import torch

    from jointssl.classify.model import fuse
    from jointssl.classify.ood import chip_statistics

    n = len(next(iter(present.values())))
    embeddings: dict[str, np.ndarray] = {}
    stats: dict[str, np.ndarray] = {}
    encoded: dict[str, np.ndarray] = {}
    with torch.inference_mode():
        for m in model.modalities:
            spec = model.encoder.inputs[m]
            emb = np.zeros((n, model.encoder.encoders[m].out_dim), dtype=np.float32)  # [B F]
            st = np.zeros((n, 2 * spec.bands), dtype=np.float64)  # [B 2C]
            here = np.asarray(present.get(m, np.zeros(n, bool)), dtype=bool)  # [B]
            hit = np.zeros(n, bool)
            if m in (cached or {}):
                hit, cached_emb, cached_stats = (cached or {})[m]
                hit = np.asarray(hit, dtype=bool) & here
                emb[hit], st[hit] = cached_emb[hit], cached_stats[hit]
            rows = np.flatnonzero(here & ~hit)
            if len(rows):
                x = np.ascontiguousarray(chips[m][rows])  # [b C H W]
                emb[rows] = _encode((encoders or {}).get(m, model.encoder.encoders[m]), x, settings)
                st[rows] = chip_statistics(x)
            embeddings[m], stats[m] = emb, st
            encoded[m] = np.isin(np.arange(n), rows)
        flags = {m: torch.from_numpy(np.asarray(present.get(m, np.zeros(n, bool)), dtype=bool))
                 for m in model.modalities}
        tensors = {m: torch.from_numpy(v) for m, v in embeddings.items()}
        logits = model.head(fuse(tensors, flags, model.modalities, model.fusion))  # [B K]
        probs = model.probabilities(logits).float().numpy()
    return ForwardOutput(probs, _ood(model, embeddings, stats, present), embeddings, stats, encoded)


def _encode(encoder: Any, x: np.ndarray, settings: ForwardSettings) -> np.ndarray:
    """[b C H W] chips -> [b F] float32 embeddings, through a zero-padded batch of :func:`bucket_rows` rows."""
    import torch

    from jointssl.models.multimodal import bucket_rows

    b = x.shape[0]
    padded = np.zeros((bucket_rows(b), *x.shape[1:]), dtype=np.float32)  # [b' C H W]
    padded[:b] = x
    tensor = torch.from_numpy(padded)
    cuda = settings.device.startswith("cuda")
    if cuda:
        tensor = tensor.pin_memory().to(settings.device, non_blocking=True)
    if settings.channels_last:
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    device_type = "cuda" if cuda else "cpu"
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=settings.bf16):
        out = encoder(tensor)  # [b' F]
    return np.asarray(out[:b].float().cpu().numpy(), dtype=np.float32)


def _ood(model: Any, embeddings: Mapping[str, np.ndarray], stats: Mapping[str, np.ndarray],
         present: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """m -> [B] score in threshold units, as :meth:`InputProfile.scores` computes it (sensors of the run only)."""
    profile = getattr(model, "profile", None)
    if profile is None:
        return {}
    given = {m: stats[m] for m in present if m in stats}
    scores: dict[str, np.ndarray] = profile.scores_of_statistics(given, embeddings, present)
    return scores

