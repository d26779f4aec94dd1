"""End to end: (world -> index, shared) -> ``jointssl pretrain`` on 2 Ray Train CPU workers, MLflow in sqlite.

Run A (2 epochs, uninterrupted): epoch 1 reads the COGs and writes the chip cache, epoch 2 streams it; the
same command with one more epoch resumes it (same MLflow run, steps continue). Run B (a new run name, the
same index) streams the cache from epoch 1, and one of its workers is killed (SIGKILL) mid-epoch; Ray Train
restarts the workers from the last checkpoint. Every worker records the site ids of each step it trains
(``pretrain.record_sites``): each epoch of B must train exactly the multiset of sites A trained, and every
step the same loss (same data order, same seed: the cache and the restart change no arithmetic).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from jointssl.cli import main
from tests.conftest import require_ray

pytestmark = [pytest.mark.slow, pytest.mark.services]

TINY = ["--model.backbone", "resnet10t", "--model.shared_trunk", "true", "--model.small_input_max_px", "64",
        "--model.embed_dim", "32", "--model.proj_hidden_dim", "32", "--model.proj_dim", "16",
        "--pretrain.batch_size", "4", "--pretrain.num_workers", "2", "--pretrain.checkpoint_every", "2",
        "--ray.num_cpus", "2"]
ARGS = [*TINY, "--pretrain.batch_size", "2", "--pretrain.checkpoint_every", "2", "--pretrain.max_failures", "1",
        "--pretrain.record_sites", "true", "--pretrain.probe_k", "3"]
STEPS_PER_EPOCH = (26 // 2) // 2  # 26 unlabelled + train sites in the test world, 2 workers x batch 2


def trained(run_folder: Path, epoch: int) -> Counter[str]:
    """Site ids trained in ``epoch`` (1-based), from the last record of every (step, rank)."""
    files = sorted((run_folder / "trained_sites" / f"epoch_{epoch:03d}").glob("step_*_rank_*.json"))
    assert len(files) == 2 * STEPS_PER_EPOCH, [f.name for f in files]
    return Counter(site for f in files for site in json.loads(f.read_text())["sites"])


def kill_rank_1_mid_epoch(run_folder: Path, report: dict, stop: threading.Event) -> None:
    """SIGKILL rank 1 as soon as it has recorded step 3 of epoch 1 (a checkpoint is due every 2 steps)."""
    record = run_folder / "trained_sites" / "epoch_001" / "step_000003_rank_1.json"
    deadline = time.monotonic() + 600
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            pid = json.loads(record.read_text())["pid"]
        except (FileNotFoundError, ValueError, KeyError):
            time.sleep(0.02)
            continue
        os.kill(pid, signal.SIGKILL)
        report["pid"] = pid
        return


def pretrain(args: list[str], capsys) -> tuple[str, dict]:
    """``jointssl pretrain ARGS`` in this process: (what it printed, its summary)."""
    assert main(["pretrain", *args]) == 0
    out = capsys.readouterr().out
    sys.__stdout__.write(out)  # the console a user sees, for the test log
    return out, json.loads(out[out.index("{\n"):])


def check_first_run(out: str, whole: dict, folder: Path, uri: str) -> None:
    """Run A: progress on the driver's console, checkpoints moved into storage, the run tracked and registered."""
    import mlflow

    steps = 2 * STEPS_PER_EPOCH
    assert whole["steps"] == steps and whole["epochs"] == 2 and whole["resumed_from_step"] is None
    assert re.search(rf"\[pretrain\] step +1/{steps} ", out) and "samples/s  ETA" in out
    assert "[pretrain] epoch 1/2 reads chips from the COGs, writing the chip cache" in out
    assert f"[pretrain] chip cache committed at {whole['chip_cache']}" in out
    assert f"[pretrain] epoch 2/2 reads chips from the chip cache {whole['chip_cache']}" in out
    assert "[pretrain] epoch 2/2 done" in out and "k-NN probe macro AUPRC" in out
    assert out.count("k-NN probe macro AUPRC at random init") == 1  # the driver's, while the workers start
    saved = list(folder.glob("checkpoint_*/state.pt"))
    assert saved and all(p.parent.stat().st_mode & 0o777 == 0o755 for p in saved)  # moved into storage, not copied
    assert not list(folder.glob(".staging-*"))  # nothing left where they were written

    client = mlflow.MlflowClient(uri)
    run = client.get_run(whole["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.params["model.backbone"] == "resnet10t"
    assert {"loss", "lr", "samples_per_s", "probe_macro_auprc"} <= set(run.data.metrics)
    history = client.get_metric_history(whole["mlflow_run_id"], "chips_from_cache")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == [0.0, 1.0]
    assert client.get_model_version_by_alias("jointssl-encoder", "current").run_id == run.info.run_id
    maps = [a.path for a in client.list_artifacts(run.info.run_id, "embeddings")]
    assert maps == ["embeddings/epoch_001.png", "embeddings/epoch_002.png"]
    assert list((Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").rglob("epoch_001.png"))


def losses(uri: str, run_id: str) -> dict[int, float]:
    import mlflow

    return {m.step: m.value for m in mlflow.MlflowClient(uri).get_metric_history(run_id, "loss")}


def test_a_run_resumes_and_a_killed_run_trains_every_site_once_with_the_same_losses(
        test_world, tmp_path, capsys, monkeypatch):
    require_ray()
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    common = ["--config", "configs/test.yaml", "--storage.root", str(tmp_path), *test_world.args(), *ARGS]
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    checkpoints = tmp_path / "checkpoints"
    capsys.readouterr()
    out, whole = pretrain([*common, "--run.name", "whole", "--pretrain.epochs", "2"], capsys)
    check_first_run(out, whole, checkpoints / "whole", uri)
    a = losses(uri, whole["mlflow_run_id"])  # before the resumed epoch adds steps

    report: dict = {}
    stop = threading.Event()
    killer = threading.Thread(target=kill_rank_1_mid_epoch, args=(checkpoints / "killed", report, stop))
    killer.start()
    try:
        out, killed = pretrain([*common, "--run.name", "killed", "--pretrain.epochs", "2"], capsys)
    finally:
        stop.set()
        killer.join()
    assert "pid" in report, "rank 1 was never killed"
    assert "[pretrain] epoch 1/2 reads chips from the chip cache" in out  # a later run streams the cache
    assert killed["steps"] == 2 * STEPS_PER_EPOCH and killed["chip_cache"] == whole["chip_cache"]
    for epoch in (1, 2):
        assert trained(checkpoints / "killed", epoch) == trained(checkpoints / "whole", epoch)
        assert set(trained(checkpoints / "killed", epoch).values()) == {1}  # each site once
    b = losses(uri, killed["mlflow_run_id"])
    assert sorted(a) == sorted(b) == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    assert b == pytest.approx(a, rel=1e-4)  # COGs vs cache, and across the restart: the same arithmetic

    out, resumed = pretrain([*common, "--run.name", "whole", "--pretrain.epochs", "3"], capsys)
    steps = 2 * STEPS_PER_EPOCH
    assert f"[pretrain] resuming from checkpoint at step {steps}" in out
    assert "at random init" not in out  # a resumed run's encoder is not untrained
    assert resumed["mlflow_run_id"] == whole["mlflow_run_id"]
    assert resumed["resumed_from_step"] == steps and resumed["steps"] == 3 * STEPS_PER_EPOCH
    client = mlflow.MlflowClient(uri)
    history = [m.step for m in client.get_metric_history(whole["mlflow_run_id"], "loss")]
    assert sorted(history) == list(range(1, resumed["steps"] + 1))  # no step trained twice
    probes = [m.step for m in client.get_metric_history(whole["mlflow_run_id"], "probe_macro_auprc")]
    assert sorted(probes) == [0, STEPS_PER_EPOCH, steps, resumed["steps"]]  # untrained, then after each epoch
