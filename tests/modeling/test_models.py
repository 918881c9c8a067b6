"""Properties of the BERT model: shapes, padding invariance, init scale, layer variants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.config import model_config_for
from bert_jax.modeling.models import BertForPreTraining, init_params
from tests import synthetic


def _apply(model, params, *args, **kwargs):
    """Jitted apply: eager Flax runs op by op and is many times slower on CPU."""
    return jax.jit(lambda p, a: model.apply({"params": p}, *a, **kwargs))(params, args)


def _model(**overrides):
    fields = dict(vocab_size=synthetic.VOCAB, hidden_dropout=0.0, attention_dropout=0.0)
    config = model_config_for("tiny", **{**fields, **overrides})
    model = BertForPreTraining(config)
    return model, init_params(model, jax.random.key(0))


def test_shapes_and_gathered_mlm():
    model, params = _model()
    b = synthetic.batch(batch_size=3, seq_len=16)
    positions = jnp.array([[1, 2, 3], [4, 5, 6], [0, 0, 0]])
    out = _apply(model, params, b["input_ids"], b["attention_mask"],
                      b["token_type_ids"], positions)
    # Given positions, the last layer ran at [CLS] and those only (test_last_layer_subset).
    assert "last_hidden_state" not in out
    assert out["pooled_output"].shape == (3, 128)
    assert out["mlm_logits"].shape == (3, 3, synthetic.VOCAB)
    assert out["nsp_logits"].shape == (3, 2)
    full = _apply(model, params, b["input_ids"], b["attention_mask"],
                       b["token_type_ids"])
    assert full["mlm_logits"].shape == (3, 16, synthetic.VOCAB)
    assert full["last_hidden_state"].shape == (3, 16, 128)
    # The gathered head equals the all-positions head at those positions.
    np.testing.assert_allclose(out["mlm_logits"][1],
                               full["mlm_logits"][1, 4:7], rtol=1e-5, atol=1e-5)


def test_padding_does_not_change_real_positions():
    model, params = _model()
    b = synthetic.batch(batch_size=2, seq_len=24, min_len=12)
    length = int(b["attention_mask"][0].sum())
    cut = {k: v[:1, :length] for k, v in b.items() if v.ndim == 2}
    short = _apply(model, params, cut["input_ids"], cut["attention_mask"],
                        cut["token_type_ids"])
    padded_ids = b["input_ids"][:1].copy()
    padded_ids[0, length:] = 77  # garbage under the padding must not leak into real positions
    long = _apply(model, params, padded_ids, b["attention_mask"][:1],
                       b["token_type_ids"][:1])
    np.testing.assert_allclose(long["last_hidden_state"][0, :length],
                               short["last_hidden_state"][0], atol=2e-5)
    np.testing.assert_allclose(long["pooled_output"], short["pooled_output"], atol=2e-5)


def test_init_is_normal_002_and_tied_decoder():
    model, params = _model()
    emb = np.asarray(params["embeddings"]["word_embeddings"]["embedding"])
    assert abs(emb.std() - 0.02) < 0.002 and abs(emb.mean()) < 0.002
    assert "decoder" not in params["mlm_head"]  # decoder weight is the embedding table
    np.testing.assert_array_equal(params["mlm_head"]["bias"], 0.0)


def _backend_compiles(fn):
    """How many XLA programs `fn()` compiles (persistent-cache hits count none)."""
    names = []
    listener = lambda name, *_, **__: names.append(name)
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        jax.block_until_ready(fn())
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    return names.count("/jax/core/compile/backend_compile_duration")


def test_init_params_is_one_program():
    """Flax's eager init compiles every initializer as an XLA program of its own; init_params
    is jitted. Sizes no other test uses, so no compiled operation is reused."""
    model = BertForPreTraining(model_config_for("tiny", vocab_size=37, intermediate_size=88))
    key = jax.random.key(5)
    assert _backend_compiles(lambda: init_params(model, key)) <= 1
    eager = _backend_compiles(lambda: init_params.__wrapped__(model, key))
    assert eager > 10  # what the first assertion guards against


@pytest.mark.parametrize("overrides", [dict(scan_layers=False), dict(remat="full"),
                                       dict(remat="dots"), dict(remat="activation"),
                                       dict(scan_unroll=2), dict(scan_unroll=0)])
def test_layer_variants_match_scanned(overrides):
    """Unrolled and remat'ed stacks compute the same function as the scanned one (one layer
    per loop iteration)."""
    model, params = _model(scan_unroll=1)
    other, other_params = _model(**overrides)
    if not overrides.get("scan_layers", True):
        stacked = params["encoder"]["layers"]["block"]
        other_params = dict(other_params)
        other_params["encoder"] = {f"layer_{i}": jax.tree.map(lambda x: x[i], stacked)
                                   for i in range(2)}
        other_params = {**params, "encoder": other_params["encoder"]}
    else:
        other_params = params
    b = synthetic.batch(batch_size=2, seq_len=16)
    args = (b["input_ids"], b["attention_mask"], b["token_type_ids"])
    def loss_and_grad(m, p):
        loss = lambda p: m.apply({"params": p}, *args)["mlm_logits"].sum()
        return jax.jit(jax.value_and_grad(loss))(p)
    l1, g1 = loss_and_grad(model, params)
    l2, g2 = loss_and_grad(other, other_params)
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    np.testing.assert_allclose(g1["embeddings"]["word_embeddings"]["embedding"],
                               g2["embeddings"]["word_embeddings"]["embedding"],
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("act", ["gelu", "gelu_tanh"])
def test_remat_activation_keeps_only_the_matmul_output(act):
    """remat="activation" keeps two [B, L, I] tensors per layer for the backward pass (the
    matmul's output and the activation's, the next matmul's input) where autodiff of the
    GELU keeps more: the bytes this saves are the point of the option."""
    from jax._src.ad_checkpoint import saved_residuals
    b = synthetic.batch(batch_size=2, seq_len=16)
    args = (b["input_ids"], b["attention_mask"], b["token_type_ids"])
    counts = {}
    for remat in ("none", "activation"):
        model, params = _model(remat=remat, hidden_act=act, scan_layers=False)
        loss = lambda p: model.apply({"params": p}, *args)["mlm_logits"].sum()
        width = model.config.intermediate_size
        counts[remat] = sum(r.shape == (2, 16, width) for r, _ in saved_residuals(loss, params))
    layers = model.config.num_layers
    assert counts["activation"] == 2 * layers
    assert counts["none"] >= 3 * layers


@pytest.mark.parametrize("scan_unroll,loops", [(0, 0), (1, 1), (2, 0)])
def test_scan_unroll_auto_runs_all_layers_in_one_piece_on_a_cpu(scan_unroll, loops):
    """0 ("auto") is all layers per iteration on a CPU (this suite's backend), which leaves
    no loop at all; 1 keeps the loop over layers."""
    model, params = _model(scan_unroll=scan_unroll)
    b = synthetic.batch(batch_size=2, seq_len=16)
    loss = lambda p: model.apply({"params": p}, b["input_ids"], b["attention_mask"],
                                 b["token_type_ids"])["mlm_logits"].sum()
    assert jax.jit(loss).lower(params).as_text().count("stablehlo.while") == loops


def test_attention_paths_agree_without_dropout():
    """The explicit softmax path (used with attention dropout) equals dot_product_attention
    when the dropout rate is zero in effect."""
    model, params = _model()
    lossy, _ = _model(attention_dropout=1e-9)  # forces the explicit path when not deterministic
    b = synthetic.batch(batch_size=2, seq_len=16)
    args = (b["input_ids"], b["attention_mask"], b["token_type_ids"])
    ref = _apply(model, params, *args)["last_hidden_state"]
    out = _apply(lossy, params, *args, deterministic=False,
                      rngs={"dropout": jax.random.key(1)})["last_hidden_state"]
    np.testing.assert_allclose(out, ref, atol=1e-4)


def test_bfloat16_compute_keeps_float32_params_and_outputs():
    model, params = _model(dtype="bfloat16")
    b = synthetic.batch(batch_size=2, seq_len=16)
    out = _apply(model, params, b["input_ids"], b["attention_mask"],
                      b["token_type_ids"])
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
    assert out["mlm_logits"].dtype == jnp.float32
    ref_model, _ = _model()
    ref = _apply(ref_model, params, b["input_ids"], b["attention_mask"],
                          b["token_type_ids"])
    np.testing.assert_allclose(out["last_hidden_state"], ref["last_hidden_state"], atol=0.1)


def test_bfloat16_residual_stream():
    """model.residual_dtype=bfloat16: LayerNorm outputs (the residual stream) are bf16, the
    model's outputs and parameters stay float32, and the result is within bf16 rounding of
    the float32-residual model; the default keeps the stream float32."""
    b = synthetic.batch(batch_size=2, seq_len=16)
    args = (b["input_ids"], b["attention_mask"], b["token_type_ids"])
    ref_model, params = _model(dtype="bfloat16", scan_layers=False)
    model, _ = _model(dtype="bfloat16", scan_layers=False, residual_dtype="bfloat16")

    def layer_norm_dtypes(m):
        _, state = m.apply({"params": params}, *args, capture_intermediates=True,
                           mutable=["intermediates"])
        block = state["intermediates"]["encoder"]["layer_1"]
        return {block[name]["__call__"][0].dtype
                for name in ("attention_LayerNorm", "output_LayerNorm")}

    assert layer_norm_dtypes(model) == {jnp.dtype(jnp.bfloat16)}
    assert layer_norm_dtypes(ref_model) == {jnp.dtype(jnp.float32)}
    out, ref = _apply(model, params, *args), _apply(ref_model, params, *args)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(out))
    for key in ("last_hidden_state", "mlm_logits"):
        err = np.linalg.norm(out[key] - ref[key]) / np.linalg.norm(ref[key])
        assert 0 < err < 2e-2, (key, err)
