"""The study's outputs: results.md / results.json / plot.png under <study>, and the same on the parent MLflow run."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np

from jointssl import storage
from jointssl.config.schema import JobConfig
from jointssl.evaluate.report import TEST_PROBS_FILE, read_test_probs
from jointssl.study.table import TrialResult, collect, markdown, plot_png, tabulate, trial_result


def load(records: list[dict[str, Any]]) -> list[tuple[TrialResult, list[str], np.ndarray]]:
    """Each finished trial's fused test probabilities, read from its evaluation folder."""
    out = []
    for record in records:
        fs, path = storage.filesystem(storage.join(record["evaluation"], TEST_PROBS_FILE))
        probs, sites, labels = read_test_probs(fs.cat_file(path))
        out.append((trial_result(record, probs), sites, labels))
    return out


def publish(config: JobConfig, uri: str, parent: str, folder: str, records: list[dict[str, Any]],
            name: str) -> dict[str, Any]:
    """Tabulate the finished trials and write the outputs; returns the table (JSON-able)."""
    import mlflow

    tab = tabulate(collect(load(records)), config.study.objectives, config.study.bootstrap, config.run.seed)
    tab["trials"] = records
    text = markdown(tab, name)
    client = mlflow.MlflowClient(uri)
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "results.md"), "w") as f:
            f.write(text)
        with open(os.path.join(tmp, "results.json"), "w") as f:
            f.write(json.dumps(tab, indent=2, default=float))
        plot_png(tab, os.path.join(tmp, "plot.png"))
        fs, path = storage.filesystem(folder)
        fs.makedirs(path, exist_ok=True)
        for file in ("results.md", "results.json", "plot.png"):
            fs.put_file(os.path.join(tmp, file), f"{path.rstrip('/')}/{file}")
        client.log_artifacts(parent, tmp, artifact_path="study")
    for c in tab["comparisons"]:
        key = f"{c['question']}/{'/'.join(map(str, c['a']))}".replace(" ", "_").replace("+", "-")[:250]
        client.log_metric(parent, key.replace("(", "").replace(")", ""), c["difference"]["value"])
    client.set_terminated(parent, status="FINISHED")
    print(text, flush=True)
    return tab
