"""Which tokens MLM predicts, ablated: strategy (token / whole-word / n-gram / span) x rate.

The shape of SpanBERT's masking-scheme table (Joshi et al. 2020, table 6) and of Wettig et
al. 2023 ("Should you mask 15% in MLM?") at tiny scale: the tiny BERT, MLM only (no sentence
task, packed rows, so masking is the one thing that changes), on the embedded corpus. The
rate and the number of prediction slots move together (a zipped axis): 15% of 64 tokens fits
in bert_tiny's 10 slots, 30% needs 20. Accuracies at different rates are over different
targets (more context is hidden at 30%), so compare strategies within a rate.

    python -m experiments.sweep --config configs/sweeps/masking.py --workdir sweeps/masking
"""

import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.base = "configs/pretrain/bert_tiny.py"  # 2 layers x 128, 8k WordPiece, batch 128 x 64
    c.overrides = {
        "data": {"sentence_task": "none"},  # packed single-segment rows (RoBERTa's input)
        "model": {"next_sentence": False},
        # 8 points x 400 steps: about a third of bert_tiny's budget each.
        "train": {"num_steps": 400, "eval_every": 200, "checkpoint_every": 200,
                  "fill_in_examples": 0},
    }
    c.product = {"masking": {"strategy": ("token", "whole_word", "ngram", "span")}}
    c.zipped = {"mask_rate": {"masking": {"mask_rate": (0.15, 0.3),
                                          "max_predictions_per_seq": (10, 20)}}}
    c.seeds = (0,)
    return c
