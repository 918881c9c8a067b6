"""Packed rows (data.packing="packed_documents"): a row holding several sequences, told apart
by pack_ids, computes for each sequence exactly what that sequence computes alone."""

import dataclasses

import jax
import numpy as np
import pytest

from bert_jax.config import family_config
from bert_jax.modeling.layers import packed_attention_mask
from bert_jax.modeling.models import BertForPreTraining, init_params

V, L = 300, 32
CLS, SEP = 2, 3


def _sequences(rng, lengths):
    return [np.concatenate([[CLS], rng.integers(10, V, n - 2), [SEP]]) for n in lengths]


# attention_dropout 1e-9 takes the explicit softmax path (the one training uses), 0 takes
# jax.nn.dot_product_attention's; RoBERTa counts positions from an offset.
@pytest.mark.parametrize("family,attention_dropout",
                         [("bert", 0.0), ("roberta", 1e-9), ("albert", 0.0)])
def test_packed_row_equals_its_sequences_alone(family, attention_dropout):
    # The hidden states need the full last layer; the default (last_layer_subset) computes
    # [CLS] and the MLM rows, which take their rows of the packed mask (checked below).
    config = family_config(family, "tiny", vocab_size=V, max_position_embeddings=64,
                           hidden_dropout=0.0, attention_dropout=attention_dropout,
                           last_layer_subset=False)
    model = BertForPreTraining(config)
    subset = BertForPreTraining(dataclasses.replace(config, last_layer_subset=True))
    params = init_params(model, jax.random.key(0))
    rng = np.random.default_rng(0)
    lengths = [11, 5, 9, 3]  # 28 real tokens, 4 of padding
    seqs = _sequences(rng, lengths)
    ids = np.zeros((1, L), np.int32)
    packs = np.zeros((1, L), np.int32)
    ids[0, :28] = np.concatenate(seqs)
    packs[0, :28] = np.repeat(np.arange(1, 5), lengths)
    ids[0, 28:] = 7  # garbage under the padding must not leak anywhere
    starts = np.cumsum([0] + lengths[:-1])
    positions = starts[:, None] + np.array([[1, 2]])  # two MLM positions per sequence
    kw = dict(deterministic=attention_dropout == 0.0, rngs={"dropout": jax.random.key(1)})
    run = jax.jit(lambda p, *a, **k: model.apply({"params": p}, *a, **k, **kw),
                  static_argnames=())
    packed = run(params, ids, (packs > 0).astype(np.int32), np.zeros_like(ids),
                 positions.reshape(1, -1), pack_ids=packs)
    # (A rate of 1e-9 drops nothing at 16 bits: the subset's other draws change nothing.)
    rows = subset.apply({"params": params}, ids, (packs > 0).astype(np.int32),
                        np.zeros_like(ids), positions.reshape(1, -1), pack_ids=packs, **kw)
    assert "last_hidden_state" not in rows
    np.testing.assert_allclose(rows["mlm_logits"], packed["mlm_logits"], atol=2e-5)
    for k, (seq, start) in enumerate(zip(seqs, starts)):
        alone = np.zeros((1, L), np.int32)
        alone[0, :len(seq)] = seq
        mask = (np.arange(L) < len(seq)).astype(np.int32)[None]
        ref = run(params, alone, mask, np.zeros_like(alone), np.array([[1, 2]]))
        np.testing.assert_allclose(packed["last_hidden_state"][0, start:start + len(seq)],
                                   ref["last_hidden_state"][0, :len(seq)], atol=2e-5)
        np.testing.assert_allclose(packed["mlm_logits"][0, 2 * k:2 * k + 2],
                                   ref["mlm_logits"][0], atol=2e-5)
    # Without pack ids the same row is one long sequence: the later sequences change.
    whole = run(params, ids, (packs > 0).astype(np.int32), np.zeros_like(ids))
    assert np.abs(whole["last_hidden_state"][0, 11:16]
                  - packed["last_hidden_state"][0, 11:16]).max() > 1e-2


def test_packed_attention_mask():
    packs = np.array([[1, 1, 2, 2, 2, 0]])
    m = np.asarray(packed_attention_mask(packs))[0, 0]
    expected = np.array([[1, 1, 0, 0, 0, 0],
                         [1, 1, 0, 0, 0, 0],
                         [0, 0, 1, 1, 1, 0],
                         [0, 0, 1, 1, 1, 0],
                         [0, 0, 1, 1, 1, 0],
                         [1, 1, 1, 1, 1, 0]], bool)  # padding attends to every real key
    np.testing.assert_array_equal(m, expected)
    # One sequence per row: the same as a key padding mask.
    one = np.array([[1, 1, 1, 0]])
    np.testing.assert_array_equal(np.asarray(packed_attention_mask(one))[0, 0],
                                  np.broadcast_to(one.astype(bool), (4, 4)))
