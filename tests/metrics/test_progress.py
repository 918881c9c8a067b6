"""Tests for bert_jax.metrics.progress with a fake clock: rate, ETA, throttling, redraw."""

import io

import numpy as np
import pytest

from bert_jax.metrics.progress import ProgressBar, format_duration


class FakeClock:
    def __init__(self, t=0.0):
        self.t = t

    def __call__(self):
        return self.t


class TtyStream(io.StringIO):
    def isatty(self):
        return True


def test_format_duration():
    assert format_duration(0) == "0:00:00"
    assert format_duration(59.6) == "0:01:00"
    assert format_duration(3725) == "1:02:05"
    assert format_duration(90000) == "25:00:00"


def test_rate_and_eta_exclude_compilation():
    clock, out = FakeClock(), io.StringIO()
    bar = ProgressBar(100, tokens_per_step=1000, stream=out, clock=clock, min_interval_s=0)
    clock.t = 50.0  # The first step includes 50 s of compilation...
    bar.update(1)
    assert bar.steps_per_sec is None and bar.eta_seconds is None
    for step in range(2, 11):
        clock.t += 0.5  # ...and then steps take 0.5 s.
        bar.update(step, loss=np.float32(2.345678), learning_rate=1e-4)
    assert bar.steps_per_sec == pytest.approx(2.0)
    assert bar.eta_seconds == pytest.approx(45.0)
    line = out.getvalue().splitlines()[-1]
    for piece in ("10/100", "10.0%", "2 it/s", "2k tok/s", "ETA 0:00:45", "loss=2.346",
                  "learning_rate=0.0001"):
        assert piece in line, (piece, line)
    assert "? it/s" in out.getvalue().splitlines()[0]


def test_rate_follows_a_sliding_window():
    clock = FakeClock()
    bar = ProgressBar(1000, stream=io.StringIO(), clock=clock, window=5)
    for step in range(1, 21):
        clock.t += 0.1
        bar.update(step)
    assert bar.steps_per_sec == pytest.approx(10.0)
    for step in range(21, 26):
        clock.t += 2.0  # The machine slowed down: only the recent updates count.
        bar.update(step)
    assert bar.steps_per_sec == pytest.approx(0.5)


def test_resumed_run_counts_from_initial_step():
    clock = FakeClock()
    bar = ProgressBar(1000, initial_step=900, stream=io.StringIO(), clock=clock)
    for step in range(910, 960, 10):
        clock.t += 1.0
        bar.update(step)
    assert bar.steps_per_sec == pytest.approx(10.0)
    assert bar.eta_seconds == pytest.approx(5.0)


def test_non_tty_prints_whole_lines_throttled():
    clock, out = FakeClock(), io.StringIO()
    bar = ProgressBar(60, stream=out, clock=clock, min_interval_s=10)
    for step in range(1, 31):
        clock.t += 1.0
        bar.update(step, loss=1.0)
    # The first update, then one every 10 s: steps 1, 11, 21.
    assert [l.split("/")[0].strip() for l in out.getvalue().splitlines()] == ["1", "11", "21"]
    clock.t += 1.0
    bar.update(31, force=True)
    for step in range(32, 61):
        clock.t += 0.1
        bar.update(step)  # The last step prints even though 10 s have not passed.
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert [l.split("/")[0].strip() for l in lines[:-1]] == ["1", "11", "21", "31", "60"]
    assert lines[-1].startswith("done: 60 steps in 0:00:34")


def test_close_shows_a_throttled_final_state():
    clock, out = FakeClock(), io.StringIO()
    bar = ProgressBar(100, stream=out, clock=clock)
    for step in range(1, 6):
        clock.t += 1.0
        bar.update(step)
    bar.close()
    bar.close()  # Idempotent.
    lines = out.getvalue().splitlines()
    assert [l.split("/")[0].strip() for l in lines[:-1]] == ["1", "5"]
    assert lines[-1] == "done: 5 steps in 0:00:05 (1 it/s)"


def test_tty_redraws_one_line():
    clock, out = FakeClock(), TtyStream()
    bar = ProgressBar(10, stream=out, clock=clock, tokens_per_step=2_000_000)
    for step in range(1, 11):
        clock.t += 1.0
        bar.update(step, loss=10.0 / step)
    assert "\n" not in out.getvalue()
    assert out.getvalue().count("\r") == 10
    bar.close()
    last_line, summary = out.getvalue().split("\r")[-1].split("\n")[:2]
    assert last_line.startswith("10/10 100.0%") and "2M tok/s" in last_line
    assert summary == "done: 10 steps in 0:00:10 (1 it/s, 2M tok/s)"


def test_disabled_bar_prints_nothing():
    out = io.StringIO()
    with ProgressBar(10, stream=out, enabled=False) as bar:
        bar.update(5, loss=1.0)
    assert out.getvalue() == ""
