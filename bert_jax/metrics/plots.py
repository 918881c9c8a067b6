"""PNG plots of a run's `metrics.jsonl`: losses, accuracies, and every other metric found.

`plot_metrics` draws straight onto Agg canvases (`matplotlib.figure.Figure`), never through
`pyplot`: no display is needed, no global backend is switched under a user's notebook, and no
figure is left registered in pyplot's global state to leak memory in a long training run that
re-plots as it goes.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bert_jax.metrics.writers import SPLITS, atomic_write, read_metrics

# (step, value) points of one metric in one split.
Series = list[tuple[int, float]]

# Drawing styles: train is dense (a step every log_every), eval is sparse, so eval gets
# markers and a dashed line to be seen among the train curves.
_STYLE = {"train": {"linestyle": "-", "linewidth": 1.2},
          "eval": {"linestyle": "--", "linewidth": 1.5, "marker": "o", "markersize": 4}}


def _is_loss(name: str) -> bool:
    return name == "loss" or name.endswith("_loss")


def _is_accuracy(name: str) -> bool:
    return name == "accuracy" or name.endswith("_accuracy")


def _order(names: Iterable[str], first: Sequence[str]) -> list[str]:
    """The names in `first` (in that order) that are present, then the rest sorted."""
    names = set(names)
    return [n for n in first if n in names] + sorted(names - set(first))


def collect_series(rows: Iterable[dict]) -> dict[tuple[str, str], Series]:
    """Groups rows into series keyed by (split, metric), skipping anything not numeric."""
    series: dict[tuple[str, str], Series] = {}
    for row in rows:
        split, step = row.get("split"), row.get("step")
        if split not in SPLITS or not isinstance(step, (int, float)):
            continue
        for name, value in row.items():
            if name in ("step", "split") or isinstance(value, bool):
                continue
            if isinstance(value, (int, float)):
                series.setdefault((split, name), []).append((int(step), float(value)))
    for points in series.values():
        points.sort(key=lambda p: p[0])  # Resumed runs may have appended out of order.
    return series


def _save_figure(names: Sequence[str], series: dict[tuple[str, str], Series], *, title: str,
                 ylabel: str, path: str) -> None:
    """Draws train/eval curves of `names` on one axis and writes the PNG atomically.

    Atomic so that someone watching `plots/` while training re-plots never opens half a file.
    """
    fig, ax = new_axes(title, "step", ylabel)
    for i, name in enumerate(names):
        color = f"C{i % 10}"  # One color per metric, shared by its train and eval curves.
        for split in SPLITS:
            points = series.get((split, name))
            if not points:
                continue
            steps, values = zip(*points)
            style = dict(_STYLE[split])
            if len(points) == 1:
                style.setdefault("marker", "o")  # A lone point has no line to draw.
            ax.plot(steps, values, color=color, label=f"{split} {name}", **style)
    save_png(fig, ax, path)


def new_axes(title: str, xlabel: str, ylabel: str, *, figsize=(8, 5)):
    """A (figure, axes) pair on its own Agg canvas, titled and labelled."""
    fig = Figure(figsize=figsize, dpi=100)
    FigureCanvasAgg(fig)  # Attaches the Agg canvas that savefig renders with.
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def save_png(fig, ax, path: str) -> None:
    """Adds the legend and writes the PNG atomically."""
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write(path, buffer.getvalue())


def _filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".png"


def plot_metrics(metrics_jsonl: str | os.PathLike, out_dir: str | os.PathLike) -> list[str]:
    """Writes PNG plots of a `metrics.jsonl` into `out_dir`; returns the paths written.

    - `loss.png`: every loss (`loss`, `mlm_loss`, `nsp_loss`, ...), train and eval;
    - `accuracy.png`: every accuracy (`mlm_accuracy`, `nsp_accuracy`, `sop_accuracy`, ...);
    - `<name>.png` for each other metric (learning rate, gradient norm, throughput, ...).

    A figure whose metrics are all absent is skipped, so fewer paths come back; a missing or
    empty file gives [] and no plots.
    """
    metrics_jsonl = os.fspath(metrics_jsonl)
    if not os.path.exists(metrics_jsonl):
        return []
    series = collect_series(read_metrics(metrics_jsonl))
    if not series:
        return []
    names = {name for _, name in series}
    # NaN/inf values are plotted as they are: matplotlib leaves a gap for them, which is how
    # a diverged stretch should look, and autoscaling ignores them.
    figures = []
    losses = _order(filter(_is_loss, names), ("loss", "mlm_loss", "nsp_loss", "sop_loss"))
    if losses:
        figures.append((losses, "Loss", "cross-entropy", "loss.png"))
    accuracies = _order(filter(_is_accuracy, names),
                        ("mlm_accuracy", "nsp_accuracy", "sop_accuracy"))
    if accuracies:
        figures.append((accuracies, "Accuracy", "accuracy", "accuracy.png"))
    for name in sorted(n for n in names if not (_is_loss(n) or _is_accuracy(n))):
        figures.append(([name], name.replace("_", " ").capitalize(), name, _filename(name)))

    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for metric_names, title, ylabel, filename in figures:
        path = os.path.join(out_dir, filename)
        _save_figure(metric_names, series, title=title, ylabel=ylabel, path=path)
        paths.append(path)
    return paths

