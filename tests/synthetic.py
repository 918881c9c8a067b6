"""Small synthetic batches and configs shared by the model and training tests."""

import ml_collections
import numpy as np

from bert_jax.config import model_config_for
from bert_jax.masking import MaskingConfig
from bert_jax.training.step import StepConfig

VOCAB = 200
SPECIAL_IDS = (0, 1, 2, 3, 4)  # [PAD] [UNK] [CLS] [SEP] [MASK]


def batch(batch_size=16, seq_len=32, seed=0, min_len=10):
    """A padded batch in the pipeline's format: [CLS] a [SEP] b [SEP] then padding."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, seq_len + 1, batch_size)
    mask = (np.arange(seq_len)[None] < lengths[:, None]).astype(np.int32)
    ids = rng.integers(5, VOCAB, (batch_size, seq_len)).astype(np.int32)
    split = lengths // 2
    types = ((np.arange(seq_len)[None] > split[:, None]) & (mask == 1)).astype(np.int32)
    ids[:, 0] = 2
    ids[np.arange(batch_size), split] = 3
    ids[np.arange(batch_size), lengths - 1] = 3
    ids *= mask
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types,
            "word_start": mask.copy(),
            "example_index": np.arange(batch_size, dtype=np.int32) + seed * batch_size,
            "epoch": np.zeros(batch_size, np.int32),
            "next_sentence_label": rng.integers(0, 2, batch_size).astype(np.int32)}


def step_config(dropout=0.0, **model_overrides):
    model = model_config_for("tiny", vocab_size=VOCAB, hidden_dropout=dropout,
                             attention_dropout=dropout, **model_overrides)
    masking = MaskingConfig(vocab_size=VOCAB, mask_id=4, special_ids=SPECIAL_IDS,
                            max_predictions=6)
    return StepConfig(model=model, masking=masking)


def train_config(num_steps=20, learning_rate=1e-3, optimizer="adamw"):
    return ml_collections.ConfigDict(dict(
        learning_rate=learning_rate, warmup_steps=2, num_steps=num_steps, end_learning_rate=0.0,
        adam_b1=0.9, adam_b2=0.999, adam_eps=1e-6, weight_decay=0.01, max_grad_norm=1.0,
        optimizer=optimizer))
