"""Helpers for tests that run `python -m experiments.pretrain` as real processes."""

import json
import os
import subprocess
import sys

from tests.data.conftest import write_google_corpus

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_CONFIG = '''
from bert_jax.config import default_pretrain_config, model_config_dict

def get_config():
    c = default_pretrain_config()
    c.seed = 11
    c.model = model_config_dict("tiny", vocab_size=8192, hidden_size=32, num_heads=2,
                                intermediate_size=64, max_position_embeddings=32)
    c.data.update(dict(corpus="text_files", text_files=[{corpus!r}], tfds_data_dir={tfds!r},
                       cache_dir={cache!r}, max_seq_len=32, dupe_factor=1))
    c.masking.max_predictions_per_seq = 5
    c.train.update(dict(num_steps={steps}, batch_size=8, log_every=1, checkpoint_every=3,
                        eval_every=0, eval_batches=1, warmup_steps=2, learning_rate=1e-3,
                        max_to_keep=10, plots=False))
    return c
'''


def write_config(root, num_steps: int) -> str:
    """A small pretraining config (dropout on, as by default) on a made-up text corpus."""
    corpus = write_google_corpus(root / "corpus.txt", 200, seed=4)
    path = root / "config.py"
    path.write_text(_CONFIG.format(corpus=str(corpus), tfds=str(root / "tfds"),
                                   cache=str(root / "cache"), steps=num_steps))
    return str(path)


def start(config_file, workdir, *flags, devices=None):
    env = dict(os.environ)
    if devices:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.pretrain", f"--config={config_file}",
         f"--workdir={workdir}", *flags], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, env=env)


def finish(proc, timeout=300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def rows(workdir, split=None):
    """metrics.jsonl rows (a last line cut by a kill is ignored)."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    found = [json.loads(line) for line in open(path).read().splitlines() if line.endswith("}")]
    return [r for r in found if split is None or r["split"] == split]
