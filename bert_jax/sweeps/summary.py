"""A sweep's results as tables: `DIR/summary.csv` (for pandas) and `DIR/summary.md`.

One row per point: its axis levels, status, final and best evaluation metrics (from the
point's metrics.jsonl), parameters, wall time and tokens/s (from the summary.json the
pretraining loop writes). With several seeds, summary.md adds mean ± std over seeds of
every other combination of levels.
"""

from __future__ import annotations

import csv
import io
import json
import os
import statistics

from bert_jax.metrics.writers import METRICS_FILE, atomic_write, read_metrics
from bert_jax.sweeps.grid import Point
from bert_jax.sweeps.runner import read_point_file, status
from bert_jax.training.report import RUN_SUMMARY_FILE

# Final evaluation metrics, in this order, where any point has them.
FINAL_METRICS = ("mlm_accuracy", "mlm_loss", "nsp_accuracy", "sop_accuracy",
                 "mlm_accuracy_coarse")
HIGHER_IS_BETTER = ("mlm_accuracy",)  # best_<name>: the best value over all evaluations


def point_row(point: Point, workdir: str) -> dict:
    """The table row of one point (absent values are None)."""
    sub = os.path.join(workdir, point.name)
    state, step = status(point, workdir)
    row = dict(index=point.index, name=point.name, **point.levels, status=state, step=step)
    path = os.path.join(sub, METRICS_FILE)
    evals = sorted((r for r in (read_metrics(path) if os.path.exists(path) else [])
                    if r["split"] == "eval"), key=lambda r: r["step"])
    final = evals[-1] if evals else {}
    row["eval_step"] = final.get("step")
    for name in FINAL_METRICS:
        row[name] = final.get(name)
    for name in HIGHER_IS_BETTER:
        values = [r[name] for r in evals if name in r]
        row[f"best_{name}"] = max(values) if values else None
    run = {}
    if os.path.exists(os.path.join(sub, RUN_SUMMARY_FILE)):
        with open(os.path.join(sub, RUN_SUMMARY_FILE)) as f:
            run = json.load(f)
    row.update(params=run.get("num_params"), wall_time_s=run.get("wall_time_s"),
               tokens_per_sec=run.get("tokens_per_sec"))
    if state == "failed":
        row["status"] = f"failed: {read_point_file(point, workdir).get('error', '')}"
    return row


def table(points: list[Point], workdir: str) -> list[dict]:
    """Rows of every point; metric columns no point has are dropped."""
    rows = [point_row(p, workdir) for p in points]
    unused = [n for n in FINAL_METRICS if all(r[n] is None for r in rows)]
    return [{k: v for k, v in r.items() if k not in unused} for r in rows]


def seed_groups(rows: list[dict]) -> dict[tuple, list[dict]]:
    """Finished rows grouped by their levels other than the seed (in row order)."""
    axes = _axes(rows)
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if row["status"] == "finished":
            groups.setdefault(tuple(row[a] for a in axes if a != "seed"), []).append(row)
    return groups


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _axes(rows: list[dict]) -> list[str]:
    keys = list(rows[0])
    return keys[keys.index("name") + 1:keys.index("status")]


def _metric_columns(rows: list[dict]) -> list[str]:
    return [k for k in rows[0] if k in FINAL_METRICS or k.startswith("best_")]


def _fmt(key: str, value) -> str:
    if value is None:
        return ""
    if key == "params":
        return f"{value / 1e6:.2f}M"
    if key == "wall_time_s":
        return f"{int(value // 60)} min {int(value % 60):02d} s"
    if key == "tokens_per_sec":
        return f"{value / 1e3:.1f}k" if value >= 1e3 else f"{value:.0f}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|")


def _markdown(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines) + "\n"


def write_tables(points: list[Point], workdir: str, title: str = "") -> list[dict]:
    """Writes DIR/summary.csv and DIR/summary.md; returns the rows."""
    rows = table(points, workdir)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(os.path.join(workdir, "summary.csv"), buffer.getvalue())

    columns = [k for k in rows[0] if k != "name" and k != "eval_step"]
    text = f"# {title}\n\n" if title else ""
    text += _markdown(columns, [[_fmt(k, r[k]) for k in columns] for r in rows])
    groups = seed_groups(rows)
    if any(len(g) > 1 for g in groups.values()):
        levels = [a for a in _axes(rows) if a != "seed"]
        metrics = _metric_columns(rows)
        body = []
        for key, group in groups.items():
            cells = list(key) + [str(len(group))]
            for m in metrics:
                values = [r[m] for r in group if r[m] is not None]
                cells.append("{:.4f} ± {:.4f}".format(*mean_std(values)) if values else "")
            body.append(cells)
        text += "\nMean ± standard deviation over seeds (finished points):\n\n"
        text += _markdown(levels + ["seeds"] + metrics, body)
    atomic_write(os.path.join(workdir, "summary.md"), text)
    return rows
