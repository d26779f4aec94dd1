"""The evaluation driver: every protocol and baseline on the same labelled sites, one MLflow run.

1. resolve the encoder under test (MLflow URI or checkpoint) and check it reads the configured sensors;
2. read the labelled train / val / test sites into memory;
3. for each label fraction: linear probes (SSL fused and per modality, random init, single-modality
   SSL baselines), fine-tuning of the SSL encoder, supervised training from scratch;
4. score every classifier on the test split (thresholds from validation, bootstrap CIs);
5. calibrate the best fused classifier and choose its operating points on validation, measure them on
   test, describe its training inputs for the out-of-distribution guard (:mod:`jointssl.evaluate.deploy`);
6. write results.json / results.md / PNGs, log them to an MLflow evaluation run linked to the
   pre-training run, and register the best fused classifier (the champion alias moves only if it
   beats the current champion on validation macro AUPRC).

Evaluation runs on one process: labelled sets are small and every protocol reuses the same
in-memory tensors (see :mod:`jointssl.evaluate.data`).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from typing import Any

from jointssl import storage
from jointssl.classify.model import MethaneClassifier
from jointssl.classify.registry import Registration, load_encoder, register_classifier
from jointssl.config import JobConfig, flatten, to_dict
from jointssl.errors import JointsslError
from jointssl.evaluate.data import LabelledSites, Split, labelled_sites
from jointssl.evaluate.deploy import Deployment, deploy
from jointssl.evaluate.protocols import (
    EmbeddingCache,
    Encoders,
    Evaluated,
    Splits,
    best_fused,
    fraction_rows,
    science_notes,
)
from jointssl.evaluate.report import (
    TEST_PROBS_FILE,
    Row,
    cooccurrence_png,
    pr_curves_png,
    reliability_png,
    results_json,
    results_markdown,
    test_probs_npz,
)
from jointssl.models.multimodal import ModalityInput, MultiModalEncoder
from jointssl.sensors.contract import classifier_contract

log = logging.getLogger(__name__)

PRETRAIN_RUN_TAG = "jointssl.pretrain_run_id"
"""Tag on the evaluation run naming the MLflow run that produced the encoder under test."""


def evaluate(config: JobConfig) -> dict[str, Any]:
    """Run the whole protocol (see the module docstring); returns a JSON-able summary."""
    from jointssl.data.pipeline import modalities_of
    from jointssl.models.multimodal import ModalityInput
    from jointssl.tracking import tracking_uri

    e = config.evaluate
    started = time.perf_counter()
    uri = tracking_uri(config)
    modalities = modalities_of(config)
    inputs = [ModalityInput.of(m) for m in modalities]
    sensors = classifier_contract(config.index.preset, modalities)
    encoders = load_encoders(config, inputs, uri)
    splits = read_splits(config, modalities)
    cache = EmbeddingCache(splits)
    evaluated = [x for fraction in e.label_fractions
                 for x in fraction_rows(encoders, splits, cache, e, fraction, sensors, config.run.seed)]
    rows = [x.row for x in evaluated]
    full = max(e.label_fractions)
    best = best_fused(evaluated, encoders.ssl.modalities, full)
    deployment = deploy(best.classifier, splits.train, splits.val, splits.test, e.bootstrap, config.run.seed)
    notes = science_notes(rows, full, splits.test.labels, e.bootstrap, config.run.seed)
    missing = missing_sensor_scores(best.classifier, splits.test)
    notes.append("Best classifier with one sensor missing on every test site (test macro AUPRC): "
                 + ", ".join(f"without {m} {v:.3f}" for m, v in missing.items())
                 + f"; all sensors {best.row.scores.overall['auprc']:.3f}.")
    context = {"run": config.run.name, "encoder": e.encoder, "train_sites": len(splits.train),
               "val_sites": len(splits.val), "test_sites": len(splits.test), "best": best.row.key,
               "missing_sensor_auprc": missing, "notes": notes, "deployment": deployment.to_dict()}
    out = e.out or config.storage.url("evaluation", config.run.name)
    registration, run_id = _publish(config, uri, rows, best, deployment, splits.test, context, out)
    table = results_markdown(rows, best.row, {**context, "notes": [*notes, registration.describe()]})
    return {"run": config.run.name, "mlflow_run_id": run_id, "tracking_uri": uri, "out": out,
            "best": best.row.key, "best_test_macro_auprc": round(best.row.scores.overall["auprc"], 4),
            "registered": f"{registration.name} v{registration.version}", "champion": registration.promoted,
            "model_uri": f"models:/{registration.name}/{registration.version}",
            "decision": registration.describe(), "rows": len(rows),
            "seconds": round(time.perf_counter() - started, 1), "table": table}


def load_encoders(config: JobConfig, inputs: list[Any], uri: str) -> Encoders:
    """The encoder under test (its sensors checked against the config) and the baselines' encoders."""
    from jointssl.train.loop import build_model

    e = config.evaluate
    ssl = load_encoder(e.encoder, uri, config.model, inputs, config.run.seed)
    _check_stems(ssl, inputs, e.encoder)
    singles = {}
    for modality, ref in e.single_modality.items():
        if modality not in ssl.modalities:
            raise JointsslError(f"evaluate.single_modality names {modality!r}, which is not a configured modality "
                                f"({', '.join(ssl.modalities)})", hint="use the modality names of the sensor preset")
        mine = [i for i in inputs if i.name == modality]
        singles[modality] = load_encoder(ref, uri, config.model, mine, config.run.seed)
        _check_stems(singles[modality], mine, ref)
    random_init = build_model(config.model, inputs, config.run.seed + 1) if (e.random_init or e.supervised) else None
    return Encoders(ssl, singles, random_init)


