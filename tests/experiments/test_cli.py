"""The pretrain CLI turns bad command lines into one-line errors, before any work."""

import subprocess
import sys

import pytest

from tests.experiments.runs import ROOT


@pytest.mark.parametrize("flag,message", [
    ("--config.train.batchsize=5", 'unknown config field in the command line: \'batchsize\'; '
                                   'Did you mean "batch_size"'),
    ("--config.train.batch_size=abc", "invalid literal for int()"),
    ("--config.model.num_heads=5", "model.hidden_size (128) is not divisible by "
                                   "model.num_heads (5)"),
])
def test_bad_command_line(tmp_path, flag, message):
    proc = subprocess.run([sys.executable, "-m", "experiments.pretrain",
                           f"--workdir={tmp_path / 'w'}", flag], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "error: " in proc.stderr and message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "w" / "checkpoints").exists()
