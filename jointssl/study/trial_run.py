"""Run one trial: ``jointssl pretrain`` then ``jointssl evaluate`` as subprocesses with the trial's overrides.

A trial is a driver of its own (pre-training starts Ray Train): it runs in its own process, joined to the
study's Ray cluster through ``RAY_ADDRESS``, so a crash or a hang in one trial never takes the study down
(docs/design/0004-study.md). What it leaves in storage, under ``<study>/trials/<trial>/``:

- ``pretrain.log`` / ``evaluate.log``: the commands' output;
- ``evaluation/``: the evaluation's results.json / results.md / test_probs.npz;
- ``trial.json``: written last, only when both commands succeeded: the marker a re-run skips on.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from jointssl import storage
from jointssl.study.grid import Trial

MARKER = "trial.json"


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a study shares."""

    config_file: str | None
    overrides: list[str]
    """The study command's own overrides, applied before each trial's."""
    folder: str
    """<storage.root>/study/<name>"""
    tracking_uri: str
    ray_address: str | None
    encoder_model: str
    """Registered-model name of the study's encoders (one version per trial)."""
    classifier_model: str


@dataclass(frozen=True)
class TrialOutcome:
    trial: Trial
    ok: bool
    record: dict[str, Any]
    """The marker's content when ok; else {'error': ...} with the failing command's last lines."""


def trial_folder(context: TrialContext, trial: Trial) -> str:
    return storage.join(context.folder, "trials", trial.name)


def finished(context: TrialContext, trial: Trial) -> dict[str, Any] | None:
    """The trial's marker when it finished in an earlier run, else None."""
    fs, path = storage.filesystem(storage.join(trial_folder(context, trial), MARKER))
    if not fs.exists(path):
        return None
    return dict(json.loads(fs.cat_file(path)))


def run_trial(context: TrialContext, trial: Trial) -> TrialOutcome:
    """Pre-train (resuming the trial's checkpoint if any), evaluate its encoder, write the marker."""
    folder = trial_folder(context, trial)
    started = time.perf_counter()
    base = ["--config", context.config_file] if context.config_file else []
    args = [*base, *context.overrides, *trial.overrides(), "--tracking.uri", context.tracking_uri]
    code, pretrained = _command(["pretrain", *args, "--pretrain.register_model", context.encoder_model],
                                storage.join(folder, "pretrain.log"), context)
    if code != 0:
        return TrialOutcome(trial, False, {"error": f"pretrain exited {code}", "log": pretrained.get("tail", "")})
    version = re.search(r"version (\d+)", str(pretrained.get("model", "")))
    if not version:
        return TrialOutcome(trial, False, {"error": f"pretrain reported no model version: {pretrained}"})
    encoder = f"models:/{context.encoder_model}/{version.group(1)}"
    evaluation = storage.join(folder, "evaluation")
    code, evaluated = _command(["evaluate", *args, "--evaluate.encoder", encoder, "--evaluate.out", evaluation,
                                "--evaluate.register_model", context.classifier_model],
                               storage.join(folder, "evaluate.log"), context)
    if code != 0:
        return TrialOutcome(trial, False, {"error": f"evaluate exited {code}", "log": evaluated.get("tail", "")})
    record = {"trial": trial.name, "objective": trial.objective, "modalities": list(trial.modalities),
              "seed": trial.seed, "encoder": encoder, "evaluation": evaluation,
              "pretrain_run_id": pretrained.get("mlflow_run_id"), "evaluate_run_id": evaluated.get("mlflow_run_id"),
              "pretrain_seconds": pretrained.get("seconds"), "evaluate_seconds": evaluated.get("seconds"),
              "seconds": round(time.perf_counter() - started, 1)}
    fs, path = storage.filesystem(storage.join(folder, MARKER))
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "w") as f:
        f.write(json.dumps(record, indent=2))
    return TrialOutcome(trial, True, record)


def _command(argv: list[str], log_url: str, context: TrialContext) -> tuple[int, dict[str, Any]]:
    """Run ``jointssl <argv>``; (exit code, its printed JSON summary, or {'tail': last lines} on failure)."""
    env = dict(os.environ)
    if context.ray_address:
        env["RAY_ADDRESS"] = context.ray_address
    done = subprocess.run([sys.executable, "-m", "jointssl", *argv], env=env, capture_output=True, text=True,
                          check=False)
    fs, path = storage.filesystem(log_url)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "w") as f:
        f.write(f"$ jointssl {' '.join(argv)}\n{done.stdout}\n--- stderr ---\n{done.stderr}")
    if done.returncode != 0:
        return done.returncode, {"tail": (done.stdout + done.stderr)[-3000:]}
    return 0, last_json(done.stdout)


def last_json(text: str) -> dict[str, Any]:
    """The JSON object a command prints last (its summary), or {} when there is none."""
    start = text.rfind("\n{\n")
    start = start + 1 if start >= 0 else (0 if text.startswith("{") else -1)
    if start < 0:
        return {}
    try:
        value = json.loads(text[start:])
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
