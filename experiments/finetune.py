"""Fine-tune a BERT-family encoder on GLUE, SQuAD or CoNLL-2003.

    python -m experiments.finetune                       # demo: SST-2 samples, tiny BERT
    python -m experiments.finetune --config configs/finetune/glue.py:mrpc --workdir runs/mrpc \
        --config.init_from=PATH --config.data.local_dir=/data/glue

Flags parse into one ml_collections config; all the work is `finetune`. Restarting with the
same --workdir resumes from its newest checkpoint.
"""

if __name__ == "__main__":  # first, since it may restart the process: huge pages for XLA:CPU
    from bert_jax.training.host_memory import reexec_with_huge_pages

    reexec_with_huge_pages()

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported

from absl import app, flags, logging
from ml_collections import config_flags

try:
    _CONFIG = config_flags.DEFINE_config_file(
        "config", "configs/finetune/glue.py", "Fine-tuning config file (a get_config(); "
        "file.py:<arg> passes an argument, e.g. glue.py:mrpc).", lock_config=True)
except (AttributeError, KeyError) as _err:  # ml_collections applies --config.<field> here
    sys.exit(f"error: unknown config field in the command line: {_err}")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Run directory (config.json, metrics.jsonl, checkpoints/, best/, "
    "predictions/). Default: runs/finetune_<task>.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # orbax/TFDS INFO chatter
    from bert_jax.training.finetune import finetune
    from bert_jax.training.loop import USER_ERRORS

    config = _CONFIG.value
    try:
        finetune(config, _WORKDIR.value or os.path.join("runs", f"finetune_{config.task}"))
    except USER_ERRORS as err:
        sys.exit(f"error: {err}")


def parse_flags(argv):
    """absl's parser, but a bad --config.<field> or config argument gets one line."""
    try:
        return flags.FLAGS(argv)
    except (flags.Error, ValueError) as err:
        sys.exit(f"error: {err}\nPass --helpfull to see the flags.")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
