"""Saved models without pickles: weights as safetensors plus the architecture as JSON, rebuilt in code.

A saved model is a folder holding ``jointssl.json`` (:data:`SPEC_FILE`: the kind of model, a format
version and its architecture and deployment state as plain data) and safetensors files of tensors
(:data:`WEIGHTS_FILE`, and what else the kind needs). Loading reads the JSON, builds the architecture
in code and copies the tensors in: nothing in the folder is executed, unlike a pickle (``torch.load``
without ``weights_only``, ``mlflow.pytorch`` models), which runs whatever code its author put in it.

In MLflow the folder is a model with the flavor :data:`FLAVOR` (:class:`MlflowFlavor` writes it; the
registry, aliases, signature and metadata work as for any MLflow model). A folder or MLflow model
that holds a pickle instead (jointssl registered ``mlflow.pytorch`` pickles before) is refused by
:func:`read_spec` without being opened, with how to re-register it.

The encoder's architecture is its :class:`ModelConfig` and its modality inputs
(:func:`encoder_spec` / :func:`build_encoder`); the classifier adds its head, fusion and deployment
state (:meth:`jointssl.classify.model.MethaneClassifier.save`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from jointssl.errors import JointsslError
from jointssl.models.config import ModelConfig

if TYPE_CHECKING:  # torch is imported where tensors are made: reading a spec (a driver's check) needs none
    import torch
    from torch import nn

FLAVOR = "jointssl"
"""The MLflow flavor name of a model saved by this module."""
FORMAT_VERSION = 1
SPEC_FILE = "jointssl.json"
WEIGHTS_FILE = "weights.safetensors"
PICKLE_SUFFIXES = (".pth", ".pt", ".pkl", ".pickle", ".bin")
"""Files that hold (or may hold) a pickle: their presence without a spec marks an old, pickled model."""
REREGISTER = {"classifier": "re-run 'jointssl evaluate' to register the classifier again (weights + config)",
              "encoder": "re-run 'jointssl pretrain' (a new run.name, or --fresh) to register the encoder again"}


def encoder_spec(encoder: nn.Module) -> dict[str, Any]:
    """A :class:`MultiModalEncoder`'s architecture as plain data: its model config and modality inputs."""
    config: ModelConfig = encoder.config  # type: ignore[assignment]  # MultiModalEncoder.config
    inputs = [dataclasses.asdict(m) for m in encoder.inputs.values()]  # type: ignore[operator]  # dict of ModalityInput
    return {"model_config": dataclasses.asdict(config), "inputs": inputs}


def build_encoder(spec: Mapping[str, Any], source: str) -> nn.Module:
    """The :class:`MultiModalEncoder` ``spec`` describes, with fresh weights (``source`` names it in errors)."""
    from jointssl.config.load import ConfigError, from_dict
    from jointssl.models.multimodal import ModalityInput, MultiModalEncoder

    try:
        config = from_dict(ModelConfig, spec["model_config"], source, "model_config")
        inputs = [ModalityInput(str(m["name"]), int(m["bands"]), int(m["chip_size"])) for m in spec["inputs"]]
        return MultiModalEncoder(config, inputs)
    except (ConfigError, KeyError, TypeError, ValueError) as err:
        raise JointsslError(f"model {source}: the encoder architecture in {SPEC_FILE} is invalid: {err}",
                            hint="re-register the model with this version of jointssl") from None


def write(folder: str, kind: str, spec: Mapping[str, Any], model: nn.Module) -> None:
    """Save ``model``'s tensors and ``spec`` (with ``kind``, the format version and the names of tensors
    shared with another name, e.g. a shared trunk's, stored once) into ``folder``."""
    from safetensors.torch import save_file

    os.makedirs(folder, exist_ok=True)
    tensors, aliases = _unique(model.state_dict())
    save_file(tensors, os.path.join(folder, WEIGHTS_FILE))
    with open(os.path.join(folder, SPEC_FILE), "w") as f:
        json.dump({"kind": kind, "format": FORMAT_VERSION, **spec, "aliases": aliases}, f, indent=1)


