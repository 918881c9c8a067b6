"""A sweep's plots, under `DIR/plots/`:

- `<metric>_vs_step.png`: the eval metric (and `train_loss`) against step, a curve per point;
- `<metric>_vs_<axis>.png`: the final eval metric against each axis with more than one
  level, a line per combination of the other axes' levels, the mean over seeds with
  error bars of ± one standard deviation when there are several seeds.
"""

from __future__ import annotations

import os

from bert_jax.metrics.plots import collect_series, new_axes, save_png
from bert_jax.metrics.writers import METRICS_FILE, read_metrics
from bert_jax.sweeps.grid import Point
from bert_jax.sweeps.summary import mean_std, seed_groups

# (split, metric, file stem) drawn against step.
STEP_CURVES = (("eval", "mlm_accuracy", "mlm_accuracy"), ("eval", "mlm_loss", "mlm_loss"),
               ("eval", "nsp_accuracy", "nsp_accuracy"), ("eval", "sop_accuracy", "sop_accuracy"),
               ("train", "loss", "train_loss"))
AXIS_METRICS = ("mlm_accuracy", "mlm_loss")


def _label(levels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in levels.items())


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _vs_step(points: list[Point], workdir: str, out_dir: str) -> list[str]:
    series = {}
    for p in points:
        path = os.path.join(workdir, p.name, METRICS_FILE)
        if os.path.exists(path):
            series[p.name] = (p, collect_series(read_metrics(path)))
    paths = []
    for split, metric, stem in STEP_CURVES:
        curves = [(p, s[(split, metric)]) for p, s in series.values() if (split, metric) in s]
        if not curves:
            continue
        fig, ax = new_axes(f"{split} {metric}", "step", metric, figsize=(9, 5.5))
        for i, (p, points_) in enumerate(curves):
            steps, values = zip(*points_)
            style = dict(marker="o", markersize=3) if split == "eval" else {}
            ax.plot(steps, values, color=f"C{i % 10}", label=_label(p.levels), linewidth=1.2,
                    linestyle="-" if i < 10 else "--", **style)
        paths.append(os.path.join(out_dir, f"{stem}_vs_step.png"))
        save_png(fig, ax, paths[-1])
    return paths


def _vs_axis(rows: list[dict], axes: list[str], out_dir: str) -> list[str]:
    groups = seed_groups(rows)  # (non-seed levels) -> finished rows of every seed
    levels_of = [a for a in axes if a != "seed"]
    several_seeds = any(len(g) > 1 for g in groups.values())
    paths = []
    for axis in levels_of:
        ticks = list(dict.fromkeys(r[axis] for r in rows))
        if len(ticks) < 2:
            continue
        others = [a for a in levels_of if a != axis]
        for metric in AXIS_METRICS:
            lines: dict[tuple, list[tuple[int, float, float]]] = {}
            for key, group in groups.items():
                values = [r[metric] for r in group if r.get(metric) is not None]
                if not values:
                    continue
                level = dict(zip(levels_of, key))
                mean, std = mean_std(values)
                lines.setdefault(tuple(level[o] for o in others), []).append(
                    (ticks.index(level[axis]), mean, std))
            if not lines:
                continue
            seeds = " (mean ± std over seeds)" if several_seeds else ""
            # Lines join levels of a numeric axis; categories (strategies, tasks) get markers.
            line = "-" if all(_is_number(t) for t in ticks) else "none"
            fig, ax = new_axes(f"final eval {metric} vs {axis}{seeds}", axis, metric)
            for i, (other, pts) in enumerate(lines.items()):
                xs, means, stds = zip(*sorted(pts))
                label = _label(dict(zip(others, other))) or metric
                ax.errorbar(xs, means, yerr=stds if several_seeds else None, marker="o",
                            linestyle=line, capsize=3, color=f"C{i % 10}", label=label)
            ax.set_xticks(range(len(ticks)), ticks)
            paths.append(os.path.join(out_dir, f"{metric}_vs_{axis}.png"))
            save_png(fig, ax, paths[-1])
    return paths


def plot_sweep(points: list[Point], rows: list[dict], workdir: str) -> list[str]:
    """Writes the sweep's plots under `workdir/plots`; returns their paths."""
    out_dir = os.path.join(workdir, "plots")
    os.makedirs(out_dir, exist_ok=True)
    return _vs_step(points, workdir, out_dir) + _vs_axis(rows, list(points[0].levels), out_dir)
