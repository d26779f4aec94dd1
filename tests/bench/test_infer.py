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
