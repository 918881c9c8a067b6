"""Sweep summaries from point workdirs as the pretraining loop and the runner leave them:
one row per point whatever its state, mean ± std over seeds, and the plots."""

import csv
import io
import json
import os

import pytest

from bert_jax.sweeps import expand, summarize
from tests.sweeps.test_grid import sweep


def fake_point(workdir, point, accuracies, *, num_params=1000, failed=None):
    """A point's workdir: an eval row per accuracy (every 10 steps), summary.json."""
    sub = os.path.join(workdir, point.name)
    os.makedirs(sub)
    with open(os.path.join(sub, "metrics.jsonl"), "w") as f:
        for i, acc in enumerate(accuracies, 1):
            f.write(json.dumps(dict(step=10 * i, split="train", loss=5.0 - acc)) + "\n")
            f.write(json.dumps(dict(step=10 * i, split="eval", mlm_accuracy=acc,
                                    mlm_loss=4.0 - acc, sop_accuracy=0.5)) + "\n")
    json.dump(dict(num_params=num_params, wall_time_s=75.5, tokens_per_sec=12345.6),
              open(os.path.join(sub, "summary.json"), "w"))
    if failed:
        json.dump(dict(status="failed", error=failed), open(os.path.join(sub, "point.json"), "w"))


def test_summary_rows_seed_statistics_and_plots(tmp_path):
    points = expand(sweep(overrides={"train": {"num_steps": 30}},
                          product={"model": {"embedding_size": (32, 64)}}, seeds=(0, 1)))
    workdir = str(tmp_path)
    fake_point(workdir, points[0], [0.1, 0.3, 0.2])    # E=32 seed 0: finished, best 0.3
    fake_point(workdir, points[1], [0.1, 0.2, 0.4])    # E=32 seed 1: finished
    fake_point(workdir, points[2], [0.1])              # E=64 seed 0: stopped at step 10
    fake_point(workdir, points[3], [], failed="error: vocab file 'x' does not exist")
    out = io.StringIO()
    rows = summarize(points, workdir, "test", out=out)
    assert "summary of 2/4 finished points" in out.getvalue()

    with open(tmp_path / "summary.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["name"] for r in table] == [p.name for p in points]
    assert [r["status"] for r in table] == [
        "finished", "finished", "partial", "failed: error: vocab file 'x' does not exist"]
    first = table[0]
    assert (first["embedding_size"], first["seed"], first["step"]) == ("32", "0", "30")
    assert float(first["mlm_accuracy"]) == 0.2 and float(first["best_mlm_accuracy"]) == 0.3
    assert float(first["sop_accuracy"]) == 0.5 and "nsp_accuracy" not in first
    assert (first["params"], first["wall_time_s"], first["tokens_per_sec"]) == (
        "1000", "75.5", "12345.6")
    assert table[2]["step"] == "10" and table[2]["mlm_accuracy"] == "0.1"

    md = open(tmp_path / "summary.md").read()
    assert "| 0 | 32 | 0 | finished | 30 | 0.2000 | 3.8000 | 0.5000 | 0.3000 | 0.00M | " \
           "1 min 15 s | 12.3k |" in md
    # E=32: final accuracies 0.2 and 0.4 -> 0.3 ± 0.1414; E=64 has no finished point.
    assert "| 32 | 2 | 0.3000 ± 0.1414 |" in md
    assert rows[0]["mlm_accuracy"] == pytest.approx(0.2)

    plots = sorted(os.listdir(tmp_path / "plots"))
    assert plots == ["mlm_accuracy_vs_embedding_size.png", "mlm_accuracy_vs_step.png",
                     "mlm_loss_vs_embedding_size.png", "mlm_loss_vs_step.png",
                     "sop_accuracy_vs_step.png", "train_loss_vs_step.png"]
