"""ManagedProcess: health waits and their timeouts, stopping by PID (helpers included), port checks."""

from __future__ import annotations

import signal
import socket
import sys
import time

import pytest

from jointssl.errors import JointsslError
from jointssl.platform.process import (
    ManagedProcess,
    descendants,
    free_port,
    is_alive,
    port_in_use,
    start_time,
    stop_pids,
)


@pytest.fixture
def managed(tmp_path):
    process = ManagedProcess("toy", tmp_path)
    yield process
    process.stop(timeout=2.0)  # never leave a test's process behind


def test_wait_healthy_returns_once_the_check_passes(managed):
    managed.start([sys.executable, "-c", "import time; time.sleep(30)"])
    calls = []

    def check() -> bool:
        calls.append(1)
        return len(calls) >= 3

    assert managed.wait_healthy(check, timeout=5.0, interval=0.01) < 5.0
    assert len(calls) == 3


def test_wait_healthy_timeout_reports_the_log_tail(managed):
    managed.start(["sh", "-c", "echo booting the toy server; sleep 30"])
    time.sleep(0.2)
    with pytest.raises(JointsslError) as info:
        managed.wait_healthy(lambda: False, timeout=0.5, interval=0.05)
    assert "did not become healthy within" in str(info.value)
    assert "booting the toy server" in str(info.value)


def test_wait_healthy_notices_an_exited_process(managed):
    managed.start(["sh", "-c", "echo cannot bind; exit 3"])
    with pytest.raises(JointsslError) as info:
        managed.wait_healthy(lambda: False, timeout=10.0, interval=0.05)
    assert "exited during start-up" in str(info.value) and "cannot bind" in str(info.value)


def test_stop_ends_the_process_and_its_helpers_by_pid(managed):
    record = managed.start(["sh", "-c", "sleep 300 & sleep 300 & wait"])
    deadline = time.monotonic() + 5
    while len(descendants(record.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    managed.remember_helpers()
    pids = managed.recorded_pids()
    assert len(pids) == 3
    assert managed.stop(timeout=5.0) == []
    assert not any(is_alive(p, s) for p, s in pids.items())
    assert not managed.pid_file.exists()


def test_stop_escalates_to_sigkill(tmp_path):
    process = ManagedProcess("stubborn", tmp_path)
    code = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(300)")
    record = process.start([sys.executable, "-c", code])
    process.wait_healthy(lambda: "ready" in process.log_file.read_text(), timeout=10.0, interval=0.05)
    began = time.monotonic()
    assert process.stop(sig=signal.SIGTERM, timeout=0.5) == []
    assert time.monotonic() - began < 5.0
    assert not is_alive(record.pid, record.started)


def test_stale_pid_file_is_not_running(managed):
    record = managed.start(["true"])
    deadline = time.monotonic() + 5
    while is_alive(record.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert managed.running() is None
    assert not managed.pid_file.exists()


def test_a_recycled_pid_is_never_signalled():
    """A PID whose start time differs from the recorded one belongs to someone else now."""
    import subprocess

    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        started = start_time(sleeper.pid)
        assert is_alive(sleeper.pid, started)
        assert not is_alive(sleeper.pid, started + 1)
        stop_pids({sleeper.pid: started + 1}, timeout=0.2)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_port_in_use_detects_a_listener():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert port_in_use(port)
    assert not port_in_use(free_port())
