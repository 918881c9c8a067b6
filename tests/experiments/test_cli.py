"""The pretrain CLI turns bad command lines into one-line errors, before any work."""

import subprocess
import sys

import pytest

from tests.experiments.runs import ROOT


@pytest.mark.parametrize("flags,message", [
    (["--config.train.batchsize=5"], 'unknown config field in the command line: \'batchsize\'; '
                                   'Did you mean "batch_size"'),
    (["--config.train.batch_size=abc"], "invalid literal for int()"),
    (["--config.model.num_heads=5"], "model.hidden_size (128) is not divisible by "
                                     "model.num_heads (5)"),
    (["--config.data.corpus=text_files", "--config.data.text_files=('{tmp}/empty.txt',)"],
     "yields zero instances"),
    (["--config.data.corpus=text_files", "--config.data.text_files=('{tmp}/latin1.txt',)"],
     "latin1.txt, line 1: not valid UTF-8"),
    (["--config.data.vocab_path={tmp}/missing.txt"], "missing.txt"),
])
def test_bad_command_line(tmp_path, flags, message):
    (tmp_path / "empty.txt").write_text("\n\n\n")
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9 au lait.\nSecond line.\n")
    flags = [f.format(tmp=tmp_path) for f in flags]
    flags += [f"--config.data.tfds_data_dir={tmp_path / 'tfds'}",
              f"--config.data.cache_dir={tmp_path / 'cache'}"]
    proc = subprocess.run([sys.executable, "-m", "experiments.pretrain",
                           f"--workdir={tmp_path / 'w'}", *flags], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "error: " in proc.stderr and message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    checkpoints = tmp_path / "w" / "checkpoints"
    assert not checkpoints.exists() or not any(checkpoints.iterdir())  # nothing trained
