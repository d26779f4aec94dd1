"""``jointssl demo`` against the platform's real services (S3, pgstac STAC API, MLflow server, Ray), then
the MLflow UI in headless Chromium shows the evaluation run and the champion classifier."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_ray
from tests.support.browser import dump_dom, require_chromium

pytestmark = [pytest.mark.services, pytest.mark.slow]

TINY = ["--model.backbone", "resnet10t", "--model.shared_trunk", "true", "--model.small_input_stem", "false",
        "--model.embed_dim", "16", "--model.proj_hidden_dim", "16", "--model.proj_dim", "8",
        "--pretrain.batch_size", "4", "--pretrain.epochs", "1", "--pretrain.checkpoint_every", "100",
        "--evaluate.train_epochs", "1", "--evaluate.probe_epochs", "50", "--evaluate.bootstrap", "20",
        "--ray.num_cpus", "2"]


def test_demo_on_the_platform_and_its_mlflow_ui(platform, tmp_path):
    require_ray()
    require_chromium()
    import mlflow

    env = platform.env()
    root = "s3://jointssl/test-demo"
    # as a user runs it after 'eval "$(jointssl platform env)"', in its own process: a process that
    # joined the token-authenticated head keeps that auth mode (later local Rays in pytest would fail).
    # The world's COGs stay on local disk (writing 40 sites to SeaweedFS costs ~90 s; tests/data reads
    # chips back from S3); its catalog goes into pgstac, and everything else lands on S3 and MLflow.
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_", "MLFLOW_", "JOINTSSL_STAC"))}
    done = subprocess.run(
        [sys.executable, "-m", "jointssl", "demo", "--config", "configs/test.yaml", "--storage.root", root,
         "--world.out", str(tmp_path / "world"), "--run.name", "platform-demo", *TINY],
        env={**clean, **env}, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=900)
    out = done.stdout
    assert done.returncode == 0, (out + done.stderr)[-4000:]
    summary = json.loads(out[out.rindex("\n{\n") + 1:])
    assert "| AUPRC |" in out and "Overall" in out  # the results table is printed
    assert summary["tracking_uri"] == env["MLFLOW_TRACKING_URI"]  # the MLflow server, not sqlite
    assert summary["evaluate"]["out"] == f"{root}/evaluation/platform-demo"
    # the payoff: the champion classified an area of the world, with a map, and every stage was timed
    assert summary["infer"]["tiles"] > 0 and summary["infer"]["out"].startswith(f"{root}/inference/platform-demo/")
    assert summary["infer"]["operating_point"] == "f1" and "share" in summary["infer"]["out_of_distribution"]
    assert "detections map" in out and "mlflow" in out.lower()
    assert set(summary["seconds"]) == {"world_s", "index_s", "pretrain_s", "evaluate_s", "infer_s", "total"}

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
