"""Pre-training as a user runs it on the platform: ``ray job submit`` of jobs/pretrain.py to the Ray
head, chips and checkpoints on the SeaweedFS S3, tracking on the MLflow server; then the MLflow UI
in headless Chromium shows the run and the registered encoder. One job serves every test here."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from jointssl.cli import main
from tests.conftest import require_ray
from tests.support.browser import dump_dom, require_chromium
from tests.train.test_pretrain_ray import TINY

pytestmark = [pytest.mark.slow, pytest.mark.services]

REPO = Path(__file__).resolve().parents[2]
RUNTIME_ENV = REPO / "infra" / "ray" / "runtime-env.yaml"
EXCLUDES = [".git/", ".venv/", ".jointssl/", ".pytest_cache/", "mlruns/", "**/__pycache__/", "tests/", "docs/"]
"""Used when infra/ray/runtime-env.yaml is absent."""
JOB_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "MLFLOW_TRACKING_URI")
"""What the index step in this process needs to write to the platform's S3."""


@dataclass(frozen=True)
class SubmittedJob:
    name: str
    """run.name: the MLflow run name and the Ray Train run (checkpoint folder)."""
    experiment: str
    model: str
    """The registered encoder's name (each name unique to this job, none a part of another)."""
    root: str
    summary: dict
    output: str
    status: str
    tracking_uri: str


def runtime_env_args() -> list[str]:
    """The repository's runtime_env for jobs (working-dir excludes only: services and credentials come
    from the cluster's environment, here the platform's Ray head), or the same excludes inline."""
    if RUNTIME_ENV.is_file():
        return ["--runtime-env", str(RUNTIME_ENV.relative_to(REPO))]
    return ["--runtime-env-json", json.dumps({"excludes": EXCLUDES})]


def client_env(platform_env: dict[str, str]) -> dict[str, str]:
    """This process's environment with the platform's, as ``eval "$(jointssl platform env)"`` gives."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_", "MLFLOW_", "JOINTSSL_"))}
    return {**env, **platform_env}


@pytest.fixture(scope="module")
def submitted_job(platform, test_world) -> SubmittedJob:
    require_ray()
    env = platform.env()
    name, experiment, model = (f"{kind}-{uuid.uuid4().hex[:8]}" for kind in ("pretrain-job", "experiment", "encoder"))
    root = f"s3://jointssl/tests/{name}"
    # 1. the index of the session's test world, written to the platform's S3 (searched through an
    # embedded STAC API: pgstac stays untouched). The world's COGs stay on local disk (this machine is
    # the whole cluster): writing the 40-site world to SeaweedFS takes ~90 s against ~11 s locally, and
    # tests/data covers chips read back from S3.
    common = ["--config", "configs/test.yaml", "--storage.root", root, *test_world.args(with_index=False)]
    with pytest.MonkeyPatch.context() as patch:
        for key in JOB_ENV:
            patch.setenv(key, env[key])
        patch.delenv("JOINTSSL_STAC_URL", raising=False)
        assert main(["index", *common]) == 0
    # 2. the job, as the README shows it: ray job submit --working-dir . -- python jobs/pretrain.py ...
    ray = os.path.join(os.path.dirname(sys.executable), "ray")
    argv = [ray, "job", "submit", "--working-dir", ".", *runtime_env_args(), "--",
            sys.executable, "jobs/pretrain.py", *common, "--run.name", name, "--tracking.experiment", experiment,
            "--pretrain.register_model", model,
            *TINY, "--pretrain.epochs", "1", "--chips.cache", "always"]
    done = subprocess.run(argv, env=client_env(env), cwd=REPO, capture_output=True, text=True, timeout=480)
    output = done.stdout + done.stderr
    sys.__stdout__.write(output[-4000:])
    assert done.returncode == 0, output[-4000:]
    job_id = re.search(r"Job '(raysubmit_\w+)' submitted successfully", output).group(1)
    # asked in a child process: a process that has talked to a token-authenticated cluster keeps that
    # auth mode, which would break later tests that start a local Ray in the pytest process
    status = subprocess.run([sys.executable, "-c", "import sys; from ray.job_submission import JobSubmissionClient; "
                             "print(JobSubmissionClient().get_job_status(sys.argv[1]).value)", job_id],
                            env=client_env(env), capture_output=True, text=True, timeout=120).stdout.strip()
    summary, _ = json.JSONDecoder().raw_decode(output[output.index("{\n"):])
    return SubmittedJob(name, experiment, model, root, summary, output, status, env["MLFLOW_TRACKING_URI"])


def test_ray_job_submit_trains_on_s3_and_tracks_on_the_mlflow_server(submitted_job, platform):
    import mlflow
    import s3fs

    job = submitted_job
    assert job.status == "SUCCEEDED", job.status
    assert job.summary["run"] == job.name and job.summary["tracking_uri"] == job.tracking_uri
    assert f"jointssl/tests/{job.name}/checkpoints/{job.name}/checkpoint_" in job.summary["checkpoint"]  # on S3
    assert "[pretrain] step 1/" in job.output and "[pretrain] epoch 1/1 done" in job.output  # progress in the job log

    client = mlflow.MlflowClient(job.tracking_uri)
    run = client.get_run(job.summary["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == job.name
    assert {"loss", "lr", "samples_per_s", "probe_macro_auprc"} <= set(run.data.metrics)
    assert [a.path for a in client.list_artifacts(run.info.run_id, "embeddings")] == ["embeddings/epoch_001.png"]
    assert client.get_model_version_by_alias(job.model, "current").run_id == run.info.run_id

    env = platform.env()
    fs = s3fs.S3FileSystem(key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"],
                           endpoint_url=env["AWS_ENDPOINT_URL"])
    assert fs.glob(f"jointssl/tests/{job.name}/checkpoints/{job.name}/checkpoint_*/state.pt")
    # chips.cache always: the one epoch wrote the chip cache to S3 and committed it (manifest written last)
    cache = job.summary["chip_cache"]
    assert cache.startswith(f"s3://jointssl/tests/{job.name}/chip-cache/")
    assert f"chip cache committed at {cache}" in job.output
    folder = cache.removeprefix("s3://")
    assert fs.exists(f"{folder}/manifest.json") and fs.glob(f"{folder}/parts/part-*.parquet")


def test_mlflow_ui_shows_the_run_and_the_registered_encoder(submitted_job, platform):
    require_chromium()
    import mlflow

    job = submitted_job
    experiment = mlflow.MlflowClient(job.tracking_uri).get_experiment_by_name(job.experiment)
    runs_page = dump_dom(f"{job.tracking_uri}/#/experiments/{experiment.experiment_id}/runs")
    assert job.name in runs_page, runs_page[-3000:]
    model_page = dump_dom(f"{job.tracking_uri}/#/models/{job.model}")
    assert job.model in model_page and "Version 1" in model_page, model_page[-3000:]