def _unique(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The state dict's tensors with each shared tensor once (contiguous copies), and name -> stored name
    for the others."""
    kept: dict[tuple[int, int, tuple[int, ...], str], str] = {}
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    for name, t in state.items():
        key = (t.untyped_storage().data_ptr(), int(t.storage_offset()), tuple(t.shape), str(t.dtype))
        if key in kept and t.numel() > 0:
            aliases[name] = kept[key]
            continue
        kept[key] = name
        tensors[name] = t.detach().contiguous()
    return tensors, aliases


def read_spec(folder: str, kind: str, source: str) -> dict[str, Any]:
    """The spec of the saved ``kind`` in ``folder``; a JointsslError (nothing unpickled) when the folder
    holds a pickled model, another kind, or no model at all."""
    path = os.path.join(folder, SPEC_FILE)
    if not os.path.isfile(path):
        pickles = _pickles(folder)
        if pickles:
            raise JointsslError(
                f"model {source} is a pickle ({os.path.relpath(pickles[0], folder)}): jointssl no longer loads "
                "pickled models, whose files can run code on every node that loads them", hint=REREGISTER[kind])
        raise JointsslError(f"model {source} has no {SPEC_FILE}: not a model saved by jointssl", hint=REREGISTER[kind])
    try:
        with open(path) as f:
            spec: dict[str, Any] = json.load(f)
    except (OSError, ValueError) as err:
        raise JointsslError(f"model {source}: unreadable {SPEC_FILE}: {err}", hint=REREGISTER[kind]) from None
    if spec.get("kind") != kind or spec.get("format") != FORMAT_VERSION:
        raise JointsslError(f"model {source} is a saved {spec.get('kind')!r} (format {spec.get('format')}), "
                            f"not a {kind} of format {FORMAT_VERSION}", hint=REREGISTER[kind])
    return spec


def load_weights(model: nn.Module, folder: str, source: str, aliases: Mapping[str, str]) -> None:
    """Copy the tensors of ``folder``'s weights file (and the ``aliases`` the spec lists) into ``model``,
    strictly; a clear error when they do not fit."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(os.path.join(folder, WEIGHTS_FILE), device="cpu")
        state = {**tensors, **{name: tensors[stored] for name, stored in aliases.items()}}
    except (SafetensorError, OSError, KeyError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise JointsslError(f"model {source}: cannot read {WEIGHTS_FILE}: {first}",
                            hint="re-register the model with this version of jointssl") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = " ".join(str(err).split())[:300]
        raise JointsslError(f"model {source}: the weights do not fit the architecture in {SPEC_FILE}: {first}",
                            hint="re-register the model with this version of jointssl") from None


def save_encoder(encoder: nn.Module, folder: str) -> None:
    """Save a :class:`MultiModalEncoder` (weights + architecture) into ``folder``."""
    write(folder, "encoder", encoder_spec(encoder), encoder)


def load_encoder(folder: str, source: str) -> nn.Module:
    """The :class:`MultiModalEncoder` saved in ``folder`` by :func:`save_encoder`, in eval mode."""
    spec = read_spec(folder, "encoder", source)
    encoder = build_encoder(spec, source)
    load_weights(encoder, folder, source, spec.get("aliases") or {})
    return encoder.eval()


def _pickles(folder: str) -> list[str]:
    found = []
    for root, _, files in os.walk(folder):
        found += [os.path.join(root, f) for f in files if f.endswith(PICKLE_SUFFIXES)]
    return sorted(found)


class MlflowFlavor:
    """What ``mlflow.models.Model.log`` calls to write a jointssl model: ``save(folder)`` writes the files,
    the MLmodel file names the flavor (no ``python_function`` flavor: MLflow's pyfunc loader unpickles
    or executes the model's code, which is what this format avoids)."""

    __name__ = FLAVOR

    def __init__(self, kind: str, save: Any, requirements: list[str]):
        self.kind = kind
        self.save = save
        self.requirements = requirements

    def save_model(self, path: str, mlflow_model: Any, signature: Any = None, **_: Any) -> None:
        self.save(path)
        if signature is not None:
            mlflow_model.signature = signature
        mlflow_model.add_flavor(FLAVOR, kind=self.kind, format=FORMAT_VERSION, spec=SPEC_FILE, weights=WEIGHTS_FILE,
                                torch_version=_torch_version())
        mlflow_model.save(os.path.join(path, "MLmodel"))
        with open(os.path.join(path, "requirements.txt"), "w") as f:
            f.write("\n".join(self.requirements) + "\n")


def _torch_version() -> str:
    import torch

    return str(torch.__version__)
