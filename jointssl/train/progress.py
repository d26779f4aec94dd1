"""Console progress of a pre-training run: step/total, loss, samples/s and ETA, every few steps.

Rank 0 formats the lines (:class:`ProgressMeter`, plain Python, tested without Ray). The job's
console belongs to the driver, and Ray workers' stdout does not reach it (``log_to_driver=False``
keeps Ray's own chatter off the console), so rank 0 sends its lines through a Ray queue that the
driver prints from (:class:`ConsoleRelay`); the same lines then land in a ``ray job`` log too.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from typing import Any

log = logging.getLogger(__name__)

PREFIX = "[pretrain]"


def format_duration(seconds: float) -> str:
    """3725 -> '1:02:05'; unknown -> '?'."""
    if seconds != seconds or seconds == float("inf") or seconds < 0:
        return "?"
    return str(timedelta(seconds=round(seconds)))


class ProgressMeter:
    """Measures the step rate over a sliding window and says when a progress line is due.

    Args:
        total_steps: optimizer steps of the whole run.
        samples_per_step: global batch (per-worker batch x workers).
        every: a line every this many steps (and at the first step after a (re)start).
        window: steps the rate is measured over (recent speed, not the whole run's average, so that
            the slow first steps of a pipeline warming up do not skew the ETA for long).
        clock: seconds (tests pass a fake one).
    """

    def __init__(self, total_steps: int, samples_per_step: int, every: int = 10, window: int = 20,
                 clock: Callable[[], float] = time.perf_counter):
        self.total_steps = total_steps
        self.samples_per_step = samples_per_step
        self.every = max(1, every)
        self.clock = clock
        self._marks: deque[tuple[float, int]] = deque(maxlen=window + 1)  # (time, step)
        self._emitted = False

    def start(self, step: int) -> None:
        """The run is at ``step`` now (0, or where a resumed run continues)."""
        self._marks.append((self.clock(), step))

    def steps_per_s(self) -> float:
        if len(self._marks) < 2:
            return float("nan")
        (t0, s0), (t1, s1) = self._marks[0], self._marks[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else float("nan")

    def samples_per_s(self) -> float:
        return self.steps_per_s() * self.samples_per_step

    def eta_s(self, step: int) -> float:
        rate = self.steps_per_s()
        return (self.total_steps - step) / rate if rate > 0 else float("nan")

    def update(self, step: int, loss: float, lr: float, epoch: int, epochs: int) -> str | None:
        """Record that ``step`` steps are done; the progress line if one is due, else None."""
        if not self._marks:
            self.start(step - 1)
        self._marks.append((self.clock(), step))
        due = not self._emitted or step % self.every == 0 or step == self.total_steps
        if not due:
            return None
        self._emitted = True
        rate = self.samples_per_s()
        width = len(str(self.total_steps))
        return (f"{PREFIX} step {step:>{width}}/{self.total_steps} ({100 * step / self.total_steps:3.0f}%) "
                f"epoch {epoch + 1}/{epochs}  loss {loss:.4f}  lr {lr:.2e}  "
                f"{rate:.1f} samples/s  ETA {format_duration(self.eta_s(step))}")


def epoch_summary(epoch: int, epochs: int, steps: int, seconds: float, mean_loss: float,
                  samples_per_s: float, probe: float | None, skipped: str = "") -> str:
    """One line closing an epoch; ``skipped``: the chips not read, by modality and reason, when any."""
    probe_text = f"  k-NN probe macro AUPRC {probe:.3f}" if probe is not None else ""
    skipped_text = f"; chips not read: {skipped}" if skipped else ""
    return (f"{PREFIX} epoch {epoch + 1}/{epochs} done: {steps} steps in {format_duration(seconds)}, "
            f"mean loss {mean_loss:.4f}, {samples_per_s:.1f} samples/s{probe_text}{skipped_text}")


def emit(channel: Any, line: str) -> None:
    """Rank 0: log ``line`` in the worker's log and send it to the driver's console (never blocks)."""
    log.info(line)
    if channel is None:
        return
    with contextlib.suppress(Exception):  # queue full or the driver gone: progress is best effort
        channel.put_nowait(line)


class ConsoleRelay:
    """Driver side: a Ray queue (an actor holding no CPU, on the driver's node) whose lines a thread prints while
    training runs.

    ``with ConsoleRelay() as relay: ... train_loop_config={"progress": relay.queue}``.
    """

    def __init__(self, printer: Callable[[str], None] | None = None, maxsize: int = 1000):
        import ray
        from ray.util.queue import Queue
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # on the driver's node: a queue elsewhere dies with its node (a lost worker node), and every progress
        # line after it (the resume line included) with it
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self.queue = Queue(maxsize=maxsize, actor_options={"num_cpus": 0, "scheduling_strategy": here})
        self.printer = printer or (lambda line: print(line, flush=True))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="pretrain-progress", daemon=True)

    def __enter__(self) -> ConsoleRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._drain()
        self.queue.shutdown(force=True)

    def _pump(self) -> None:
        from ray.util.queue import Empty

        while not self._stop.is_set():
            try:
                self.printer(self.queue.get(block=True, timeout=0.5))
            except Empty:
                continue
            except Exception:  # the queue actor died: stop relaying, training goes on
                log.warning("progress relay stopped", exc_info=True)
                return

    def _drain(self) -> None:
        try:
            while not self.queue.empty():
                self.printer(self.queue.get_nowait())
        except Exception:  #
            pass
