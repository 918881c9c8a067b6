"""Synthetic fine-tuning feature batches (the arrays data/tasks' featurize makes) for the
step and loop tests, with labels that depend on the tokens so that a model can learn them."""

import dataclasses

import numpy as np

from bert_jax.config import model_config_for
from bert_jax.training.finetune_step import FinetuneStepConfig
from tests import synthetic

NUM_LABELS = {"classification": 3, "regression": 1, "token": 5, "span": 2}


def step_config(kind: str, dropout: float = 0.0, **model_overrides) -> FinetuneStepConfig:
    model = model_config_for("tiny", vocab_size=synthetic.VOCAB, hidden_dropout=dropout,
                             attention_dropout=dropout, **model_overrides)
    return FinetuneStepConfig(model=model, kind=kind, num_labels=NUM_LABELS[kind])


def features(kind: str, batch_size: int = 16, seq_len: int = 32, seed: int = 0) -> dict:
    """Feature rows of `kind` plus `weight` (all 1) and `example_index`."""
    b = synthetic.batch(batch_size, seq_len, seed=seed)
    rows = {k: b[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    ids, mask = rows["input_ids"], rows["attention_mask"]
    rows["weight"] = np.ones(batch_size, np.float32)
    rows["example_index"] = np.arange(batch_size, dtype=np.int32) + seed * batch_size
    if kind == "classification":
        rows["label"] = (ids[:, 1] % 3).astype(np.int32)
    elif kind == "regression":
        rows["label"] = (ids[:, 1] % 5).astype(np.float32) / 4.0
    elif kind == "token":
        rows["labels"] = (ids % 5).astype(np.int32)
        rows["label_weights"] = (mask * (ids > 4)).astype(np.float32)
    else:
        length = mask.sum(1)
        rows["start_position"] = (1 + ids[:, 1] % (length // 2 - 1)).astype(np.int32)
        rows["end_position"] = rows["start_position"] + 1
    return rows


def pad_rows(rows: dict, extra: int) -> dict:
    """`rows` plus `extra` rows of garbage with weight 0 (as an eval batch's padding)."""
    rng = np.random.default_rng(123)

    def pad(name, x):
        filler = rng.integers(0, 3, (extra,) + x.shape[1:]).astype(x.dtype)
        if name == "weight":
            filler[:] = 0
        if name == "attention_mask":
            filler[:, 0] = 1
        return np.concatenate([x, filler])
    return {k: pad(k, v) for k, v in rows.items()}


def with_dropout(cfg: FinetuneStepConfig, rate: float) -> FinetuneStepConfig:
    model = dataclasses.replace(cfg.model, hidden_dropout=rate, attention_dropout=rate)
    return dataclasses.replace(cfg, model=model)
