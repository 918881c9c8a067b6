"""AMBERT's model: on-device compaction of the coarse tokens, and which parameters each
variant has (shared: BERT's encoder once; combo: two encoders; hybrid: one)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.config import family_config
from bert_jax.modeling.ambert import AmbertForPreTraining, compact_coarse
from bert_jax.modeling.models import BertForPreTraining, init_params, pretraining_model


def _coarse_batch(seed=0, batch=6, length=20):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, length + 1, batch)
    mask = (np.arange(length)[None] < lengths[:, None]).astype(np.int32)
    start = ((rng.random((batch, length)) < 0.6) | (np.arange(length)[None] == 0)) * mask
    ids = np.where(start == 1, rng.integers(5, 300, (batch, length)), 0) * mask
    types = (np.arange(length)[None] > lengths[:, None] // 2).astype(np.int32) * mask
    return ids.astype(np.int32), start.astype(np.int32), mask, types


def _compact_reference(ids, start, mask, types):
    """Plain loops: coarse token k of a row is its k-th real position with a start."""
    batch, length = ids.shape
    out = {k: np.zeros((batch, length), np.int32)
           for k in ("ids", "token_type_ids", "attention_mask", "index")}
    for b in range(batch):
        k = -1
        for j in range(length):
            if not mask[b, j]:
                continue
            if start[b, j]:
                k += 1
                out["ids"][b, k], out["token_type_ids"][b, k] = ids[b, j], types[b, j]
                out["attention_mask"][b, k] = 1
            out["index"][b, j] = k
    return out


def test_compaction_equals_reference():
    ids, start, mask, types = _coarse_batch()
    start[0, 5:] = 0  # a long coarse token
    start[1, 3] = 1
    mask[1, 3:] = 0  # a start on padding is not a coarse token
    got = jax.jit(compact_coarse)(ids, start, mask, types)
    ref = _compact_reference(ids, start, mask, types)
    for key in ref:
        np.testing.assert_array_equal(np.asarray(got[key]), ref[key], err_msg=key)


def _tiny(variant, **kw):
    return family_config("ambert", "tiny", vocab_size=200, coarse_vocab_size=300,
                         ambert_variant=variant, **kw)


def _shapes(tree):
    return jax.tree.map(lambda x: x.shape, tree)


@pytest.mark.parametrize("scan_layers", [True, False])
def test_parameters_of_each_variant(scan_layers):
    bert = init_params(BertForPreTraining(family_config(
        "bert", "tiny", vocab_size=200, next_sentence=False, scan_layers=scan_layers)),
        jax.random.key(0))
    params = {v: init_params(pretraining_model(_tiny(v, scan_layers=scan_layers)),
                             jax.random.key(0)) for v in ("shared", "combo", "hybrid")}
    coarse = {"coarse_embeddings", "coarse_mlm_head"}
    for variant in ("shared", "hybrid"):  # BERT's modules once + the coarse side
        p = params[variant]
        assert set(p) == set(bert) | coarse
        for name in bert:
            assert _shapes(p[name]) == _shapes(bert[name]), name
        assert p["coarse_embeddings"]["word_embeddings"]["embedding"].shape == (300, 128)
        assert p["coarse_mlm_head"]["bias"].shape == (300,)
    combo = params["combo"]
    assert set(combo) == set(bert) | coarse | {"coarse_encoder", "coarse_pooler"}
    assert _shapes(combo["coarse_encoder"]) == _shapes(bert["encoder"])
    count = lambda p: sum(x.size for x in jax.tree.leaves(p))
    extra = count({k: params["shared"][k] for k in coarse})
    assert count(params["shared"]) == count(bert) + extra
    assert count(combo) == count(params["shared"]) + count(bert["encoder"]) + count(
        bert["pooler"])


@pytest.mark.parametrize("variant", ["shared", "combo", "hybrid"])
def test_outputs_and_padding_invariance(variant):
    """Shapes, and the real positions' outputs ignore what padding holds."""
    config = _tiny(variant, hidden_dropout=0.0, attention_dropout=0.0)
    model = AmbertForPreTraining(config)
    params = init_params(model, jax.random.key(1))
    ids, start, mask, types = _coarse_batch(seed=2, batch=3, length=12)
    fine_ids = np.where(mask == 1, np.arange(12)[None] + 10, 0).astype(np.int32)
    run = lambda f, c: model.apply({"params": params}, f, mask, types, coarse_ids=c,
                                   coarse_start=start)
    out = run(fine_ids, ids)
    assert out["last_hidden_state_fine"].shape == (3, 12, 128)
    assert out["last_hidden_state_coarse"].shape == (3, 12, 128)
    assert out["coarse_mlm_logits"].shape == (3, 12, 300)
    assert out["pooled_output_coarse"].shape == (3, 128)
    noisy = run(np.where(mask == 1, fine_ids, 7), np.where(mask == 1, ids, 9))
    cmask = np.asarray(out["coarse_attention_mask"]).astype(bool)
    for key, m in (("last_hidden_state_fine", mask.astype(bool)),
                   ("last_hidden_state_coarse", cmask)):
        np.testing.assert_allclose(np.asarray(noisy[key])[m], np.asarray(out[key])[m],
                                   atol=1e-5, err_msg=key)
