"""Model references and the MLflow model registry: resolve encoders, publish and load classifiers.

A model is referenced by an MLflow URI (``models:/name@alias``, ``models:/name/3``, ``runs:/id/path``)
or a path: a Ray Train checkpoint folder of :mod:`jointssl.train.trainer` (``state.pt``), or an MLflow
model folder. Registered models are MLflow models of the ``jointssl`` flavor: weights (safetensors) and
architecture (JSON) that :mod:`jointssl.models.saved` builds in code; pickled models (what jointssl
registered before) are refused unopened, with how to re-register them. Every failure to resolve one
is a :class:`JointsslError` naming the reference and what exists instead, never a stack trace from deep
inside MLflow.

Champion policy (:func:`register_classifier`): every evaluated classifier is registered as a new
version of ``methane-classifier`` with its validation macro AUPRC as a version tag; the alias
``champion`` moves to it only if that score beats the current champion's. Inference loads
``models:/methane-classifier@champion``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jointssl.errors import JointsslError

if TYPE_CHECKING:
    from jointssl.classify.model import MethaneClassifier
    from jointssl.models.config import ModelConfig
    from jointssl.models.multimodal import ModalityInput, MultiModalEncoder

log = logging.getLogger(__name__)

CHAMPION = "champion"
SCORE_TAG = "val_macro_auprc"
"""Model-version tag holding the validation macro AUPRC that the champion policy compares."""


def _resolve_uri(ref: str) -> str:
    return ref if "://" in ref or ref.startswith("models:/") else os.path.abspath(ref)


def download_model(ref: str, tracking_uri: str, into: str) -> str:
    """The local folder of the model ``ref``: the folder itself for a path, else its artifacts downloaded
    into ``into`` (downloading opens nothing)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = _resolve_uri(ref)
    if os.path.isdir(uri):
        return uri
    mlflow.set_tracking_uri(tracking_uri)
    try:
        local: str = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=into)
    except (MlflowException, OSError) as err:
        raise JointsslError(f"cannot load model {ref!r} from {tracking_uri}: {_first_line(err)}",
                            hint=_hint_for(ref, tracking_uri)) from None
    return local


def download_classifier(ref: str, tracking_uri: str, into: str) -> str:
    """Download the registered classifier into the folder ``into`` and check that it is a saved jointssl
    classifier (a pickle is refused here, unopened); returns the folder, for workers to load with
    :func:`load_downloaded_classifier` (no MLflow import, no registry round trip)."""
    from jointssl.models import saved

    folder = download_model(ref, tracking_uri, into)
    saved.read_spec(folder, "classifier", ref)
    return folder


def load_downloaded_classifier(folder: str, ref: str) -> MethaneClassifier:
    """The :class:`MethaneClassifier` saved in ``folder`` (from :func:`download_classifier`; ``ref`` names
    it in errors), built in code from its weights and config: nothing is unpickled."""
    from jointssl.classify.model import MethaneClassifier

    return MethaneClassifier.load(folder, ref)


def load_encoder(ref: str, tracking_uri: str, model_config: ModelConfig, inputs: Sequence[ModalityInput],
                 seed: int = 0) -> MultiModalEncoder:
    """A :class:`MultiModalEncoder` from a registry URI (its saved architecture and weights) or a
    pre-training checkpoint folder (``model_config`` and ``inputs``, weights only)."""
    import tempfile

    from jointssl.models import saved
    from jointssl.models.multimodal import MultiModalEncoder
    from jointssl.train.checkpoint import STATE_FILE, load_checkpoint_encoder

    if "://" not in ref and not ref.startswith("models:/") and os.path.exists(os.path.join(ref, STATE_FILE)):
        return load_checkpoint_encoder(ref, model_config, inputs, seed)
    with tempfile.TemporaryDirectory(prefix="jointssl-encoder-") as into:
        model = saved.load_encoder(download_model(ref, tracking_uri, into), ref)
    if not isinstance(model, MultiModalEncoder):  # not reached: saved.load_encoder builds one
        raise JointsslError(f"{ref!r} is a {type(model).__name__}, not a jointssl multi-modal encoder")
    return model


def load_classifier(ref: str, tracking_uri: str) -> MethaneClassifier:
    """A :class:`MethaneClassifier` from the registry (default reference: the champion) or a model folder."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="jointssl-classifier-") as into:
        return load_downloaded_classifier(download_classifier(ref, tracking_uri, into), ref)


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    score: float
    champion_before: float | None
    """The previous champion's score (None: there was none)."""
    promoted: bool

    def describe(self) -> str:
        before = "no champion yet" if self.champion_before is None else f"champion had {self.champion_before:.3f}"
        verdict = f"alias '{CHAMPION}' moved to version {self.version}" if self.promoted else f"'{CHAMPION}' stays"
        return f"{self.name} v{self.version}: val macro AUPRC {self.score:.3f} ({before}) -> {verdict}"


