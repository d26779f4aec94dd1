"""Console progress: a line every few steps with the measured rate and ETA; the epoch summary."""

from __future__ import annotations

from jointssl.train.progress import ProgressMeter, epoch_summary, format_duration


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lines_every_few_steps_with_rate_and_eta():
    clock = FakeClock()
    meter = ProgressMeter(total_steps=100, samples_per_step=8, every=10, window=5, clock=clock)
    meter.start(0)
    lines = {}
    for step in range(1, 31):
        clock.now += 0.5  # 2 steps/s = 16 samples/s
        line = meter.update(step, loss=1.0 / step, lr=1e-3, epoch=0, epochs=2)
        if line is not None:
            lines[step] = line
    assert sorted(lines) == [1, 10, 20, 30]  # the first step, then every 10: not a flood
    assert "step  30/100 ( 30%)" in lines[30] and "epoch 1/2" in lines[30]
    assert "16.0 samples/s" in lines[30]
    assert "ETA 0:00:35" in lines[30]  # 70 steps left at 2 steps/s
    assert meter.eta_s(30) == 35.0


def test_rate_follows_recent_speed_and_resumed_runs_count_from_their_step():
    clock = FakeClock()
    meter = ProgressMeter(total_steps=50, samples_per_step=4, every=5, window=4, clock=clock)
    meter.start(20)  # resumed at step 20
    clock.now += 30.0  # slow first step (pipeline warm-up)
    meter.update(21, 1.0, 1e-3, 1, 2)
    for step in range(22, 30):
        clock.now += 1.0
        meter.update(step, 1.0, 1e-3, 1, 2)
    assert meter.steps_per_s() == 1.0  # the warm-up step has left the window
    assert meter.update(50, 1.0, 1e-3, 1, 2) is not None  # the last step always prints


def test_epoch_summary_and_durations():
    line = epoch_summary(2, 3, steps=16, seconds=75.4, mean_loss=2.5, samples_per_s=12.3, probe=0.4567)
    assert line == ("[pretrain] epoch 3/3 done: 16 steps in 0:01:15, mean loss 2.5000, 12.3 samples/s"
                    "  k-NN probe macro AUPRC 0.457")
    assert "probe" not in epoch_summary(0, 1, 1, 1.0, 1.0, 1.0, None)
    assert "not read" not in line
    assert epoch_summary(0, 1, 1, 1.0, 1.0, 1.0, None, "s2 no_item 3").endswith("; chips not read: s2 no_item 3")
    assert format_duration(float("nan")) == "?" and format_duration(3725) == "1:02:05"
