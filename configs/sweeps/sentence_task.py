"""BERT's sentence-level objective, ablated: NSP (BERT) vs SOP (ALBERT) vs none (RoBERTa).

The shape of RoBERTa's table 2 and ALBERT's table 5 at tiny scale: the tiny BERT on the
embedded corpus, all else equal, with sentence pairs and next-sentence prediction, sentence
pairs and sentence-order prediction, or packed single-segment rows and MLM alone. The three
fields move together (a zipped axis): the data's instances and the model's head must agree.

    python -m experiments.sweep --config configs/sweeps/sentence_task.py --workdir sweeps/sentence_task
"""

import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.base = "configs/pretrain/bert_tiny.py"  # 2 layers x 128, 8k WordPiece, batch 128 x 64
    # Every point: half bert_tiny's steps (3 points fit in well under 30 minutes on 2 cores).
    c.overrides = {"train": {"num_steps": 600, "eval_every": 200, "checkpoint_every": 200,
                             "fill_in_examples": 0}}
    c.product = {}
    c.zipped = {"sentence_task": {
        "data": {"sentence_task": ("nsp", "sop", "none")},
        "model": {"next_sentence": (True, False, False), "sentence_order": (False, True, False)},
    }}
    c.seeds = (0,)
    return c