def register_classifier(classifier: Any, name: str, score: float, tracking_uri: str, run_id: str,
                        description: str = "") -> Registration:
    """Log ``classifier`` to ``run_id`` with its signature, sensor contract and deployment state
    (calibration, operating points, OOD profile summary: in the model's metadata, as the table artifact
    ``classifier/operating_points.json`` and in the version's description), register it, move the
    champion alias only when ``score`` beats the champion's."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    from jointssl.models.saved import MlflowFlavor
    from jointssl.tracking import model_requirements

    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri)
    deployment = classifier.deployment()
    with mlflow.start_run(run_id=run_id):
        info = Model.log(
            None, MlflowFlavor("classifier", classifier.save, model_requirements()), name="classifier",
            signature=_signature(classifier),
            metadata={"sensors": classifier.sensors, "classes": list(classifier.classes),
                      "fusion": classifier.fusion, SCORE_TAG: score, **deployment})
        rows = operating_point_rows(deployment)
        if rows:
            mlflow.log_table({k: [r[k] for r in rows] for k in rows[0]}, "classifier/operating_points.json")
    version = mlflow.register_model(info.model_uri, name, tags={SCORE_TAG: score_tag(score)})
    table = operating_point_markdown(deployment)
    if description or table:
        text = "\n\n".join(t for t in (description, table) if t)
        client.update_model_version(name, version.version, description=text)
    before: float | None = None
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
        before = float(current.tags.get(SCORE_TAG, "nan"))
    except MlflowException:
        pass  # no champion yet
    promoted = beats(score, before)
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version.version)
    result = Registration(name, str(version.version), score, before, promoted)
    log.info("registry: %s", result.describe())
    return result


def operating_point_rows(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (operating point, class): threshold and validation precision / recall (None: unsupported)."""
    calibration = deployment.get("calibration") or {}
    rows = []
    for point in (deployment.get("operating_points") or {}).values():
        for k, (c, p) in enumerate(point["classes"].items()):
            rows.append({"operating_point": point["name"], "class": c, "threshold": p["threshold"],
                         "val_precision": p["val_precision"], "val_recall": p["val_recall"],
                         "val_positives": p["val_positives"],
                         "platt_slope": calibration["slope"][k] if calibration else None,
                         "platt_bias": calibration["bias"][k] if calibration else None})
    return rows


def operating_point_markdown(deployment: dict[str, Any]) -> str:
    """The operating points as a Markdown table (the model version's description)."""
    rows = operating_point_rows(deployment)
    if not rows:
        return ""

    def cell(v: Any) -> str:
        return "unsupported" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["Operating points (thresholds on calibrated probabilities, chosen on validation):", "",
             "| operating point | class | threshold | val precision | val recall | val positives |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['operating_point']} | {r['class']} | {cell(r['threshold'])} | {cell(r['val_precision'])} | "
              f"{cell(r['val_recall'])} | {r['val_positives']} |" for r in rows]
    ood = deployment.get("ood")
    if ood:
        lines += ["", f"Out-of-distribution guard: threshold chosen on {ood['val_sites']} validation sites, "
                      f"in-domain false-alarm rate {ood['level']:.3f}; sensors {', '.join(ood['sensors'])}."]
    return "\n".join(lines)


def score_tag(score: float) -> str:
    """The validation score as a version tag: six decimals."""
    return f"{score:.6f}"


def beats(score: float, champion: float | None) -> bool:
    """Whether ``score`` takes the alias from a champion tagged ``champion`` (None: no champion; NaN: an
    untagged one). Compared at the tag's precision: a re-run with the same score does not win by the
    digits the tag dropped."""
    if champion is None or champion != champion:
        return True
    return float(score_tag(score)) > champion


def _signature(classifier: Any) -> Any:
    """Input: one float32 [B C H W] tensor per modality (+ [B] presence flags); output [B K] logits."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    inputs: list[ColSpec | TensorSpec] = []
    for m in classifier.inputs:
        inputs.append(TensorSpec(np.dtype(np.float32), (-1, m.bands, m.chip_size, m.chip_size), m.name))
        inputs.append(TensorSpec(np.dtype(np.bool_), (-1,), f"{m.name}_present"))
    return ModelSignature(inputs=Schema(inputs),
                          outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, len(classifier.classes)), "logits")]))


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]


def _hint_for(ref: str, tracking_uri: str) -> str:
    if ref.startswith("models:/"):
        name = ref[len("models:/"):].split("@")[0].split("/")[0]
        try:
            import mlflow

            client = mlflow.MlflowClient(tracking_uri)
            versions = client.search_model_versions(f"name='{name}'")
            aliases = sorted(client.get_registered_model(name).aliases)  # version search omits aliases
            if versions:
                return (f"model {name!r} exists with versions {sorted(int(v.version) for v in versions)} "
                        f"and aliases {aliases or 'none'}; check the version or alias")
        except Exception:  # the hint is best effort; the error above already says what failed
            pass
        return (f"no registered model {name!r} at {tracking_uri}: run the stage that registers it "
                "(pretrain: jointssl-encoder, evaluate: methane-classifier) or set tracking.uri")
    return "give an MLflow URI (models:/name@alias) or an existing checkpoint / MLflow model folder"
