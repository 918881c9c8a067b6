"""How full the rows of each single-segment packing are, on a pretraining config's corpus.

    python -m experiments.packing_stats                      # RoBERTa-tiny, embedded corpus
    python -m experiments.packing_stats --config.data.corpus=text_files \
        --config.data.text_files=../shared/data/wikitext-2/wiki.valid.tokens

Makes (or reads from the cache) the train instances of `--config` with data.sentence_task
"none" under each packing, and prints per packing: rows, real tokens per row, the fraction
of the L slots that are real tokens, and sequences per row. Every row costs one fixed-shape
step slot, so rows per epoch is what an epoch costs.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app
import numpy as np

from experiments import cli

_CONFIG = cli.define_config_file("configs/pretrain/roberta_tiny.py",
                                 "Pretraining config file (a get_config()).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cli.quiet_libraries()
    from bert_jax.config import ConfigError
    from bert_jax.data import DataError, instances
    from bert_jax.data.tokenizer import load_tokenizer

    config = _CONFIG.value
    data = config.data
    L = data.max_seq_len
    print(f"corpus {data.corpus!r} {list(data.text_files) if data.corpus == 'text_files' else ''}"
          f" tokenizer {data.tokenizer}, L = {L}, dupe_factor {data.dupe_factor}, "
          f"short_seq_prob {data.short_seq_prob}")
    print("| packing | rows | real tokens / row | fill | sequences / row | rows vs doc_sentences |")
    print("|---|---|---|---|---|---|")
    try:
        sep_id = load_tokenizer(data.vocab_path, data.lowercase, kind=data.tokenizer).sep_id
        arrays = {}
        for packing in instances.PACKINGS:
            with data.unlocked():
                data.sentence_task, data.packing = "none", packing
            arrays[packing] = instances.load_instances(data, "train", config.seed)
    except (ConfigError, DataError, FileNotFoundError, ValueError) as err:
        sys.exit(f"error: {err}")
    stats = {}
    for packing, a in arrays.items():
        length = np.asarray(a["length"], np.float64)
        if "pack_ids" in a:
            per_row = np.asarray(a["pack_ids"]).max(axis=1).mean()
        else:  # full_sentences: a [SEP] inside the text starts another document's part
            ids = np.asarray(a["input_ids"])
            inner = (ids == sep_id) & (np.arange(L) < length[:, None] - 1)
            per_row = 1.0 + inner.sum(axis=1).mean()
        stats[packing] = (len(length), length.mean(), per_row)
    for packing, (n, mean, per_row) in stats.items():
        print(f"| {packing} | {n:,} | {mean:.1f} | {mean / L:.1%} | {per_row:.2f} | "
              f"{n / stats['doc_sentences'][0]:.3f} |")


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
