"""The inference benchmark's memory sampler: peaks of the process tree, and its own CPU kept apart."""

from __future__ import annotations

import hashlib
import os
import time

from jointssl.bench import infer
from jointssl.bench.infer import PeakMemory, _cpu_s


def test_the_sampler_s_cpu_is_reported_apart_not_as_the_driver_s(monkeypatch):
    real = infer._rollup_mib

    def costly(pid):  # as smaps_rollup of a process with GiBs mapped costs
        spin = time.thread_time() + 0.01
        while time.thread_time() < spin:
            pass
        return real(pid)

    monkeypatch.setattr(infer, "_rollup_mib", costly)
    # the driver alone: under pytest the tree holds the session's servers, and a sample of 15 processes
    # (150 ms here) would leave too few samples to bracket the driver's work
    monkeypatch.setattr(infer, "_tree", lambda root: [root])
    before = _cpu_s(os.getpid())
    memory = PeakMemory(every_s=0.01)
    memory.start()
    data = bytes(8 << 20)
    deadline = time.monotonic() + 20
    while memory.sampler_cpu_s < 0.15 and time.monotonic() < deadline:
        hashlib.sha256(data).digest()  # the driver's own work (without the GIL, so the sampler samples)
    memory.stop()
    process = _cpu_s(os.getpid()) - before
    cpu = memory.cpu_s
    assert memory.tree_mib > 0 and memory.driver_mib > 0 and "driver" in memory.kinds
    assert cpu["sampler"] >= 0.15
    # the process's CPU is the driver's plus the sampler's, not the sampler's counted twice
    # (clock ticks: 10 ms steps; work before the first and after the last sample is outside the span)
    assert process - 0.1 <= cpu["driver"] + cpu["sampler"] <= process + 0.03


def test_the_throughput_run_s_sampler_reads_cpu_times_only(monkeypatch):
    def forbidden(pid):
        raise AssertionError("PSS read in a CPU-only run")

    monkeypatch.setattr(infer, "_rollup_mib", forbidden)
    memory = PeakMemory(every_s=0.01, pss=False)
    memory.start()
    data = bytes(8 << 20)
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        hashlib.sha256(data).digest()
    memory.stop()
    assert memory.cpu_s["driver"] > 0.1 and memory.tree_mib == 0.0 and memory.driver_mib > 0


def test_processes_that_exit_between_samples_are_counted_whole():
    """Children that live less than a sample interval, and one sampled once, count all their CPU: from zero
    (they started after the sampler) to their exit (read off the parent's reaped-children time)."""
    import subprocess
    import sys

    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < {}: pass"
    sampler = PeakMemory(every_s=1.0, pss=False)
    sampler.start()
    for _ in range(3):
        subprocess.run([sys.executable, "-S", "-c", burn.format(0.3)], check=True)  # between two samples
    subprocess.run([sys.executable, "-S", "-c", burn.format(1.5)], check=True)  # sampled once or twice
    sampler.stop()
    cpu = sampler.cpu_s
    total = sum(v for k, v in cpu.items() if k != "sampler")
    assert 2.4 - 0.05 <= total <= 2.4 + 0.6, cpu  # 3 x 0.3 + 1.5 s burnt, plus 4 interpreters' start-up
    assert cpu.get(infer.EXITED, 0.0) > 0.3, cpu  # the short ones were never (or once) sampled
