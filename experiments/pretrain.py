"""Pretrain a BERT-family encoder.

    python -m experiments.pretrain                      # tiny BERT on the embedded corpus
    python -m experiments.pretrain --config configs/pretrain/bert_base.py \
        --workdir runs/base --config.train.batch_size=512

Flags parse into one ml_collections config; all the work is `train_and_evaluate`. Restarting
with the same --workdir resumes from its newest checkpoint.
"""

if __name__ == "__main__":  # first, since it may restart the process: huge pages for XLA:CPU
    from bert_jax.training.host_memory import reexec_with_huge_pages

    reexec_with_huge_pages()

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported

from absl import app, flags, logging
from ml_collections import config_flags

from experiments import cli


_CONFIG = cli.define_config_file("configs/pretrain/bert_tiny.py",
                                 "Pretraining config file (a get_config()).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "Multi-process runs: host:port of process 0 (jax.distributed). "
    "Not needed under SLURM, Open MPI or on a TPU slice, where JAX reads the environment.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-process runs: process count.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-process runs: this process's rank.")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Run directory (config.json, metrics.jsonl, checkpoints/, tensorboard/, "
    "plots/). Default: runs/<config file name>.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    # Library INFO chatter (orbax, TFDS) drowns the progress bar; warnings still show.
    logging.set_verbosity(logging.WARNING)
    from bert_jax.training import distributed  # after flags: --help stays fast

    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    cli.quiet_libraries()
    from bert_jax.training.loop import USER_ERRORS, train_and_evaluate

    config = _CONFIG.value
    workdir = _WORKDIR.value or os.path.join(
        "runs", os.path.splitext(os.path.basename(config_flags.get_config_filename(
            flags.FLAGS["config"])))[0])
    try:
        train_and_evaluate(config, workdir)
    except USER_ERRORS as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
