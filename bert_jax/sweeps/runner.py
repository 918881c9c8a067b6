"""Runs a sweep's points, one `python -m experiments.pretrain` process each.

A process per point gives every run fresh JAX state, keeps one point's crash from ending
the sweep, and is exactly the command `--dry_run` prints for a cluster scheduler. Each
point's sub-workdir is an ordinary pretraining workdir plus

  point.json   the point (index, axis levels, overrides, command), its status and attempts
  train.log    the pretraining process's output, appended per attempt

A point is finished when its metrics.jsonl holds the final evaluation (an eval row at
train.num_steps); finished points are skipped, any other is (re)started with the same
command, and the pretraining loop resumes it from its newest checkpoint. SIGTERM or SIGINT
to the sweep is passed on as SIGTERM to the running point (which saves and exits) and no
further point starts; a second signal kills the point at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import TextIO

from bert_jax.metrics.writers import METRICS_FILE, atomic_write, read_metrics
from bert_jax.sweeps.grid import Point, command

POINT_FILE = "point.json"
LOG_FILE = "train.log"


def final_step(point: Point, workdir: str) -> tuple[bool, int]:
    """(finished, last logged step) of a point from its metrics.jsonl."""
    path = os.path.join(workdir, point.name, METRICS_FILE)
    rows = read_metrics(path) if os.path.exists(path) else []
    finished = any(r["split"] == "eval" and r["step"] == point.num_steps for r in rows)
    return finished, max((r["step"] for r in rows), default=0)


def read_point_file(point: Point, workdir: str) -> dict:
    path = os.path.join(workdir, point.name, POINT_FILE)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def status(point: Point, workdir: str) -> tuple[str, int]:
    """("finished" | "failed" | "partial" | "pending", last logged step)."""
    finished, step = final_step(point, workdir)
    if finished:
        return "finished", step
    recorded = read_point_file(point, workdir).get("status")
    if recorded == "failed":
        return "failed", step
    return ("partial" if step else "pending"), step


def _write_point_file(point: Point, workdir: str, argv: list[str], **fields) -> dict:
    record = read_point_file(point, workdir)
    record.update(index=point.index, name=point.name, levels=point.levels,
                  overrides=point.overrides, command=argv, **fields)
    atomic_write(os.path.join(workdir, point.name, POINT_FILE),
                 json.dumps(record, indent=2, default=str) + "\n")
    return record


def _die_with_parent():
    """In the child: SIGTERM it (save and exit) if the sweep process dies (Linux only)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class _Stop:
    """SIGTERM/SIGINT to the sweep: pass SIGTERM to the running point; a second one kills it.

    The point runs in its own session so that a Ctrl-C at the terminal reaches it once, from
    here, as SIGTERM (two SIGINTs would make it stop without saving).
    """

    def __init__(self):
        self.signal, self.child, self._previous = None, None, {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        first = self.signal is None
        self.signal = signal.Signals(signum).name
        if self.child is not None and self.child.poll() is None:
            if first:
                self.child.send_signal(signal.SIGTERM)
            else:
                self.child.kill()

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _error_line(log_path: str, offset: int) -> str:
    """The pretraining CLI's `error:` line from this attempt's log, else its last line."""
    with open(log_path, errors="replace") as f:
        f.seek(offset)
        lines = [line.strip() for line in f.read().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["(no output)"])[-1][:500]


def run_points(sweep, points: list[Point], workdir: str, *, out: TextIO = sys.stdout,
               after_each=None) -> int:
    """Runs each unfinished point in turn; returns the exit status (0: every point of
    `points` finished, or the sweep was stopped by a signal; 1: some point failed or was
    stopped by someone else). `after_each()` is called after every point that ran."""
    incomplete = []
    with _Stop() as stop:
        for n, point in enumerate(points, 1):
            where = f"[{n}/{len(points)}] {point.name}"
            state, step = status(point, workdir)
            if state == "finished":
                print(f"{where}: finished, skipped", file=out, flush=True)
                continue
            if stop.signal:
                break
            sub = os.path.join(workdir, point.name)
            os.makedirs(sub, exist_ok=True)
            argv = command(sweep, point, workdir)
            log_path = os.path.join(sub, LOG_FILE)
            resumes = f" (resuming after step {step})" if step else ""
            print(f"{where}: running{resumes}, log {log_path}", file=out, flush=True)
            attempts = read_point_file(point, workdir).get("attempts", [])
            t0 = time.time()
            with open(log_path, "a") as log:
                offset = log.tell()
                log.write(f"$ {' '.join(argv)}\n")
                log.flush()
                _write_point_file(point, workdir, argv, status="running", attempts=attempts)
                stop.child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True,
                                              preexec_fn=_die_with_parent)
                returncode = stop.child.wait()
                stop.child = None
            seconds = time.time() - t0
            finished, step = final_step(point, workdir)
            attempts.append(dict(started=time.strftime("%Y-%m-%dT%H:%M:%S",
                                                       time.localtime(t0)),
                                 seconds=round(seconds, 1), returncode=returncode,
                                 step=step))
            if finished:
                _write_point_file(point, workdir, argv, status="finished", attempts=attempts)
                print(f"{where}: finished in {seconds:.0f} s", file=out, flush=True)
            elif returncode != 0:
                error = _error_line(log_path, offset)
                _write_point_file(point, workdir, argv, status="failed", attempts=attempts,
                                  error=error)
                print(f"{where}: FAILED (exit status {returncode}): {error}", file=out,
                      flush=True)
                incomplete.append(point.name)
            else:  # saved and exited on a signal: ours, or someone else's
                _write_point_file(point, workdir, argv, status="partial", attempts=attempts)
                print(f"{where}: stopped at step {step}; run again to resume", file=out,
                      flush=True)
                if not stop.signal:
                    incomplete.append(point.name)
            if after_each is not None:
                after_each()
    if stop.signal:
        print(f"{stop.signal} received: stopped; run the same command again to resume",
              file=out, flush=True)
        return 0
    if incomplete:
        print(f"{len(incomplete)} point(s) did not finish: {', '.join(incomplete)}",
              file=out, flush=True)
        return 1
    return 0
