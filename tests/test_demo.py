"""``jointssl demo`` against the platform's real services (S3, pgstac STAC API, MLflow server, Ray), then
the MLflow UI in headless Chromium shows the evaluation run and the champion classifier."""

from __future__ import annotations

import json

import pytest

from jointssl.cli import main
from tests.conftest import require_ray
from tests.support.browser import dump_dom, require_chromium

pytestmark = [pytest.mark.services, pytest.mark.slow]

TINY = ["--model.backbone", "resnet10t", "--model.shared_trunk", "true", "--model.small_input_stem", "false",
        "--model.embed_dim", "16", "--model.proj_hidden_dim", "16", "--model.proj_dim", "8",
        "--pretrain.batch_size", "4", "--pretrain.epochs", "1", "--pretrain.checkpoint_every", "100",
        "--evaluate.train_epochs", "1", "--evaluate.probe_epochs", "50", "--evaluate.bootstrap", "20",
        "--ray.num_cpus", "2"]


def test_demo_on_the_platform_and_its_mlflow_ui(platform, monkeypatch, capsys):
    require_ray()
    require_chromium()
    import mlflow

    env = platform.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    root = "s3://jointssl/test-demo"
    assert main(["demo", "--config", "configs/test.yaml", "--storage.root", root, "--run.name", "platform-demo",
                 *TINY]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.rindex("\n{\n") + 1:])
    assert "| AUPRC |" in out and "Overall" in out  # the results table is printed
    assert summary["tracking_uri"] == env["MLFLOW_TRACKING_URI"]  # the MLflow server, not sqlite
    assert summary["evaluate"]["out"] == f"{root}/evaluation/platform-demo"

    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("jointssl")
    runs = client.search_runs([experiment.experiment_id], "attributes.run_name = 'platform-demo-evaluate'")
    assert runs and runs[0].data.tags["jointssl.pretrain_run_id"] == summary["pretrain"]["mlflow_run_id"]
    assert {a.path for a in client.list_artifacts(runs[0].info.run_id, "evaluation")} >= {
        "evaluation/results.md", "evaluation/pr_curves.png", "evaluation/cooccurrence.png"}
    champion = client.get_model_version_by_alias("methane-classifier", "champion")

    ui = env["MLFLOW_TRACKING_URI"].rstrip("/")
    runs_page = dump_dom(f"{ui}/#/experiments/{experiment.experiment_id}/runs")
    assert "platform-demo-evaluate" in runs_page and "platform-demo" in runs_page
    model_page = dump_dom(f"{ui}/#/models/methane-classifier")
    assert "methane-classifier" in model_page and "champion" in model_page
    version_page = dump_dom(f"{ui}/#/models/methane-classifier/versions/{champion.version}")
    assert "champion" in version_page
