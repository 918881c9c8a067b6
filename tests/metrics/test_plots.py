"""Tests for bert_jax.metrics.plots: valid PNGs, missing metrics skipped, empty input."""

import contextlib
import os

import pytest

from bert_jax.metrics.plots import plot_metrics
from bert_jax.metrics.writers import MetricsWriter

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _write_rows(workdir, train_metrics, eval_metrics=(), steps=range(10, 101, 10)):
    with MetricsWriter(workdir, tensorboard=False) as w:
        for step in steps:
            w.write(step, "train", {name: 1.0 + 1.0 / step for name in train_metrics})
            if eval_metrics and step % 50 == 0:
                w.write(step, "eval", {name: 2.0 / step for name in eval_metrics})
    return os.path.join(workdir, "metrics.jsonl")


def _assert_png(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000, path


def test_full_pretraining_metrics(tmp_path):
    path = _write_rows(tmp_path, ["loss", "mlm_loss", "mlm_accuracy", "nsp_accuracy",
                                  "learning_rate", "grad_norm"],
                       ["mlm_loss", "mlm_accuracy"])
    out = tmp_path / "plots"
    paths = plot_metrics(path, out)
    assert [os.path.basename(p) for p in paths] == [
        "loss.png", "accuracy.png", "grad_norm.png", "learning_rate.png"]
    for p in paths:
        _assert_png(p)
    # Plots are written atomically: only the PNGs, no temporary files.
    assert sorted(os.listdir(out)) == sorted(os.path.basename(p) for p in paths)
    # Re-plotting as training goes on overwrites in place.
    assert plot_metrics(path, out) == paths


def test_missing_metrics_are_skipped(tmp_path):
    path = _write_rows(tmp_path, ["loss"])
    paths = plot_metrics(path, tmp_path / "plots")
    assert [os.path.basename(p) for p in paths] == ["loss.png"]
    _assert_png(paths[0])


def test_single_points_and_nan(tmp_path):
    with MetricsWriter(tmp_path, tensorboard=False) as w:
        w.write(1, "train", {"sop_accuracy": 0.5, "loss": float("nan")})
        w.write(2, "train", {"loss": float("inf")})
        w.write(3, "eval", {"mlm_loss": 3.0})
    paths = plot_metrics(tmp_path / "metrics.jsonl", tmp_path / "plots")
    assert [os.path.basename(p) for p in paths] == ["loss.png", "accuracy.png"]
    for p in paths:
        _assert_png(p)


@pytest.mark.parametrize("content", [None, "", "\n\n", '{"step": 1, "spl'])
def test_empty_or_missing_file_gives_no_plots(tmp_path, content):
    path = tmp_path / "metrics.jsonl"
    if content is not None:
        path.write_text(content)
    truncated = bool(content and content.strip())
    with pytest.warns(UserWarning, match="truncated") if truncated else contextlib.nullcontext():
        assert plot_metrics(path, tmp_path / "plots") == []
    assert not (tmp_path / "plots").exists()


def test_odd_rows_are_ignored_not_fatal(tmp_path):
    # Hand-edited or foreign rows: a string field, a row without a split, a boolean flag.
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 20, "split": "train", "loss": 2.0, "note": "restart"}\n'
                    '{"step": 10, "split": "train", "loss": 3.0, "ok": true}\n'
                    '{"step": 5, "loss": 9.0}\n')
    paths = plot_metrics(path, tmp_path / "plots")
    assert [os.path.basename(p) for p in paths] == ["loss.png"]
    _assert_png(paths[0])
