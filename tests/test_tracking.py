"""jointssl.tracking against a real `mlflow server` that is killed mid-logging and restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from jointssl.platform.process import free_port

pytestmark = pytest.mark.services


class Server:
    """`mlflow server` on 127.0.0.1 with a sqlite store under ``root``: start, kill (by PID), start again."""

    def __init__(self, root: Path):
        self.root, self.port = root, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        mlflow = Path(sys.executable).with_name("mlflow")
        self.proc = subprocess.Popen(
            [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{self.root}/mlflow.db", "--serve-artifacts",
             "--artifacts-destination", str(self.root / "artifacts")],
            stdout=open(self.root / "server.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True,  # noqa: SIM115 - the server process holds it
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=1)
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"mlflow server did not start: {(self.root / 'server.log').read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the server and its uvicorn worker, by the group we started
            self.proc.wait()


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the logger's own retries, seen quickly
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    s = Server(tmp_path)
    s.start()
    yield s
    s.kill()


@pytest.mark.faults(fault="MLflow tracking server killed (SIGKILL) mid-run while metrics and an artifact are logged, "
                          "then restarted",
                    expected="no exception reaches the job; points logged while it is down are sent when it is "
                             "back (or counted lost, recorded in the run)")
def test_metrics_logged_while_the_server_is_down_arrive_when_it_is_back(server, tmp_path, record_property):
    import mlflow

    from jointssl.tracking import MetricLogger

    client = mlflow.MlflowClient(server.url)
    run_id = client.create_run(client.create_experiment("outage")).info.run_id
    logger = MetricLogger(server.url, run_id, retry_s=0.2, max_retry_s=1.0)
    note = tmp_path / "note.txt"
    note.write_text("epoch map")
    for step in range(10):
        logger.log({"loss": 1.0 / (step + 1)}, step)
    assert logger.flush(30)
    server.kill()
    started = time.monotonic()
    for step in range(10, 30):  # the job goes on: each call returns at once
        logger.log({"loss": 1.0 / (step + 1)}, step)
    logger.log_artifact(str(note), "embeddings")
    note.unlink()  # the caller's temporary file is gone, as in the worker
    blocked = time.monotonic() - started
    time.sleep(2)
    held = len(logger._points)
    server.start()
    down = time.monotonic() - started
    stats = logger.close(timeout=60)
    history = client.get_metric_history(run_id, "loss")
    assert sorted(m.step for m in history) == list(range(30))
    assert stats.lost == 0 and stats.delayed >= 20 and stats.failures >= 1 and held == 20
    assert client.get_metric_history(run_id, "tracking_points_delayed")[-1].value >= 20
    assert [a.path for a in client.list_artifacts(run_id, "embeddings")] == ["embeddings/note.txt"]
    assert blocked < 1.0
    record_property("observed", f"server down {down:.1f} s; 20 points and 1 artifact held, {stats.failures} failed "
                                f"sends, all sent on its return (steps 0-29 in the run); logging calls blocked "
                                f"{blocked * 1000:.0f} ms in all")
    record_property("data_lost", f"{stats.lost} points")


def test_points_beyond_the_buffer_and_left_at_close_are_counted_lost(server):
    import mlflow

    from jointssl.tracking import MetricLogger

    client = mlflow.MlflowClient(server.url)
    run_id = client.create_run(client.create_experiment("lost")).info.run_id
    server.kill()
    logger = MetricLogger(server.url, run_id, max_points=5, retry_s=0.1, max_retry_s=0.2)
    for step in range(8):
        logger.log({"loss": float(step)}, step)
    stats = logger.close(timeout=1)
    assert (stats.lost, stats.sent) == (8, 0)  # 3 over the buffer, 5 still held at close


def test_record_gives_up_with_a_warning_not_an_exception(caplog):
    from jointssl.tracking import record

    def down() -> None:
        raise ConnectionError("refused")

    assert record("the summary", down, attempts=2, wait_s=0.01) is False
    assert "the summary not recorded after 2 attempts: refused" in caplog.text
    assert record("the summary", lambda: None) is True
