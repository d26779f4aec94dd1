"""Exact resume and the chip cache, end to end on a local Ray: ``jointssl pretrain`` with 2 CPU workers.

Run A (2 epochs, uninterrupted): epoch 1 reads the COGs and writes the chip cache, epoch 2 streams it.
Run B (a new run name, the same index): streams the cache from epoch 1, and one of its workers is killed
(SIGKILL) mid-epoch; Ray Train restarts the workers from the last checkpoint. Every worker records the
site ids of each step it trains (``pretrain.record_sites``): each epoch of B must train exactly the
multiset of sites A trained, and every step the same loss (same data order, same seed: the cache and the
restart change no arithmetic).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from jointssl.cli import main
from tests.conftest import require_ray
from tests.train.test_pretrain_ray import TINY

pytestmark = [pytest.mark.slow, pytest.mark.services]

ARGS = [*TINY, "--pretrain.batch_size", "2", "--pretrain.epochs", "2", "--pretrain.checkpoint_every", "2",
        "--pretrain.max_failures", "1", "--pretrain.record_sites", "true", "--pretrain.probe_k", "3"]
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


def losses(uri: str, run_id: str) -> dict[int, float]:
    import mlflow

    return {m.step: m.value for m in mlflow.MlflowClient(uri).get_metric_history(run_id, "loss")}


def test_a_killed_run_trains_every_site_of_the_epoch_once_and_the_cache_after_epoch_one(
        test_world, tmp_path, capsys, monkeypatch):
    require_ray()
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    common = ["--config", "configs/test.yaml", "--storage.root", str(tmp_path), *test_world.args(), *ARGS]
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    capsys.readouterr()
    assert main(["pretrain", *common, "--run.name", "whole"]) == 0
    out = capsys.readouterr().out
    sys.__stdout__.write(out)
    whole = json.loads(out[out.index("{\n"):])
    assert "[pretrain] epoch 1/2 reads chips from the COGs, writing the chip cache" in out
    assert f"[pretrain] chip cache committed at {whole['chip_cache']}" in out
    assert f"[pretrain] epoch 2/2 reads chips from the chip cache {whole['chip_cache']}" in out
    history = mlflow.MlflowClient(uri).get_metric_history(whole["mlflow_run_id"], "chips_from_cache")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == [0.0, 1.0]

    report: dict = {}
    stop = threading.Event()
    killer = threading.Thread(target=kill_rank_1_mid_epoch, args=(tmp_path / "checkpoints" / "killed", report, stop))
    killer.start()
    try:
        assert main(["pretrain", *common, "--run.name", "killed"]) == 0
    finally:
        stop.set()
        killer.join()
    out = capsys.readouterr().out
    sys.__stdout__.write(out)
    killed = json.loads(out[out.index("{\n"):])
    assert "pid" in report, "rank 1 was never killed"
    assert "[pretrain] epoch 1/2 reads chips from the chip cache" in out  # a later run streams the cache
    assert killed["steps"] == 2 * STEPS_PER_EPOCH and killed["chip_cache"] == whole["chip_cache"]
    for epoch in (1, 2):
        assert trained(tmp_path / "checkpoints" / "killed", epoch) == trained(tmp_path / "checkpoints" / "whole", epoch)
        assert set(trained(tmp_path / "checkpoints" / "killed", epoch).values()) == {1}  # each site once
    a, b = losses(uri, whole["mlflow_run_id"]), losses(uri, killed["mlflow_run_id"])
    assert sorted(a) == sorted(b) == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    assert b == pytest.approx(a, rel=1e-4)  # COGs vs cache, and across the restart: the same arithmetic
