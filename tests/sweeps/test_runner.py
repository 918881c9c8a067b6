"""The sweep runner on a 2x2 grid of very short real pretraining runs: a finished point is
skipped untouched, a point stopped by SIGTERM mid-run resumes from its checkpoint, a point
that fails is recorded and the rest go on; then the summary and plots."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.experiments import runs

NUM_STEPS = 20

_SWEEP = '''
import ml_collections

def get_config():
    c = ml_collections.ConfigDict()
    c.base = {base!r}
    c.overrides = {{"train": {{"num_steps": {steps}, "checkpoint_every": 4, "eval_every": 10}}}}
    c.product = {product}
    c.zipped = {{}}
    c.seeds = (0,)
    return c
'''
GRID = {"masking": {"strategy": ("token", "whole_word")},
        "train": {"learning_rate": (1e-3, 3e-3)}}


def write_sweep(root, product, name="sweep.py") -> str:
    base = runs.write_config(root, NUM_STEPS)  # hidden 32, batch 8, a made-up corpus
    path = root / name
    path.write_text(_SWEEP.format(base=base, steps=NUM_STEPS, product=repr(product)))
    return str(path)


def start_sweep(config, workdir, *flags):
    return subprocess.Popen([sys.executable, "-m", "experiments.sweep", f"--config={config}",
                             f"--workdir={workdir}", *flags], cwd=runs.ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc, returncode=0) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == returncode, out[-3000:]
    return out


def test_dry_run_prints_one_pretrain_command_per_point(tmp_path):
    config = write_sweep(tmp_path, GRID)
    out = finish(start_sweep(config, tmp_path / "w", "--dry_run"))
    lines = out.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("python -m experiments.pretrain ")
                                   for line in lines)
    assert "--config.masking.strategy=whole_word" in lines[3]
    assert "--config.train.learning_rate=0.003" in lines[3]
    assert f"--config.train.num_steps={NUM_STEPS}" in lines[3]
    assert not os.path.exists(tmp_path / "w")  # nothing run, nothing written


@pytest.mark.slow  # 5 pretraining processes: ~4 minutes on 2 busy cores (mostly compiling)
def test_2x2_sweep_skips_finished_and_resumes_interrupted(tmp_path):
    config, workdir = write_sweep(tmp_path, GRID), str(tmp_path / "w")
    names = sorted(finish(start_sweep(config, workdir, "--dry_run")).split())
    names = [a.split("=", 1)[1].rsplit("/", 1)[1] for a in names if a.startswith("--workdir")]
    first, second = (os.path.join(workdir, n) for n in names[:2])

    # Point 0 runs alone (an array job's task) and finishes.
    finish(start_sweep(config, workdir, "--index=0"))
    done = {f: os.stat(os.path.join(first, f)).st_mtime_ns
            for f in ("metrics.jsonl", "summary.json", "train.log", "point.json")}
    done_rows = runs.rows(first)
    assert done_rows[-1] == {**done_rows[-1], "step": NUM_STEPS, "split": "eval"}

    # Point 1 is stopped mid-run: SIGTERM to the sweep reaches the pretraining process,
    # which saves a checkpoint and exits.
    proc = start_sweep(config, workdir, "--index=1")
    deadline = time.time() + 300
    while not any(r["step"] >= 3 for r in runs.rows(second)):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[0][-2000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out = finish(proc)
    assert "SIGTERM received: stopped" in out
    stopped_at = runs.rows(second)[-1]["step"]
    assert stopped_at < NUM_STEPS, "the point finished before the signal; nothing to resume"
    saved = max(int(d) for d in os.listdir(os.path.join(second, "checkpoints")) if d.isdigit())
    assert json.load(open(os.path.join(second, "point.json")))["status"] == "partial"

    # The whole sweep: point 0 skipped, point 1 resumed from its checkpoint, 2 and 3 run.
    out = finish(start_sweep(config, workdir))
    print(out)
    assert f"[1/4] {names[0]}: finished, skipped" in out
    assert f"[2/4] {names[1]}: running (resuming after step {stopped_at})" in out
    assert {f: os.stat(os.path.join(first, f)).st_mtime_ns for f in done} == done
    assert runs.rows(first) == done_rows
    log = open(os.path.join(second, "train.log")).read()
    assert f"resumed from the checkpoint at step {saved}" in log
    train = [r["step"] for r in runs.rows(second, "train")]
    assert train == list(range(1, NUM_STEPS + 1))  # no step lost, none logged twice
    point = json.load(open(os.path.join(second, "point.json")))
    assert point["status"] == "finished" and len(point["attempts"]) == 2
    assert len(json.load(open(os.path.join(second, "summary.json")))["invocations"]) == 2

    with open(os.path.join(workdir, "summary.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == names
    assert all(r["status"] == "finished" and int(r["step"]) == NUM_STEPS for r in rows)
    assert {(r["strategy"], r["learning_rate"]) for r in rows} == {
        (s, lr) for s in ("token", "whole_word") for lr in ("0.001", "0.003")}
    for r in rows:
        assert 0 <= float(r["mlm_accuracy"]) <= float(r["best_mlm_accuracy"]) <= 1
        assert int(r["params"]) > 0 and float(r["tokens_per_sec"]) > 0
    table = open(os.path.join(workdir, "summary.md")).read()
    assert table.count("| finished |") == 4
    plots = set(os.listdir(os.path.join(workdir, "plots")))
    assert {"mlm_accuracy_vs_step.png", "train_loss_vs_step.png",
            "mlm_accuracy_vs_strategy.png", "mlm_loss_vs_learning_rate.png"} <= plots

    # Run again: nothing to do.
    out = finish(start_sweep(config, workdir))
    assert out.count("finished, skipped") == 4


def test_failed_point_is_recorded_and_the_sweep_exits_nonzero(tmp_path):
    config = write_sweep(tmp_path, {"data": {"vocab_path": (str(tmp_path / "none.txt"),)}})
    workdir = tmp_path / "w"
    out = finish(start_sweep(config, workdir), returncode=1)
    assert "FAILED (exit status 1): error: vocab file" in out
    assert "1 point(s) did not finish" in out
    with open(workdir / "summary.csv") as f:
        (row,) = csv.DictReader(f)
    assert row["status"].startswith("failed: error: vocab file")
