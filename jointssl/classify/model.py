"""The methane-source classifier: encoders -> fused embedding -> one logit per facility class.

What is registered in MLflow (``methane-classifier``) and what inference loads: one self-describing
``nn.Module`` that carries, besides its weights, the exact sensor contract it was trained with (the
preset and its modalities: collections, bands, chip sizes, GSDs) and the class names of its outputs,
so a caller can check a config against it before reading a single chip. It is saved as weights
(safetensors) plus its architecture and deployment state as JSON (:meth:`MethaneClassifier.save`),
and loaded by building that architecture in code (:meth:`MethaneClassifier.load`): never pickled.

Multi-label, as METER-ML: a sigmoid per facility class (:data:`jointssl.labels.FACILITY_CLASSES`);
a site with no class above its threshold is a negative. Evaluation attaches, on validation, what the
deployed model decides with (:meth:`MethaneClassifier.deploy`): a per-class Platt calibration of the
logits, per-class thresholds on the calibrated probability at named operating points ('f1',
'precision90'; :mod:`jointssl.classify.calibration`), and a profile of its training inputs that scores
how far a tile lies outside them (:mod:`jointssl.classify.ood`). A classifier without them (not yet
evaluated, or registered before they existed) predicts uncalibrated probabilities and has no
operating points.

Missing modalities: the fused feature is the concatenation of every modality's embedding (zeros
where the site lacks the modality) followed by the presence flags ``[B M]``, so a linear head learns
one bias per subset of sensors. Heads are trained with *modality dropout* (whole modalities hidden at
random, at least one kept; :func:`drop_modalities`), so one classifier serves every subset of its
sensors instead of 2^M - 1 subset models; the output records which modalities were used. Fusion
'mean' averages the present embeddings instead (same width for any number of modalities).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from jointssl.classify.calibration import Calibration, OperatingPoint
from jointssl.classify.ood import InputProfile
from jointssl.labels import FACILITY_CLASSES
from jointssl.models.multimodal import ModalityInput, MultiModalEncoder

Fusion = Literal["concat", "mean"]
PROFILE_FILE = "profile.safetensors"
"""The input profile's arrays, beside the weights of a saved classifier."""


def fuse(embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor], modalities: Sequence[str],
         fusion: Fusion) -> Tensor:
    """Per-modality embeddings m -> [B F] and presence m -> [B] -> fused features [B D].

    concat: D = M*F + M (absent blocks zeroed); mean: D = F + M (mean over present modalities).
    """
    flags = torch.stack([present[m].to(embeddings[m].dtype) for m in modalities], dim=1)  # [B M]
    blocks = [embeddings[m] * flags[:, i:i + 1] for i, m in enumerate(modalities)]  # M x [B F]
    if fusion == "concat":
        return torch.cat([*blocks, flags], dim=1)  # [B M*F+M]
    total = torch.stack(blocks, dim=0).sum(dim=0)  # [B F]
    return torch.cat([total / flags.sum(dim=1, keepdim=True).clamp(min=1.0), flags], dim=1)  # [B F+M]


def fused_dim(feature_dim: int, n_modalities: int, fusion: Fusion) -> int:
    return (n_modalities * feature_dim if fusion == "concat" else feature_dim) + n_modalities


def drop_modalities(present: Mapping[str, Tensor], p: float, generator: torch.Generator | None = None
                    ) -> dict[str, Tensor]:
    """Hide each present modality with probability ``p``, never all of a site's: m -> [B] bool."""
    names = list(present)
    mask = torch.stack([present[m] for m in names], dim=1)  # [B M]
    keep = torch.rand(mask.shape, generator=generator) >= p  # [B M]
    kept = mask & keep.to(mask.device)
    empty = ~kept.any(dim=1) & mask.any(dim=1)  # [B] sites that would lose every sensor
    kept[empty] = mask[empty]  # keep what they had
    return {m: kept[:, i] for i, m in enumerate(names)}


class Standardize(nn.Module):
    """(x - mean) / std with statistics fixed from the training features (buffers: saved, not trained)."""

    def __init__(self, mean: Tensor, std: Tensor):
        super().__init__()
        self.register_buffer("mean", mean.clone().float())  # [D]
        self.register_buffer("std", std.clone().float().clamp(min=1e-6))  # [D]

    @classmethod
    def fit(cls, x: Tensor) -> Standardize:
        """Statistics of the training features [N D]."""
        return cls(x.mean(dim=0), x.std(dim=0) if len(x) > 1 else torch.ones(x.shape[1]))

    mean: Tensor
    std: Tensor

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std  # [B D]


@dataclass(frozen=True)
class Prediction:
    """A batch's outputs: calibrated probabilities and, with an input profile, the out-of-distribution
    score per sensor (units of the threshold: > 1 is out of distribution; NaN: sensor absent)."""

    probs: np.ndarray
    """[B K]"""
    ood: dict[str, np.ndarray]
    """m -> [B]; empty when the classifier has no input profile."""


