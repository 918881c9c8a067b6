"""A console progress line for training loops: step, rate, tokens/s, ETA and a few scalars.

On a terminal it redraws one line in place with `\\r`; anywhere else (CI, `> log.txt`, a job
scheduler's log) carriage returns would pile up into one enormous line, so it prints a whole
line at most every `min_interval_s` seconds instead, plus on `force=True` and at the end.

The rate is measured over a sliding window of recent updates and never includes the time
before the first update, which in a JAX loop is dominated by compiling the step.
"""

from __future__ import annotations

import collections
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO


def format_duration(seconds: float) -> str:
    """Formats seconds as h:mm:ss (hours grow past 24 rather than wrapping)."""
    total = max(0, int(seconds + 0.5))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _format_number(value: float) -> str:
    """About three significant figures, never in exponent form above 100: 0.0123, 4.56, 950."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _format_count(value: float) -> str:
    """A rate with an SI suffix: 950, 12.3k, 4.56M, 1.2G."""
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= threshold:
            return _format_number(value / threshold) + suffix
    return _format_number(value)


def _format_scalar(value: Any) -> str:
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # No isatty, or the stream is closed.
        return False


class ProgressBar:
    """Shows training progress; call `update(step, loss=...)` after steps, `close()` at the end.

    Args:
      total_steps: the step number at which training ends.
      initial_step: the step training starts (or resumes) from.
      tokens_per_step: global tokens per step; adds a tokens/s figure when given.
      stream: where to write; its `isatty()` picks in-place redraw or throttled whole lines.
      min_interval_s: least time between whole lines when not on a terminal.
      window: how many recent updates the rate is measured over.
      clock: a monotonic time source in seconds (injectable for tests).
      tty: overrides the `isatty()` detection.
      enabled: False on JAX processes other than 0, so that only one host prints.

    Scalars passed to `update` are converted with `float()`, which for a JAX array waits for
    the device: pass values the loop has fetched anyway (e.g. at `log_every`).
    """

    # The least time between redraws on a terminal: redrawing for every one of thousands of
    # steps a second would cost more than the steps.
    TTY_INTERVAL_S = 0.1

    def __init__(self, total_steps: int, initial_step: int = 0, *,
                 tokens_per_step: int | None = None, stream: TextIO = sys.stderr,
                 min_interval_s: float = 10.0, window: int = 20,
                 clock: Callable[[], float] = time.monotonic, tty: bool | None = None,
                 enabled: bool = True):
        if window < 2:
            raise ValueError(f"window must hold at least 2 updates to give a rate, got {window}")
        self.total_steps = total_steps
        self.initial_step = initial_step
        self.tokens_per_step = tokens_per_step
        self.stream = stream
        self.min_interval_s = min_interval_s
        self.enabled = enabled
        self._clock = clock
        self._tty = _is_tty(stream) if tty is None else tty
        self._start_time = clock()
        # (step, time) of recent updates. The first update seeds it and is never the end of an
        # interval, so the time to reach it (compilation) is excluded from every rate.
        self._window: collections.deque[tuple[int, float]] = collections.deque(maxlen=window)
        self._first: tuple[int, float] | None = None
        self._step = initial_step
        self._scalars: dict[str, Any] = {}
        self._last_draw: float | None = None
        self._drawn = True  # Whether the latest state is on screen (nothing to show yet).
        self._line_len = 0
        self._closed = False

    @property
    def steps_per_sec(self) -> float | None:
        """Steps per second over the recent window; None until two updates have been seen."""
        if len(self._window) < 2:
            return None
        (step0, t0), (step1, t1) = self._window[0], self._window[-1]
        return (step1 - step0) / (t1 - t0) if t1 > t0 else None

    @property
    def eta_seconds(self) -> float | None:
        rate = self.steps_per_sec
        if not rate:
            return None
        return max(0, self.total_steps - self._step) / rate

    def format_line(self) -> str:
        """The status line for the latest update, e.g.
        `  120/1000  12.0% | 5.12 it/s | 65.5k tok/s | ETA 0:02:52 | loss=3.412`."""
        width = len(str(self.total_steps))
        percent = 100.0 * self._step / self.total_steps if self.total_steps else 100.0
        parts = [f"{self._step:>{width}}/{self.total_steps} {percent:5.1f}%"]
        rate = self.steps_per_sec
        if rate is None:
            parts.append("? it/s")
        else:
            parts.append(f"{_format_number(rate)} it/s")
            if self.tokens_per_step:
                parts.append(f"{_format_count(rate * self.tokens_per_step)} tok/s")
        eta = self.eta_seconds
        parts.append(f"ETA {format_duration(eta) if eta is not None else '?'}")
        if self._scalars:
            parts.append(" ".join(f"{k}={_format_scalar(v)}" for k, v in self._scalars.items()))
        return " | ".join(parts)

    def update(self, step: int, *, force: bool = False, **scalars: Any) -> None:
        """Records that training reached `step`, with optional scalars (e.g. `loss=...`)."""
        if not self.enabled or self._closed:
            return
        now = self._clock()
        step = int(step)
        if self._first is None:
            self._first = (step, now)
        self._window.append((step, now))
        self._step = step
        self._scalars = scalars
        self._drawn = False
        due = (self._last_draw is None or force or step >= self.total_steps
               or now - self._last_draw >= (self.TTY_INTERVAL_S if self._tty
                                            else self.min_interval_s))
        if due:
            self._draw(now)

    def _draw(self, now: float) -> None:
        line = self.format_line()
        if self._tty:
            # Pad with spaces so a shorter line fully covers the previous one.
            self.stream.write("\r" + line.ljust(self._line_len))
            self._line_len = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._last_draw = now
        self._drawn = True

    def close(self) -> None:
        """Shows the final state if it was throttled, then a summary line; safe to call twice."""
        if not self.enabled or self._closed:
            return
        self._closed = True
        now = self._clock()
        if not self._drawn:
            self._draw(now)
        if self._tty and self._last_draw is not None:
            self.stream.write("\n")
        summary = (f"done: {self._step - self.initial_step} steps in "
                   f"{format_duration(now - self._start_time)}")
        if self._first is not None and self._window[-1][1] > self._first[1]:
            # Mean over everything after the first update, i.e. without compilation.
            (step0, t0), (step1, t1) = self._first, self._window[-1]
            rate = (step1 - step0) / (t1 - t0)
            summary += f" ({_format_number(rate)} it/s"
            if self.tokens_per_step:
                summary += f", {_format_count(rate * self.tokens_per_step)} tok/s"
            summary += ")"
        self.stream.write(summary + "\n")
        self.stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