def read_splits(config: JobConfig, modalities: list[Any]) -> Splits:
    data = labelled_sites(config, modalities)
    splits = Splits(data.splits["train"], data.splits["val"], data.splits["test"])
    log.info("evaluate: %d train / %d val / %d test labelled sites, fractions %s", len(splits.train),
             len(splits.val), len(splits.test), config.evaluate.label_fractions)
    return splits


def missing_sensor_scores(classifier: MethaneClassifier, split: Split) -> dict[str, float]:
    """Test macro AUPRC of ``classifier`` when each of its sensors in turn is absent for every site."""
    import torch

    from jointssl.evaluate.metrics import macro_auprc

    out: dict[str, float] = {}
    if len(classifier.modalities) < 2:
        return out
    for m in classifier.modalities:
        chips = dict(split.chips)
        chips[f"{m}_present"] = torch.zeros_like(chips[f"{m}_present"])  # [N] all absent
        out[m] = round(macro_auprc(split.labels, classifier.predict_proba(chips)), 4)
    return out


def _check_stems(encoder: MultiModalEncoder, inputs: list[ModalityInput], ref: str) -> None:
    """The sensors of the config must be the encoder's: same names, bands and chip sizes."""
    have = {m.name: (m.bands, m.chip_size) for m in encoder.inputs.values()}
    want = {m.name: (m.bands, m.chip_size) for m in inputs}
    if have != want:
        raise JointsslError(
            f"encoder {ref!r} was trained on modalities {_fmt(have)} but the config reads {_fmt(want)}",
            hint="set index.preset / index.modalities to the sensors the encoder was pre-trained on, "
                 "or evaluate an encoder trained on these sensors")


def _fmt(spec: dict[str, tuple[int, int]]) -> str:
    return ", ".join(f"{name} ({bands} bands, {size} px)" for name, (bands, size) in spec.items()) or "none"


def _publish(config: JobConfig, uri: str, rows: list[Row], chosen: Evaluated, deployment: Deployment,
             test: Split, context: dict[str, Any], out: str) -> tuple[Registration, str]:
    """Files to ``out`` and to an MLflow evaluation run; register the best classifier."""
    import mlflow

    from jointssl.tracking import experiment_id, log_params, record

    best, classifier = chosen.row, chosen.classifier
    y_test = test.labels
    client = mlflow.MlflowClient(uri)
    tags = {"jointssl.stage": "evaluate", "jointssl.encoder": config.evaluate.encoder}
    pretrain_run = _source_run(client, config.evaluate.encoder)
    if pretrain_run:
        tags[PRETRAIN_RUN_TAG] = pretrain_run
    run = client.create_run(experiment_id(config, uri), run_name=f"{config.run.name}-evaluate", tags=tags)
    run_id = run.info.run_id
    try:
        params = {k: str(v)[:6000] for k, v in flatten(to_dict(config)).items()}
        record("the evaluation's params", lambda: log_params(client, run_id, params))
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = []
        for r in rows:
            metrics.append(Metric(f"{r.key}/val_macro_auprc", r.val_macro_auprc, now, 0))
            metrics += [Metric(f"{r.key}/{k}", v, now, 0) for k, v in r.scores.overall.items() if v == v]
        for c, ece in deployment.ece.items():
            metrics += [Metric(f"calibration/ece_{when}/{c}", v, now, 0) for when, v in ece.items()]
        record("the evaluation's metrics", lambda: [client.log_batch(run_id, metrics=metrics[i:i + 500])
                                                    for i in range(0, len(metrics), 500)])
        registration = register_classifier(classifier, config.evaluate.register_model, best.val_macro_auprc, uri,
                                           run_id, description=f"{best.title}; evaluation run {run_id}")
        context = {**context, "registered": registration.describe(), "mlflow_run_id": run_id}
        with tempfile.TemporaryDirectory() as folder:
            files = {"results.json": results_json(rows, context),
                     "results.md": results_markdown(rows, best, {**context, "notes": [*context["notes"],
                                                                                      registration.describe()]})}
            for name, text in files.items():
                with open(os.path.join(folder, name), "w") as f:
                    f.write(text)
            test_probs_npz(rows, test.site_ids, y_test, os.path.join(folder, TEST_PROBS_FILE))
            pr_curves_png(best, y_test, os.path.join(folder, "pr_curves.png"))
            cooccurrence_png(best, y_test, os.path.join(folder, "cooccurrence.png"))
            reliability_png(y_test, deployment.test_uncalibrated, deployment.test_calibrated, deployment.ece,
                            classifier.classes, os.path.join(folder, "reliability.png"))
            record("the evaluation's files", lambda: client.log_artifacts(run_id, folder, artifact_path="evaluation"))
            fs, path = storage.filesystem(out)
            fs.makedirs(path, exist_ok=True)
            for name in sorted(os.listdir(folder)):
                fs.put_file(os.path.join(folder, name), f"{path.rstrip('/')}/{name}")
        record("the evaluation run's end", lambda: client.set_terminated(run_id, status="FINISHED"))
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    return registration, run_id


def _source_run(client: Any, ref: str) -> str | None:
    """The MLflow run that logged a ``models:/name@alias`` or ``models:/name/version`` encoder, if any."""
    if not ref.startswith("models:/"):
        return None
    name, _, rest = ref[len("models:/"):].partition("@")
    try:
        if rest:
            by_alias: str = client.get_model_version_by_alias(name, rest).run_id
            return by_alias
        name, _, version = name.partition("/")
        by_version: str = client.get_model_version(name, version).run_id
        return by_version
    except Exception:  # the link is informative; a missing one must not fail the evaluation
        return None


__all__ = ["LabelledSites", "evaluate"]
