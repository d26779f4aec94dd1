"""End to end: (world -> index, shared) -> ``jointssl pretrain`` on 2 Ray Train CPU workers, MLflow in sqlite,
then the same command again resumes the run (same MLflow run, steps continue)."""

from __future__ import annotations

import json
import sys

import pytest

from jointssl.cli import main
from tests.conftest import require_ray

pytestmark = [pytest.mark.slow, pytest.mark.services]

TINY = ["--model.backbone", "resnet10t", "--model.shared_trunk", "true", "--model.small_input_max_px", "64",
        "--model.embed_dim", "32", "--model.proj_hidden_dim", "32", "--model.proj_dim", "16",
        "--pretrain.batch_size", "4", "--pretrain.num_workers", "2", "--pretrain.checkpoint_every", "2",
        "--ray.num_cpus", "2"]


def test_pretrain_checkpoints_tracks_and_resumes(test_world, tmp_path, capsys, monkeypatch):
    require_ray()
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    common = ["--config", "configs/test.yaml", "--storage.root", str(tmp_path), *test_world.args()]
    capsys.readouterr()
    assert main(["pretrain", *common, *TINY, "--pretrain.epochs", "1"]) == 0
    out = capsys.readouterr().out
    first = json.loads(out[out.index("{\n"):])
    assert first["steps"] >= 2 and first["epochs"] == 1 and first["resumed_from_step"] is None
    # rank 0's progress reaches the driver's console: step lines, then the epoch summary with the probe
    assert f"[pretrain] step 1/{first['steps']}" in out and "samples/s  ETA" in out
    assert "[pretrain] epoch 1/1 done" in out and "k-NN probe macro AUPRC" in out
    assert out.count("k-NN probe macro AUPRC at random init") == 1  # the driver's, while the workers start
    saved = list((tmp_path / "checkpoints" / "test").glob("checkpoint_*/state.pt"))
    assert saved and all(p.parent.stat().st_mode & 0o777 == 0o755 for p in saved)  # moved into storage, not copied
    assert not list((tmp_path / "checkpoints" / "test").glob(".staging-*"))  # nothing left where they were written

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    run = client.get_run(first["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.params["model.backbone"] == "resnet10t"
    assert {"loss", "lr", "samples_per_s", "probe_macro_auprc"} <= set(run.data.metrics)
    assert client.get_model_version_by_alias("jointssl-encoder", "current").run_id == run.info.run_id
    maps = [a.path for a in client.list_artifacts(run.info.run_id, "embeddings")]
    assert maps == ["embeddings/epoch_001.png"]
    assert list((tmp_path / "mlartifacts").rglob("epoch_001.png"))  # artifacts beside the database

    assert main(["pretrain", *common, *TINY, "--pretrain.epochs", "2"]) == 0
    out = capsys.readouterr().out
    second = json.loads(out[out.index("{\n"):])
    assert f"[pretrain] resuming from checkpoint at step {first['steps']}" in out
    assert "at random init" not in out  # a resumed run's encoder is not untrained
    sys.__stdout__.write(out)  # the console a user sees, for the test log
    assert second["mlflow_run_id"] == first["mlflow_run_id"]
    assert second["resumed_from_step"] == first["steps"] and second["steps"] == 2 * first["steps"]
    steps = [m.step for m in client.get_metric_history(first["mlflow_run_id"], "loss")]
    assert sorted(steps) == list(range(1, second["steps"] + 1))  # no step trained twice
    probes = [m.step for m in client.get_metric_history(first["mlflow_run_id"], "probe_macro_auprc")]
    assert sorted(probes) == [0, first["steps"], second["steps"]]  # untrained, then after each epoch
