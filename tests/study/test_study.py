"""``jointssl study`` end to end through the real CLI: 2 trials on the test world, then a re-run that skips both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_ray

pytestmark = [pytest.mark.slow]

TINY = ["--model.backbone", "resnet10t", "--model.shared_trunk", "true", "--model.small_input_stem", "false",
        "--model.embed_dim", "16", "--model.proj_hidden_dim", "16", "--model.proj_dim", "8",
        "--pretrain.batch_size", "4", "--pretrain.epochs", "1", "--pretrain.checkpoint_every", "100",
        "--evaluate.train_epochs", "1", "--evaluate.probe_epochs", "50", "--evaluate.bootstrap", "20",
        "--evaluate.finetune", "false", "--evaluate.per_modality", "false", "--ray.num_cpus", "2"]
REPO = Path(__file__).resolve().parents[2]


def jointssl(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_", "JOINTSSL_STAC"))}
    return subprocess.run([sys.executable, "-m", "jointssl", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=600)


def test_two_trial_study_then_rerun_skips_both(test_world, tmp_path):
    require_ray()
    import mlflow

    common = ["--config", "configs/test.yaml", "--storage.root", str(tmp_path), "--tracking.uri",
              f"sqlite:///{tmp_path}/mlflow.db", *test_world.args()]
    study = [*common, *TINY, "--study.name", "tiny", "--study.objectives", "[infonce]", "--study.modalities",
             "[[naip, s2], [s2]]", "--study.bootstrap", "50", "--study.concurrency", "2"]
    done = jointssl("study", *study)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    summary = json.loads(done.stdout[done.stdout.rindex("\n{\n") + 1:])
    assert summary["finished"] == 2 and summary["skipped"] == 0 and not summary["failed"]
    folder = tmp_path / "study" / "tiny"
    results = json.loads((folder / "results.json").read_text())
    assert {(c["encoder"], c["sensors"]) for c in results["cells"]} >= {("infonce", "naip+s2"), ("infonce", "s2"),
                                                                        ("random init", "naip+s2")}
    assert {c["question"] for c in results["comparisons"]} == {
        "multi-modal vs best single sensor", "SSL vs random init", "SSL vs supervised (fewest labels)"}
    assert "| infonce |" in (folder / "results.md").read_text() and (folder / "plot.png").stat().st_size > 0

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    parent = summary["mlflow_parent_run_id"]
    experiment = client.get_experiment_by_name("jointssl").experiment_id
    children = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent}'")
    assert sorted(r.info.run_name for r in children) == ["tiny-infonce-naip+s2-s0", "tiny-infonce-s2-s0"]
    grandchildren = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{children[0].info.run_id}'")
    assert len(grandchildren) == 2  # the trial's pre-training and evaluation runs
    assert {a.path for a in client.list_artifacts(parent, "study")} >= {"study/results.md", "study/plot.png"}

    again = jointssl("study", *study)
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    rerun = json.loads(again.stdout[again.stdout.rindex("\n{\n") + 1:])
    assert rerun["skipped"] == 2 and rerun["finished"] == 2 and rerun["mlflow_parent_run_id"] == parent
