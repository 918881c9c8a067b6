"""ALBERT's two parameter-reduction choices, ablated: cross-layer sharing x embedding size.

The shape of ALBERT's tables 3 and 4 (Lan et al. 2019: E in {64, 128, 256, 768} with all
or no layers shared, H = 768) at tiny scale: the tiny ALBERT (2 layers, H = 128, SOP,
n-gram masking, LAMB) on the embedded corpus, E in {32, 64, 128} (128 = H: the projection
is square), all layers shared or none. Every point trains the same tokens; the table's
`params` column shows what each choice saves.

    python -m experiments.sweep --config configs/sweeps/albert_sharing.py --workdir sweeps/albert_sharing
"""

import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.base = "configs/pretrain/albert_tiny.py"  # 2 layers x 128, E = 64, all shared, LAMB 3e-2
    # 6 points x 400 steps: about a third of albert_tiny's budget each.
    c.overrides = {"train": {"num_steps": 400, "eval_every": 200, "checkpoint_every": 200,
                             "fill_in_examples": 0}}
    c.product = {"model": {"share_layers": ("all", "none"), "embedding_size": (32, 64, 128)}}
    c.zipped = {}
    c.seeds = (0,)
    return c
