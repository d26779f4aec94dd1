"""No secret in any output: index, pretrain, evaluate and infer run as CLI processes on the embedded default
(local storage, sqlite MLflow) with recognisable fake credentials in their environment, and no byte of what
they print, track or write contains one: every stdout/stderr line, every MLflow param, tag, metric key and
artifact of every run (downloaded with the MLflow client), every registered model version's tags, and every
file under storage.root (summaries, JSON, parquet, the MLflow database itself)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_ray
from tests.test_demo import TINY

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
FAKE = {
    "AWS_ACCESS_KEY_ID": "JOINTSSL-FAKE-KEYID-7f3a",
    "AWS_SECRET_ACCESS_KEY": "JOINTSSL-FAKE-SECRET-9c1e",
    "AWS_SESSION_TOKEN": "JOINTSSL-FAKE-SESSION-4b2d",
    "MLFLOW_TRACKING_TOKEN": "JOINTSSL-FAKE-TOKEN-d81c",
    "MLFLOW_TRACKING_PASSWORD": "JOINTSSL-FAKE-MLFLOW-PW-21aa",
    "JOINTSSL_PGSTAC_DSN": "postgresql://jointssl:JOINTSSL-FAKE-PW-5e0f@127.0.0.1:9/pgstac",
    "DATABASE_URL": "postgresql://u:JOINTSSL-FAKE-DBURL-PW-66b1@127.0.0.1:9/db",
}
MARKER = "JOINTSSL-FAKE"
"""Every fake secret holds it (and nothing else the jobs print does)."""


def jointssl(command: str, root: Path, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "jointssl", command, "--config", "configs/test.yaml",
                           "--storage.root", str(root), "--run.name", "secrets", *args],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"jointssl {command}: {(done.stdout + done.stderr)[-3000:]}"
    return done.stdout + done.stderr


@pytest.mark.faults(fault="secrets: fake AWS keys and session token, MLflow token and password, database URLs "
                          "with passwords in the environment of index, pretrain, evaluate and infer",
                    expected="no secret in any log line, MLflow param/tag/metric/artifact, or file under storage.root")
def test_no_secret_reaches_logs_mlflow_or_storage(test_world, tmp_path, record_property):
    require_ray()
    root = tmp_path / "root"
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("AWS_", "RAY_", "MLFLOW_", "JOINTSSL_STAC", "JOINTSSL_PGSTAC", "JOINTSSL_STORAGE"))}
    env = {**clean, **FAKE}
    world = ["--world.out", test_world.world]  # the session's world (made without secrets); the index is this run's
    logs = [jointssl("index", root, *world, env=env)]
    logs.append(jointssl("pretrain", root, *world, *TINY, env=env))
    logs.append(jointssl("evaluate", root, *world, *TINY, env=env))
    logs.append(jointssl("infer", root, *world, "--infer.sites", f"{test_world.world}/sites.parquet", *TINY, env=env))

    hits = [f"log line: {line[:200]}" for text in logs for line in text.splitlines() if MARKER in line]
    hits += [f"MLflow: {where}" for where in mlflow_outputs(root, tmp_path / "artifacts") if MARKER in where]
    hits += [f"file: {path}" for path in root.rglob("*") if path.is_file() and MARKER.encode() in path.read_bytes()]
    hits += [f"artifact: {path}" for path in (tmp_path / "artifacts").rglob("*")
             if path.is_file() and MARKER.encode() in path.read_bytes()]
    files = sum(1 for p in root.rglob("*") if p.is_file())
    lines = sum(len(text.splitlines()) for text in logs)
    record_property("observed", f"{len(hits)} hits in {lines} log lines, the MLflow runs and {files} files")
    record_property("data_lost", "none")
    assert hits == [], "\n".join(hits[:20])
    assert lines > 10 and files > 10  # the search looked at real outputs


def mlflow_outputs(root: Path, artifacts: Path) -> list[str]:
    """Every param, tag and metric key of every run as 'run key=value' lines; artifacts downloaded."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{root}/mlflow.db")
    out: list[str] = []
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments])
    assert {r.info.run_name for r in runs} >= {"secrets"}  # pre-training's run at least
    for run in runs:
        data = run.data
        out += [f"{run.info.run_name} param {k}={v}" for k, v in data.params.items()]
        out += [f"{run.info.run_name} tag {k}={v}" for k, v in data.tags.items()]
        out += [f"{run.info.run_name} metric {k}" for k in data.metrics]
        mlflow.artifacts.download_artifacts(run_id=run.info.run_id, tracking_uri=client.tracking_uri,
                                            dst_path=str(artifacts / run.info.run_id))
    for model in client.search_registered_models():
        for version in client.search_model_versions(f"name='{model.name}'"):
            out += [f"model {model.name}/{version.version} {k}={v}" for k, v in version.tags.items()]
            out.append(f"model {model.name}/{version.version} description={version.description}")
    return out
