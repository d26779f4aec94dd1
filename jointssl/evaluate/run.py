"""The evaluation driver: every protocol and baseline on the same labelled sites, one MLflow run.

1. resolve the encoder under test (MLflow URI or checkpoint) and check it reads the configured sensors;
2. read the labelled train / val / test sites into memory;
3. for each label fraction: linear probes (SSL fused and per modality, random init, single-modality
   SSL baselines), fine-tuning of the SSL encoder, supervised training from scratch;
4. score every classifier on the test split (thresholds from validation, bootstrap CIs);
5. write results.json / results.md / PNGs, log them to an MLflow evaluation run linked to the
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

import numpy as np

from jointssl import storage
from jointssl.classify.model import MethaneClassifier, sensor_contract
from jointssl.classify.registry import Registration, load_encoder, register_classifier
from jointssl.config import JobConfig, flatten, to_dict
from jointssl.errors import JointsslError
from jointssl.evaluate.data import LabelledSites, label_budget, labelled_sites
from jointssl.evaluate.fit import Embedded, Fitted, embed_split, fit_end_to_end, fit_probe
from jointssl.evaluate.metrics import best_thresholds, score
from jointssl.evaluate.report import Row, cooccurrence_png, pr_curves_png, results_json, results_markdown
from jointssl.models.multimodal import MultiModalEncoder

log = logging.getLogger(__name__)

PRETRAIN_RUN_TAG = "jointssl.pretrain_run_id"
"""Tag on the evaluation run naming the MLflow run that produced the encoder under test."""


def evaluate(config: JobConfig) -> dict[str, Any]:
    """Run the whole protocol (see the module docstring); returns a JSON-able summary."""
    from jointssl.data.pipeline import modalities_of
    from jointssl.models.multimodal import ModalityInput
    from jointssl.train.loop import build_model
    from jointssl.train.tracking import tracking_uri

    e = config.evaluate
    started = time.perf_counter()
    uri = tracking_uri(config)
    modalities = modalities_of(config)
    inputs = [ModalityInput.of(m) for m in modalities]
    sensors = sensor_contract(config.index.preset, modalities)

    # 1. the encoder under test and the baselines' encoders
    ssl = load_encoder(e.encoder, uri, config.model, inputs, config.run.seed)
    _check_stems(ssl, inputs, e.encoder)
    singles = {}
    for modality, ref in e.single_modality.items():
        if modality not in ssl.modalities:
            raise JointsslError(f"evaluate.single_modality names {modality!r}, which is not a configured modality "
                                f"({', '.join(ssl.modalities)})", hint="use the modality names of the sensor preset")
        singles[modality] = load_encoder(ref, uri, config.model, [i for i in inputs if i.name == modality],
                                         config.run.seed)
        _check_stems(singles[modality], [i for i in inputs if i.name == modality], ref)
    random_init = build_model(config.model, inputs, config.run.seed + 1) if (e.random_init or e.supervised) else None

    # 2. labelled sites
    data = labelled_sites(config, modalities)
    train, val, test = (data.splits[s] for s in ("train", "val", "test"))
    log.info("evaluate: %d train / %d val / %d test labelled sites, fractions %s", len(train), len(val), len(test),
             e.label_fractions)

    # 3. + 4. every protocol, scored on test
    cache: dict[str, tuple[Embedded, Embedded, Embedded]] = {}

    def embedded(name: str, encoder: MultiModalEncoder) -> tuple[Embedded, Embedded, Embedded]:
        if name not in cache:
            cache[name] = tuple(embed_split(encoder, s) for s in (train, val, test))  # type: ignore[assignment]
        return cache[name]

    rows: list[Row] = []
    models: dict[str, MethaneClassifier] = {}
    all_mods = list(ssl.modalities)

    def add(key: str, encoder_title: str, protocol: str, mods: list[str], fraction: float, budget: np.ndarray,
            fitted: Fitted) -> None:
        probs_val = fitted.classifier.predict_proba(val.chips)
        probs_test = fitted.classifier.predict_proba(test.chips)
        scores = score(test.labels, probs_test, best_thresholds(val.labels, probs_val),
                       bootstrap=e.bootstrap, seed=config.run.seed)
        row = Row(encoder_title, protocol, mods, fraction, len(budget), fitted.val_macro_auprc, scores,
                  fitted.detail, probs_test, key)
        rows.append(row)
        models[key] = fitted.classifier
        log.info("%-34s val %.3f  test macro AUPRC %.3f  (%s)", key, fitted.val_macro_auprc,
                 scores.overall["auprc"], fitted.detail)

    probe_args = dict(fusions=e.fusions, epochs=e.probe_epochs, lr=e.probe_lr, l2=e.probe_l2, sensors=sensors,
                      seed=config.run.seed)
    train_args = dict(epochs=e.train_epochs, batch_size=e.train_batch_size, lr=e.train_lr,
                      dropout=e.modality_dropout, sensors=sensors, seed=config.run.seed)
    for fraction in e.label_fractions:
        budget = label_budget(train.labels, fraction, config.run.seed)
        pct = f"{round(fraction * 100)}"
        y_budget = train.labels[budget]
        tr, va, _ = embedded("ssl", ssl)
        ssl_probe = fit_probe(ssl, all_mods, tr.subset(budget), y_budget, va, val.labels, **probe_args)
        add(f"probe/ssl/fused/{pct}", "multimodal SSL", "linear probe", all_mods, fraction, budget, ssl_probe)
        fusion = ssl_probe.classifier.fusion  # fine-tuning and supervised rows use the same fusion
        if e.per_modality and len(all_mods) > 1:
            for m in all_mods:
                add(f"probe/ssl/{m}/{pct}", "multimodal SSL", "linear probe", [m], fraction, budget,
                    fit_probe(ssl, [m], tr.subset(budget), y_budget, va, val.labels, **probe_args))
        for m, encoder in singles.items():
            s_tr, s_va, _ = embedded(f"single/{m}", encoder)
            add(f"probe/ssl-{m}-only/{m}/{pct}", f"SSL ({m} only)", "linear probe", [m], fraction, budget,
                fit_probe(encoder, [m], s_tr.subset(budget), y_budget, s_va, val.labels, **probe_args))
        if e.random_init and random_init is not None:
            r_tr, r_va, _ = embedded("random", random_init)
            add(f"probe/random/fused/{pct}", "random init", "linear probe", all_mods, fraction, budget,
                fit_probe(random_init, all_mods, r_tr.subset(budget), y_budget, r_va, val.labels, **probe_args))
        sub = train.subset(budget)
        if e.finetune:
            add(f"finetune/ssl/fused/{pct}", "multimodal SSL", "fine-tune", all_mods, fraction, budget,
                fit_end_to_end(ssl, sub, val, fusion=fusion, **train_args))
        if e.supervised and random_init is not None:
            add(f"scratch/supervised/fused/{pct}", "supervised", "from scratch", all_mods, fraction, budget,
                fit_end_to_end(random_init, sub, val, fusion=fusion, **train_args))

    # 5. outputs, tracking, registry
    candidates = [r for r in rows if r.modalities == all_mods and r.label_fraction == max(e.label_fractions)]
    best = max(candidates, key=lambda r: r.val_macro_auprc)
    notes = science_notes(rows, max(e.label_fractions))
    missing = missing_sensor_scores(models[best.key], test)
    notes.append("Best classifier with one sensor missing on every test site (test macro AUPRC): "
                 + ", ".join(f"without {m} {v:.3f}" for m, v in missing.items())
                 + f"; all sensors {best.scores.overall['auprc']:.3f}.")
    context = {"run": config.run.name, "encoder": e.encoder, "train_sites": len(train), "val_sites": len(val),
               "test_sites": len(test), "best": best.key, "missing_sensor_auprc": missing, "notes": notes}
    out = e.out or config.storage.url("evaluation", config.run.name)
    registration, run_id = _publish(config, uri, rows, best, models[best.key], test.labels, context, out)
    table = results_markdown(rows, best, {**context, "notes": notes + [registration.describe()]})
    return {"run": config.run.name, "mlflow_run_id": run_id, "tracking_uri": uri, "out": out,
            "best": best.key, "best_test_macro_auprc": round(best.scores.overall["auprc"], 4),
            "registered": f"{registration.name} v{registration.version}", "champion": registration.promoted,
            "decision": registration.describe(), "rows": len(rows),
            "seconds": round(time.perf_counter() - started, 1), "table": table}


def missing_sensor_scores(classifier: MethaneClassifier, split) -> dict[str, float]:
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


def science_notes(rows: list[Row], full: float) -> list[str]:
    """The paper's claims checked on these numbers, each stated as measured (never tuned away)."""
    def get(key_prefix: str, fraction: float) -> Row | None:
        return next((r for r in rows if r.key.startswith(key_prefix) and r.label_fraction == fraction), None)

    notes = []
    ssl, rnd = get("probe/ssl/fused/", full), get("probe/random/fused/", full)
    if ssl and rnd:
        gap = ssl.scores.overall["auprc"] - rnd.scores.overall["auprc"]
        notes.append(f"Linear probe, {full:.0%} labels: multimodal SSL {ssl.scores.overall['auprc']:.3f} vs random "
                     f"init {rnd.scores.overall['auprc']:.3f} (gap {gap:+.3f}; bar: >= +0.15).")
    singles = [r for r in rows if r.key.startswith("probe/ssl-") and r.label_fraction == full]
    if ssl and singles:
        top = max(singles, key=lambda r: r.scores.overall["auprc"])
        notes.append(f"Best single-modality SSL probe: {top.encoder} {top.scores.overall['auprc']:.3f} vs multimodal "
                     f"{ssl.scores.overall['auprc']:.3f} (bar: multimodal >= best single).")
    low = min((r.label_fraction for r in rows), default=full)
    ssl_low, sup_low = get("probe/ssl/fused/", low), get("scratch/supervised/fused/", low)
    if ssl_low and sup_low and low < full:
        notes.append(f"{low:.0%} labels: SSL + linear probe {ssl_low.scores.overall['auprc']:.3f} vs supervised from "
                     f"scratch {sup_low.scores.overall['auprc']:.3f} (bar: SSL >= supervised).")
    return notes


