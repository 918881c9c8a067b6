"""Small synthetic batches and configs shared by the model and training tests."""

import ml_collections
import numpy as np

import dataclasses

from bert_jax.config import family_config, model_config_for
from bert_jax.masking import MaskingConfig, coarse_config
from bert_jax.training.step import StepConfig

VOCAB = 200
COARSE_VOCAB = 300  # AMBERT's coarse ids; the same five specials at 0..4
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


def with_coarse(batch_, seed=0, phrase_rate=0.4):
    """`batch_` with AMBERT's coarse_start/coarse_ids: specials are coarse tokens of their own,
    other real tokens start one with probability 1 - phrase_rate (else they continue the
    previous); coarse ids are random non-special ids, a few of them [UNK] (1)."""
    rng = np.random.default_rng(seed + 1000)
    ids, mask = batch_["input_ids"], batch_["attention_mask"]
    special = np.isin(ids, SPECIAL_IDS)
    after_special = np.concatenate([np.ones_like(special[:, :1]), special[:, :-1]], axis=1)
    start = (special | after_special | (rng.random(ids.shape) >= phrase_rate)) & (mask == 1)
    coarse = rng.integers(5, COARSE_VOCAB, ids.shape)
    coarse = np.where(rng.random(ids.shape) < 0.05, 1, coarse)
    coarse = np.where(ids == 2, 2, np.where(ids == 3, 3, coarse))
    return dict(batch_, coarse_start=start.astype(np.int32),
                coarse_ids=np.where(start, coarse, 0).astype(np.int32))


def ambert_step_config(variant="shared", replace_unit="word", dropout=0.0):
    model = family_config("ambert", "tiny", vocab_size=VOCAB, coarse_vocab_size=COARSE_VOCAB,
                          ambert_variant=variant, hidden_dropout=dropout,
                          attention_dropout=dropout)
    masking = dataclasses.replace(step_config().masking, strategy="coarse",
                                  replace_unit=replace_unit)
    return StepConfig(model=model, masking=masking, coarse_masking=coarse_config(
        masking, vocab_size=COARSE_VOCAB, mask_id=4, special_ids=SPECIAL_IDS))


def crashed_copy(reference: str, workdir: str, lost_steps, rows_through: int) -> None:
    """`workdir` as a run of `reference` killed after logging step `rows_through` would leave
    it: the same files, without the checkpoints of `lost_steps` (never saved) and without
    the metrics rows past `rows_through`."""
    import json
    import os
    import shutil

    from bert_jax.metrics.writers import read_metrics

    shutil.copytree(reference, workdir)
    for step in lost_steps:
        shutil.rmtree(os.path.join(workdir, "checkpoints", step))
    path = os.path.join(workdir, "metrics.jsonl")
    rows = read_metrics(path)
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows if r["step"] <= rows_through)
