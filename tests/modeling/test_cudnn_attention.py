"""model.attention_impl="cudnn" (cuDNN's fused attention on an NVIDIA GPU) computes what the
explicit XLA attention computes, for padded rows (sequence lengths) and packed rows (a full
mask), forward and backward. Skipped without a GPU; run on one with

    JAX_PLATFORMS=cuda python -m pytest tests/modeling/test_cudnn_attention.py
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.config import family_config
from bert_jax.modeling.models import BertForPreTraining, init_params

pytestmark = pytest.mark.skipif(jax.default_backend() != "gpu",
                                reason="cuDNN attention needs an NVIDIA GPU")

V, L, B = 1000, 128, 4


def _model(impl: str, dtype: str):
    # head_dim 64, as in every BERT size: cuDNN's kernel takes head dims up to 128.
    # Every layer at every row (the tests read last_hidden_state): with last_layer_subset
    # the last layer's gathered queries take the XLA path (layers.SelfAttention).
    config = family_config("bert", "mini", vocab_size=V, dtype=dtype, hidden_dropout=0.0,
                           attention_dropout=0.0, attention_impl=impl,
                           last_layer_subset=False)
    return BertForPreTraining(config)


def _batch(seed: int, packed: bool):
    rng = np.random.default_rng(seed)
    ids = rng.integers(10, V, (B, L)).astype(np.int32)
    lengths = np.array([L, 100, 37, 64])
    mask = (np.arange(L)[None] < lengths[:, None]).astype(np.int32)
    ids[mask == 0] = 0
    pack_ids = None
    if packed:  # rows of 3 sequences each, then padding
        cuts = np.sort(rng.integers(1, lengths[:, None], (B, 2)), axis=1)
        pack_ids = (1 + (np.arange(L)[None, None] >= cuts[:, :, None]).sum(1)) * mask
        pack_ids = pack_ids.astype(np.int32)
    positions = np.stack([rng.choice(n, 8, replace=False) for n in lengths]).astype(np.int32)
    return ids, mask, np.zeros_like(ids), positions, pack_ids


def _outputs_and_grads(impl, dtype, params, batch):
    model = _model(impl, dtype)
    ids, mask, types, positions, pack_ids = batch
    real = jnp.asarray(mask, jnp.float32)[..., None]

    def loss(p):
        out = model.apply({"params": p}, ids, mask, types, positions, pack_ids=pack_ids,
                          deterministic=True)
        hidden = out["last_hidden_state"].astype(jnp.float32) * real  # padding is free
        value = jnp.sum(hidden ** 2) + jnp.sum(out["mlm_logits"].astype(jnp.float32) ** 2)
        return value, (hidden, out["mlm_logits"].astype(jnp.float32))

    (_, outs), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
    return outs, grads


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_cudnn_attention_matches_xla(packed):
    params = init_params(_model("xla", "float32"), jax.random.key(0))
    batch = _batch(1 + packed, packed)
    ref_outs, ref_grads = _outputs_and_grads("xla", "float32", params, batch)
    xla_outs, xla_grads = _outputs_and_grads("xla", "bfloat16", params, batch)
    cud_outs, cud_grads = _outputs_and_grads("cudnn", "bfloat16", params, batch)
    for cud, xla, ref in zip(cud_outs, xla_outs, ref_outs):
        assert np.isfinite(np.asarray(cud)).all()
        # cuDNN in bf16 is as close to the float32 reference as XLA in bf16 is (both
        # round the same matmul inputs), and well inside bf16's error.
        assert _rel(cud, ref) < max(2 * _rel(xla, ref), 1e-3), (_rel(cud, ref), _rel(xla, ref))
        assert _rel(cud, ref) < 2e-2
    # The key bias adds q.b_k to every logit of a query row, which softmax ignores: its exact
    # gradient is zero, the float32 one is rounding (~1e-7) and the bf16 ones are larger
    # rounding, so no ratio of errors means anything there. It must stay small next to the
    # query bias's gradient.
    attention = lambda g: g["encoder"]["layers"]["block"]["attention"]
    key_bias = np.linalg.norm(np.asarray(attention(cud_grads)["key"]["bias"], np.float64))
    assert key_bias < 2e-2 * np.linalg.norm(np.asarray(attention(ref_grads)["query"]["bias"]))
    attention(cud_grads)["key"].pop("bias")
    attention(xla_grads)["key"].pop("bias")
    attention(ref_grads)["key"].pop("bias")
    flat_cud, flat_xla, flat_ref = (jax.tree.leaves(g) for g in (cud_grads, xla_grads,
                                                                  ref_grads))
    for cud, xla, ref in zip(flat_cud, flat_xla, flat_ref):
        assert np.isfinite(np.asarray(cud)).all()
        if not np.any(ref):  # parameters the loss does not reach (pooler, NSP head)
            assert not np.any(cud)
            continue
        assert _rel(cud, ref) < max(2 * _rel(xla, ref), 2e-3), (_rel(cud, ref), _rel(xla, ref))


def test_cudnn_packed_rows_ignore_the_other_sequences():
    """Changing one packed sequence's tokens leaves the other sequences' outputs alone."""
    model = _model("cudnn", "bfloat16")
    params = init_params(model, jax.random.key(0))
    ids, mask, types, positions, pack_ids = _batch(5, packed=True)
    run = jax.jit(lambda i: model.apply({"params": params}, i, mask, types, positions,
                                        pack_ids=pack_ids, deterministic=True)
                  ["last_hidden_state"])
    changed = ids.copy()
    changed[pack_ids == 2] = (changed[pack_ids == 2] + 1) % V
    before, after = np.asarray(run(ids), np.float32), np.asarray(run(changed), np.float32)
    others = (pack_ids != 2) & (pack_ids > 0)
    np.testing.assert_array_equal(before[others], after[others])
    assert np.abs(before[pack_ids == 2] - after[pack_ids == 2]).max() > 1e-2
