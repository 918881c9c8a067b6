"""The default run: a tiny BERT (2 layers, hidden 128) on the embedded corpus, CPU, minutes.

`python -m experiments.pretrain` with no arguments runs this. The corpus is prose every
Python installation carries (standard-library docstrings and the language reference), the
vocabulary the 8k WordPiece made for it (bert_jax/data/vocab/), so it needs no download.
Settings differ from the paper where a ten-minute run on two CPU cores needs it: a higher
learning rate with short warm-up, no dropout (the model underfits long before it could
overfit), and fewer prediction slots for the shorter sequences.
"""

from bert_jax.config import default_pretrain_config, model_config_dict


def get_config():
    config = default_pretrain_config()
    config.model = model_config_dict("tiny", vocab_size=8192, max_position_embeddings=64,
                                     hidden_dropout=0.0, attention_dropout=0.0)
    config.data.corpus = "embedded"
    # Docstrings are short documents: at 64 tokens 86% of each sequence is real text
    # (70% at 128), and a step costs less than half, so more updates fit in the budget.
    config.data.max_seq_len = 64
    config.masking.max_predictions_per_seq = 10  # 15% of 64, rounded up
    config.train.num_steps = 1200  # ~6 minutes of steps at ~3.4 steps/s on 2 cores
    config.train.batch_size = 128
    config.train.learning_rate = 2e-3
    config.train.warmup_steps = 100
    config.train.log_every = 50
    config.train.eval_every = 400
    config.train.eval_batches = 8
    config.train.checkpoint_every = 400
    config.train.fill_in_examples = 3
    return config
