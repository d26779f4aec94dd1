"""The classifier a run uses: its reference resolved to one pinned version, its sensor contract checked
against the config before any chip is read.

An alias (``models:/methane-classifier@champion``) is resolved once, in the driver: the run folder
and every actor use ``models:/<name>/<version>``, so an alias moving mid-run (a new champion) cannot
mix two models in one output, and a new champion means a new run. The contract and class names are
read from the registered model's metadata (written by :func:`jointssl.classify.registry.register_classifier`)
without loading weights; models logged without it are loaded once to read them. So are the operating
points (per-class thresholds) the run decides with.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from jointssl.config.load import ConfigError
from jointssl.config.schema import JobConfig
from jointssl.errors import JointsslError
from jointssl.sensors.spec import Modality


@dataclass(frozen=True)
class ModelRef:
    reference: str
    """As configured (infer.model)."""
    uri: str
    """Pinned: models:/<name>/<version> for registry references, else the reference itself."""
    name: str
    version: str
    sensors: dict[str, Any]
    """The sensor contract: {"preset", "modalities": [{name, collection, bands, chip_size, target_gsd_m}]}."""
    classes: list[str]
    operating_points: dict[str, Any] = field(default_factory=dict)
    """Name -> per-class thresholds chosen on validation (metadata written at registration; empty for
    classifiers registered before they existed)."""
    ood: dict[str, Any] | None = None
    expected: dict[str, Any] = field(default_factory=dict)
    """Operating point -> class -> test precision / recall with 95 % intervals, as evaluation measured them."""
    """Summary of the classifier's input profile (level, validation sites, sensors); None: no OOD guard."""


def resolve_model(reference: str, tracking_uri: str) -> ModelRef:
    """Pin ``reference`` to a version and read its contract; JointsslError (with a hint) when it is missing."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    name, version, uri = reference, "", reference
    if reference.startswith("models:/"):
        name, version = _registry_version(reference, tracking_uri)
        uri = f"models:/{name}/{version}"
    metadata: dict[str, Any] = {}
    with contextlib.suppress(Exception):  # no MLmodel there: load_classifier below says what is wrong
        metadata = mlflow.models.get_model_info(uri).metadata or {}
    if "sensors" not in metadata or "classes" not in metadata:
        from jointssl.classify.registry import load_classifier

        model = load_classifier(uri, tracking_uri)
        metadata = {"sensors": model.sensors, "classes": list(model.classes), **model.deployment()}
    return ModelRef(reference, uri, name, version, metadata["sensors"], list(metadata["classes"]),
                    metadata.get("operating_points") or {}, metadata.get("ood"), metadata.get("expected_test") or {})


def model_modalities(config: JobConfig, model: ModelRef) -> list[Modality]:
    """The sensors to read: infer.modalities (default: the classifier's) from index.preset, checked
    against the classifier's contract (ConfigError naming what differs)."""
    from jointssl.data.pipeline import preset_of
    from jointssl.sensors import select
    from jointssl.sensors.contract import check_classifier

    known = [m["name"] for m in model.sensors["modalities"]]
    preset = preset_of(config)
    names = config.infer.modalities or known
    try:
        modalities = select(preset, names)
    except ConfigError as err:
        key = "infer.modalities" if config.infer.modalities else "index.preset"
        raise ConfigError(key, f"{err.problem} (the classifier {model.uri} reads {', '.join(known)})") from None
    problems = check_classifier(model.sensors, modalities)
    if problems:
        raise ConfigError(
            "index.preset" if not config.infer.modalities else "infer.modalities",
            f"the sensors of preset {config.index.preset!r} do not match what classifier {model.uri} was trained "
            f"on (preset {model.sensors.get('preset')!r}): " + "; ".join(problems))
    return modalities


def _registry_version(reference: str, tracking_uri: str) -> tuple[str, str]:
    import mlflow
    from mlflow.exceptions import MlflowException

    body = reference[len("models:/"):]
    client = mlflow.MlflowClient(tracking_uri)
    try:
        if "@" in body:
            name, alias = body.split("@", 1)
            return name, str(client.get_model_version_by_alias(name, alias).version)
        name, _, version = body.partition("/")
        if version in ("", "latest"):
            versions = client.search_model_versions(f"name='{name}'")
            if not versions:
                raise MlflowException(f"no versions of {name!r}")
            return name, str(max(int(v.version) for v in versions))
        return name, str(client.get_model_version(name, version).version)
    except MlflowException as err:
        from jointssl.classify.registry import load_classifier

        load_classifier(reference, tracking_uri)  # raises the registry's own error, with what exists instead
        raise JointsslError(f"cannot resolve model {reference!r} at {tracking_uri}") from err  # not reached in practice
