"""Two processes x 2 CPU devices (jax.distributed on localhost, gloo collectives) give the
same losses as one process x 4 devices, and resume like it."""

import socket

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