def _check_stems(encoder: MultiModalEncoder, inputs: list, ref: str) -> None:
    """The sensors of the config must be the encoder's: same names, bands and chip sizes."""
    have = {m.name: (m.bands, m.chip_size) for m in encoder.inputs.values()}
    want = {m.name: (m.bands, m.chip_size) for m in inputs}
    if have != want:
        raise JointsslError(
            f"encoder {ref!r} was trained on modalities {_fmt(have)} but the config reads {_fmt(want)}",
            hint="set index.preset / index.modalities to the sensors the encoder was pre-trained on, "
                 "or evaluate an encoder trained on these sensors")


def _fmt(spec: dict) -> str:
    return ", ".join(f"{name} ({bands} bands, {size} px)" for name, (bands, size) in spec.items()) or "none"


def _publish(config: JobConfig, uri: str, rows: list[Row], best: Row, classifier: MethaneClassifier,
             y_test: np.ndarray, context: dict, out: str) -> tuple[Registration, str]:
    """Files to ``out`` and to an MLflow evaluation run; register the best classifier."""
    import mlflow

    from jointssl.train.tracking import experiment_id, log_params

    client = mlflow.MlflowClient(uri)
    tags = {"jointssl.stage": "evaluate", "jointssl.encoder": config.evaluate.encoder}
    pretrain_run = _source_run(client, config.evaluate.encoder)
    if pretrain_run:
        tags[PRETRAIN_RUN_TAG] = pretrain_run
    run = client.create_run(experiment_id(config, uri), run_name=f"{config.run.name}-evaluate", tags=tags)
    run_id = run.info.run_id
    try:
        log_params(client, run_id, {k: str(v)[:6000] for k, v in flatten(to_dict(config)).items()})
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = []
        for r in rows:
            metrics.append(Metric(f"{r.key}/val_macro_auprc", r.val_macro_auprc, now, 0))
            metrics += [Metric(f"{r.key}/{k}", v, now, 0) for k, v in r.scores.overall.items() if v == v]
        for start in range(0, len(metrics), 500):
            client.log_batch(run_id, metrics=metrics[start:start + 500])
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
            pr_curves_png(best, y_test, os.path.join(folder, "pr_curves.png"))
            cooccurrence_png(best, y_test, os.path.join(folder, "cooccurrence.png"))
            client.log_artifacts(run_id, folder, artifact_path="evaluation")
            fs, path = storage.filesystem(out)
            fs.makedirs(path, exist_ok=True)
            for name in sorted(os.listdir(folder)):
                fs.put_file(os.path.join(folder, name), f"{path.rstrip('/')}/{name}")
        client.set_terminated(run_id, status="FINISHED")
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
            return client.get_model_version_by_alias(name, rest).run_id
        name, _, version = name.partition("/")
        return client.get_model_version(name, version).run_id
    except Exception:  # the link is informative; a missing one must not fail the evaluation
        return None


__all__ = ["evaluate", "LabelledSites"]
