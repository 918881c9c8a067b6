"""Convert a BERT, RoBERTa or ALBERT checkpoint between Hugging Face, Google TF (BERT) and
bert_jax formats.

    python -m experiments.convert --src PATH --dst DIR --to {bert_jax,hf}

--src: a Hugging Face directory, a Google TF checkpoint (directory or prefix), or a bert_jax
export / pretraining workdir. --to bert_jax writes what `--config.train.init_from` and
`bert_jax.convert.load_bert_jax` read back; --to hf what `transformers` loads. All the work is
`bert_jax.convert.convert`.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported

from absl import app, flags, logging

_SRC = flags.DEFINE_string("src", None, "Checkpoint to read (HF dir, Google TF checkpoint, "
                           "bert_jax export or workdir).", required=True)
_DST = flags.DEFINE_string("dst", None, "Directory to write.", required=True)
_TO = flags.DEFINE_enum("to", None, ["bert_jax", "hf"], "Format to write.", required=True)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # JAX's backend probing is INFO chatter
    from bert_jax.convert import convert  # after flags: --help stays fast
    from bert_jax.training.checkpoint import CheckpointReadError

    try:
        out = convert(_SRC.value, _DST.value, _TO.value)
    except (FileNotFoundError, ValueError, CheckpointReadError) as err:  # ValueError covers
        sys.exit(f"error: {err}")                                        # Conversion/ConfigError
    print(f"wrote {_TO.value} checkpoint to {out}")


if __name__ == "__main__":
    app.run(main)
