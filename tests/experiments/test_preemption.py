"""Kills real `python -m experiments.pretrain` processes (SIGTERM, SIGINT and kill -9) at a
random step, restarts them with the same workdir, and checks that every logged number equals
the uninterrupted run's, bit for bit."""

import os
import random
import signal
import time

import pytest

from tests.experiments import runs

NUM_STEPS = 12


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    return runs.write_config(tmp_path_factory.mktemp("preempt"), NUM_STEPS)


@pytest.fixture(scope="module")
def reference(config_file, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("ref") / "w")
    runs.finish(runs.start(config_file, workdir))
    return runs.rows(workdir, "train")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL],
                         ids=lambda s: s.name)
def test_interrupted_run_resumes_exactly(config_file, reference, tmp_path, sig):
    # A stop request is honoured a couple of steps later (it travels with the next step so all
    # processes stop at one step), so leave room before NUM_STEPS; kill -9 acts at once.
    kill_after = random.randint(2, NUM_STEPS - (2 if sig == signal.SIGKILL else 5))
    print(f"{sig.name} after step {kill_after}")  # shown on failure
    workdir = str(tmp_path / "w")
    proc = runs.start(config_file, workdir)
    deadline = time.time() + 240
    while not any(r["step"] >= kill_after for r in runs.rows(workdir)):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[0][-2000:]
        time.sleep(0.05)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:  # finishes the step in flight, saves it, exits 0 with a message
        assert proc.returncode == 0, out[-2000:]
        assert f"{sig.name} received: saved step" in out
    stopped_at = runs.rows(workdir)[-1]["step"]
    assert stopped_at < NUM_STEPS
    checkpoints = os.path.join(workdir, "checkpoints")
    saved = [int(d) for d in os.listdir(checkpoints) if d.isdigit()]
    out = runs.finish(runs.start(config_file, workdir))
    if saved:  # kill -9 before the first periodic checkpoint leaves none: start over
        assert f"resumed from the checkpoint at step {max(saved)}" in out
    resumed_at = max(saved, default=0)
    rows = runs.rows(workdir, "train")
    assert rows == reference
    print(f"  killed at step {stopped_at}, resumed from checkpoint step {resumed_at}; "
          f"{len(rows)} train rows x {len(rows[0])} values equal the uninterrupted run's "
          f"exactly (losses {rows[0]['loss']:.6f} ... {rows[-1]['loss']:.6f})")