class MethaneClassifier(nn.Module):
    """Encoder + fusion + head: a chip batch -> per-class logits ``[B K]``.

    Args:
        encoder: the (pre-trained, fine-tuned or random) multi-modal encoder; only its backbones are used.
        head: maps fused features ``[B D]`` to logits ``[B K]`` (usually Standardize -> Linear).
        fusion: how modality embeddings are combined (see :func:`fuse`).
        sensors: the sensor contract (preset name and modality dicts;
            :func:`jointssl.sensors.contract.classifier_contract`).
        classes: output class names, in logit order.

    Deployment state (None / empty until :meth:`deploy`): ``calibration``, ``operating_points`` (name ->
    per-class thresholds on calibrated probabilities) and ``profile`` (the input profile).
    """

    def __init__(self, encoder: MultiModalEncoder, head: nn.Module, fusion: Fusion, sensors: dict[str, Any],
                 classes: Sequence[str] = FACILITY_CLASSES):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.fusion: Fusion = fusion
        self.sensors = sensors
        self.classes = tuple(classes)
        self.calibration: Calibration | None = None
        self.operating_points: dict[str, OperatingPoint] = {}
        self.profile: InputProfile | None = None
        self.expected: dict[str, Any] = {}

    def deploy(self, calibration: Calibration, operating_points: Mapping[str, OperatingPoint],
               profile: InputProfile | None, expected: Mapping[str, Any] | None = None) -> None:
        """Attach what evaluation chose on validation (and ``expected``: the test-set precision / recall
        with intervals at each operating point); it is saved (registered) with the weights."""
        self.calibration = calibration
        self.operating_points = dict(operating_points)
        self.profile = profile
        self.expected = dict(expected or {})

    def deployment(self) -> dict[str, Any]:
        """Calibration, operating points and OOD profile summary as JSON-able data (MLflow metadata)."""
        calibration = getattr(self, "calibration", None)
        profile = getattr(self, "profile", None)
        return {"calibration": calibration.to_dict() if calibration else None,
                "operating_points": {k: p.to_dict() for k, p in getattr(self, "operating_points", {}).items()},
                "ood": profile.describe() if profile else None, "expected_test": getattr(self, "expected", {})}

    def save(self, folder: str) -> None:
        """Weights (safetensors), input profile arrays (safetensors) and everything else as JSON, in ``folder``."""
        from safetensors.numpy import save_file

        from jointssl.models import saved

        profile = self.profile.to_state() if self.profile is not None else None
        spec = {"encoder": saved.encoder_spec(self.encoder), "head": head_spec(self.head), "fusion": self.fusion,
                "sensors": self.sensors, "classes": list(self.classes),
                "calibration": self.calibration.to_dict() if self.calibration else None,
                "operating_points": {k: p.to_dict() for k, p in self.operating_points.items()},
                "profile": profile[0] if profile else None, "expected": self.expected}
        saved.write(folder, "classifier", spec, self)
        if profile:
            save_file(profile[1], os.path.join(folder, PROFILE_FILE))

    @classmethod
    def load(cls, folder: str, source: str) -> MethaneClassifier:
        """The classifier :meth:`save` wrote into ``folder``, built in code, in eval mode (``source``
        names it in errors; a pickled or foreign model is refused unopened: :func:`saved.read_spec`)."""
        from safetensors.numpy import load_file

        from jointssl.errors import JointsslError
        from jointssl.models import saved

        spec = saved.read_spec(folder, "classifier", source)
        try:
            model = cls(saved.build_encoder(spec["encoder"], source), build_head(spec["head"]),  # type: ignore[arg-type]  # spec: JSON
                        spec["fusion"], spec["sensors"], spec["classes"])
            saved.load_weights(model, folder, source, spec.get("aliases") or {})
            points = {k: OperatingPoint.from_dict(p) for k, p in spec["operating_points"].items()}
            calibration = Calibration.from_dict(spec["calibration"]) if spec["calibration"] else None
            profile = (InputProfile.from_state(spec["profile"], load_file(os.path.join(folder, PROFILE_FILE)))
                       if spec["profile"] else None)
        except (KeyError, TypeError, ValueError, OSError) as err:
            raise JointsslError(f"model {source}: the classifier saved in {folder} is incomplete: {err!r}",
                                hint=saved.REREGISTER["classifier"]) from None
        if calibration is not None or points or profile is not None:
            model.deploy(calibration or Calibration.identity(len(model.classes)), points, profile, spec["expected"])
        return model.eval()

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.encoder.modalities

    @property
    def inputs(self) -> list[ModalityInput]:
        return list(self.encoder.inputs.values())

    def features(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Fused features [B D] of a chip batch (``m`` [B C H W], ``m_present`` [B] bool)."""
        out = self.encoder(_complete(batch, self.inputs))
        return fuse(out.embeddings, out.present, self.modalities, self.fusion)

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        logits: Tensor = self.head(self.features(batch))  # [B K]
        return logits

    def probabilities(self, logits: Tensor, calibrated: bool = True) -> Tensor:
        """[B K] logits -> [B K] probabilities, calibrated when the classifier has a calibration."""
        calibration: Calibration | None = getattr(self, "calibration", None)  # None: pickled before calibration
        probs: Tensor = calibration.apply(logits) if calibrated and calibration else torch.sigmoid(logits)
        return probs  # [B K]

    @torch.no_grad()
    def predict_proba(self, batch: Mapping[str, Tensor], chunk: int = 256, calibrated: bool = True) -> np.ndarray:
        """[B K] probabilities (calibrated unless ``calibrated=False``), in eval mode, in chunks of ``chunk``."""
        return self.predict(batch, chunk, calibrated, ood=False).probs

    @torch.no_grad()
    def predict(self, batch: Mapping[str, Tensor], chunk: int = 256, calibrated: bool = True,
                ood: bool = True) -> Prediction:
        """Probabilities [B K] and (``ood`` and a profile) per-sensor OOD scores, encoding each chip once."""
        was_training = self.training
        self.eval()
        profile = getattr(self, "profile", None) if ood else None
        n = next(iter(batch.values())).shape[0]
        probs: list[np.ndarray] = []
        scores: dict[str, list[np.ndarray]] = {}
        for i in range(0, n, chunk):
            part = _complete({k: v[i:i + chunk] for k, v in batch.items()}, self.inputs)
            out = self.encoder(part)
            logits = self.head(fuse(out.embeddings, out.present, self.modalities, self.fusion))  # [b K]
            probs.append(self.probabilities(logits, calibrated).float().cpu().numpy())
            if profile is not None:
                given = [m for m in self.modalities if m in batch]
                chunk_scores = profile.scores({m: part[m].float().cpu().numpy() for m in given},
                                              {m: out.embeddings[m].float().cpu().numpy() for m in given},
                                              {m: out.present[m].cpu().numpy() for m in given})
                for m, s in chunk_scores.items():
                    scores.setdefault(m, []).append(s)
        self.train(was_training)
        return Prediction(np.concatenate(probs) if probs else np.zeros((0, len(self.classes)), dtype=np.float32),
                          {m: np.concatenate(v) for m, v in scores.items()})

    def thresholds(self, point: str) -> OperatingPoint:
        """The per-class thresholds of the named operating point; KeyError naming those the model has."""
        points: dict[str, OperatingPoint] = getattr(self, "operating_points", {})
        if point not in points:
            raise KeyError(f"the classifier has no operating point {point!r} (it has: {', '.join(points) or 'none'})")
        return points[point]


def head_spec(head: nn.Module) -> dict[str, Any]:
    """A head built of :class:`Standardize`, ``nn.Linear`` and ``nn.Identity`` layers (alone or in an
    ``nn.Sequential``) as plain data; ValueError naming any other layer, which :func:`build_head` could
    not rebuild."""
    layers = list(head) if isinstance(head, nn.Sequential) else [head]
    out: list[dict[str, Any]] = []
    for layer in layers:
        if isinstance(layer, Standardize):
            out.append({"layer": "standardize", "dim": int(layer.get_buffer("mean").shape[0])})
        elif isinstance(layer, nn.Linear):
            out.append({"layer": "linear", "in": layer.in_features, "out": layer.out_features,
                        "bias": layer.bias is not None})
        elif isinstance(layer, nn.Identity):
            out.append({"layer": "identity"})
        else:
            raise ValueError(f"cannot save a classifier head with a {type(layer).__name__} layer "
                             "(saved heads are made of Standardize, Linear and Identity layers)")
    return {"sequential": isinstance(head, nn.Sequential), "layers": out}


def build_head(spec: Mapping[str, Any]) -> nn.Module:
    """The head :func:`head_spec` described, with placeholder weights (loaded afterwards)."""
    layers: list[nn.Module] = []
    for layer in spec["layers"]:
        kind = layer["layer"]
        if kind == "standardize":
            layers.append(Standardize(torch.zeros(int(layer["dim"])), torch.ones(int(layer["dim"]))))
        elif kind == "linear":
            layers.append(nn.Linear(int(layer["in"]), int(layer["out"]), bias=bool(layer["bias"])))
        elif kind == "identity":
            layers.append(nn.Identity())
        else:
            raise ValueError(f"unknown head layer {kind!r}")
    if spec["sequential"]:
        return nn.Sequential(*layers)
    if len(layers) != 1:
        raise ValueError(f"a head that is not an nn.Sequential has one layer, not {len(layers)}")
    return layers[0]


def _complete(batch: Mapping[str, Tensor], inputs: Sequence[ModalityInput]) -> dict[str, Tensor]:
    """Add zero chips + ``present = False`` for modalities the batch lacks entirely (a sensor-subset caller)."""
    out = dict(batch)
    ref = next((v for k, v in batch.items() if not k.endswith("_present")), None)
    if ref is None:
        raise ValueError(f"batch holds no chips; the classifier reads {[m.name for m in inputs]}")
    for m in inputs:
        if m.name not in out:
            out[m.name] = ref.new_zeros((ref.shape[0], m.bands, m.chip_size, m.chip_size))
            out[f"{m.name}_present"] = torch.zeros(ref.shape[0], dtype=torch.bool, device=ref.device)
    return out
