"""Pretrain a BERT-family encoder.

    python -m experiments.pretrain                      # tiny BERT on the embedded corpus
    python -m experiments.pretrain --config configs/pretrain/bert_base.py \
        --workdir runs/base --config.train.batch_size=512

Flags parse into one ml_collections config; all the work is `train_and_evaluate`. Restarting
with the same --workdir resumes from its newest checkpoint.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported

from absl import app, flags, logging
from ml_collections import config_flags


try:
    _CONFIG = config_flags.DEFINE_config_file(
        "config", "configs/pretrain/bert_tiny.py", "Pretraining config file (a get_config()).",
        lock_config=True)
except (AttributeError, KeyError) as _err:  # ml_collections applies --config.<field> here
    _hint = _err.args[0] if _err.args else _err
    while isinstance(_hint, BaseException) and _hint.args:  # AttributeError(KeyError(msg))
        _hint = _hint.args[0]
    _hint = str(_hint).replace("\n", "; ")
    sys.exit(f"error: unknown config field in the command line: {_hint}")
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
    logging.get_absl_handler().addFilter(
        lambda record: "Using custom data configuration" not in record.getMessage())
    from bert_jax.training import distributed  # after flags: --help stays fast

    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    import tensorflow_datasets as tfds

    tfds.display_progress_bar(False)  # its nested bars garble logs; we print our own lines
    from bert_jax.training.loop import USER_ERRORS, train_and_evaluate

    config = _CONFIG.value
    workdir = _WORKDIR.value or os.path.join(
        "runs", os.path.splitext(os.path.basename(config_flags.get_config_filename(
            flags.FLAGS["config"])))[0])
    try:
        train_and_evaluate(config, workdir)
    except USER_ERRORS as err:
        sys.exit(f"error: {err}")


def parse_flags(argv):
    """absl's parser, but a misspelt --config.<field> gets one line, not a traceback."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        sys.exit(f"error: {err}\nPass --helpfull to see the flags.")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
