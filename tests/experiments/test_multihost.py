"""Two processes x 2 CPU devices (jax.distributed on localhost, gloo collectives) give the
same losses as one process x 4 devices; a stop signal to one of them stops both at one
step, and the pair resumes from it."""

import os
import signal
import socket
import time

import numpy as np
import pytest

from tests.experiments import runs

NUM_STEPS = 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    config_file = runs.write_config(tmp_path, NUM_STEPS)
    single = str(tmp_path / "single")
    runs.finish(runs.start(config_file, single, devices=4))
    multi = str(tmp_path / "multi")
    address = f"127.0.0.1:{_free_port()}"
    procs = [runs.start(config_file, multi, f"--coordinator_address={address}",
                        "--num_processes=2", f"--process_id={i}", devices=2) for i in range(2)]
    outs = [runs.finish(p) for p in procs]
    assert "4 cpu device(s)" in outs[0] and "bert_jax:" not in outs[1]  # process 0 speaks
    a, b = runs.rows(single, "train"), runs.rows(multi, "train")
    assert [r["step"] for r in b] == list(range(1, NUM_STEPS + 1))  # written once, by process 0
    for key in ("loss", "mlm_loss", "nsp_loss", "grad_norm"):
        np.testing.assert_allclose([r[key] for r in b], [r[key] for r in a], rtol=1e-5,
                                   err_msg=key)
    losses = np.array([[r["loss"] for r in rows] for rows in (a, b)])
    print(f"2 processes x 2 devices vs 1 x 4, {NUM_STEPS} steps: max relative loss "
          f"difference {np.max(np.abs(losses[1] - losses[0]) / losses[0]):.2e}")  # with -s


@pytest.mark.slow
def test_signal_to_one_process_stops_all_at_the_same_step(tmp_path):
    """SIGTERM reaches one process of a 2-process run: both stop after the same step, save it
    together and exit 0; the restarted pair continues to the single-process numbers."""
    steps = 12
    config_file = runs.write_config(tmp_path, steps)
    single = str(tmp_path / "single")
    runs.finish(runs.start(config_file, single, devices=4))
    multi = str(tmp_path / "multi")

    def start_pair():
        address = f"127.0.0.1:{_free_port()}"
        return [runs.start(config_file, multi, f"--coordinator_address={address}",
                           "--num_processes=2", f"--process_id={i}", devices=2)
                for i in range(2)]

    procs = start_pair()
    deadline = time.time() + 240
    while not any(r["step"] >= 3 for r in runs.rows(multi)):
        assert all(p.poll() is None for p in procs) and time.time() < deadline
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGTERM)  # process 1 only: process 0 hears of it on device
    outs = [runs.finish(p, timeout=120) for p in procs]
    assert "another process was stopped: saved step" in outs[0], outs[0][-2000:]
    stopped = int(outs[0].split("saved step ")[1].split()[0])
    assert stopped < steps
    assert max(int(d) for d in os.listdir(os.path.join(multi, "checkpoints"))) == stopped
    outs = [runs.finish(p) for p in start_pair()]
    assert f"resumed from the checkpoint at step {stopped}" in outs[0]
    a, b = runs.rows(single, "train"), runs.rows(multi, "train")
    assert [r["step"] for r in b] == list(range(1, steps + 1))
    for key in ("loss", "mlm_loss", "nsp_loss", "grad_norm"):
        np.testing.assert_allclose([r[key] for r in b], [r[key] for r in a], rtol=1e-5,
                                   err_msg=key)
    print(f"SIGTERM to process 1 of 2 after step 3: both saved step {stopped} and exited 0; "
          f"resumed, all {steps} losses match 1 process x 4 devices to rtol 1e-5")
