"""Ablation sweeps: a grid of field overrides of one pretraining config, run point by point
into sub-workdirs of one directory, summarised as tables and plots.

    grid.py     sweep config -> validated points (product axes, zipped axes, seeds), commands
    runner.py   runs unfinished points as pretraining processes; status; signals
    summary.py  DIR/summary.csv and DIR/summary.md
    plots.py    DIR/plots/*.png

`run_sweep` is the one call behind `python -m experiments.sweep`.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TextIO

from bert_jax.metrics.writers import atomic_write
from bert_jax.sweeps.grid import Point, SweepError, command, expand, shell_line
from bert_jax.sweeps.plots import plot_sweep
from bert_jax.sweeps.runner import run_points
from bert_jax.sweeps.summary import write_tables

__all__ = ["Point", "SweepError", "expand", "run_sweep", "summarize"]


def summarize(points: list[Point], workdir: str, title: str = "",
              out: TextIO = sys.stdout) -> list[dict]:
    """Writes DIR/summary.csv, DIR/summary.md and DIR/plots/*.png; returns the rows."""
    rows = write_tables(points, workdir, title)
    paths = plot_sweep(points, rows, workdir)
    done = sum(r["status"] == "finished" for r in rows)
    print(f"summary of {done}/{len(rows)} finished points: {os.path.join(workdir, 'summary.md')}"
          f", {os.path.join(workdir, 'summary.csv')}; {len(paths)} plots in "
          f"{os.path.join(workdir, 'plots')}", file=out, flush=True)
    return rows


def run_sweep(sweep, workdir: str, *, index: int | None = None, dry_run: bool = False,
              summarize_only: bool = False, title: str = "",
              out: TextIO = sys.stdout) -> int:
    """Runs (or, `dry_run`, prints the commands of) the sweep's points under `workdir`;
    returns the exit status. `index`: only that point, and no summary (an array job's task;
    run `summarize_only` when all are done). Raises SweepError before anything runs."""
    points = expand(sweep)
    if index is not None and not 0 <= index < len(points):
        raise SweepError(f"--index {index} is out of range: the sweep has {len(points)} "
                         f"points (0 to {len(points) - 1})")
    selected = points if index is None else [points[index]]
    if dry_run:
        for point in selected:
            print(shell_line(command(sweep, point, workdir, python="python")), file=out)
        return 0
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise SweepError(f"--workdir {workdir} is a file, not a directory")
    os.makedirs(workdir, exist_ok=True)
    status = 0
    if not summarize_only:
        atomic_write(os.path.join(workdir, "sweep.json"),
                     json.dumps(sweep.to_dict(), indent=2, default=str) + "\n")
        after_each = None if index is not None else lambda: write_tables(points, workdir, title)
        status = run_points(sweep, selected, workdir, out=out, after_each=after_each)
    if index is None:
        summarize(points, workdir, title, out=out)
    return status
