"""model.last_layer_subset: given the masked positions, the last layer computes only [CLS] and
those rows. Its outputs, their gradients and the parameter layout must be those of the full
last layer in every layer layout (scanned, unrolled, shared)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.config import family_config, model_config_for
from bert_jax.modeling.models import BertForPreTraining, init_params

V, B, L, P = 400, 3, 24, 4

# Each of encoder.py's paths: the scan split in two (a stacked slice, or ALBERT's one shared
# block used twice, here with remat'ed layers, so the backward pass recomputes the subset
# layer too), the unrolled loops, partial sharing's mapped view, and one layer (no scan
# before the last) without a pooler (no [CLS] row).
LAYOUTS = {
    "scanned": dict(num_layers=3),
    "unrolled": dict(scan_layers=False),
    "albert_scanned_remat": dict(share_layers="all", embedding_size=64, remat="full"),
    "albert_unrolled": dict(share_layers="all", embedding_size=64, scan_layers=False),
    "shared_attention": dict(share_layers="attention"),
    "one_layer_no_pooler": dict(num_layers=1, pooler=False, next_sentence=False),
}


def _models(**overrides):
    cfg = model_config_for("tiny", vocab_size=V, hidden_dropout=0.0, attention_dropout=0.0,
                           **overrides)
    return (BertForPreTraining(cfg),
            BertForPreTraining(dataclasses.replace(cfg, last_layer_subset=False)))


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, V, (B, L)).astype(np.int32)
    lengths = np.array([L, 15, 7])
    mask = (np.arange(L)[None] < lengths[:, None]).astype(np.int32)
    types = (np.arange(L)[None] >= lengths[:, None] // 2).astype(np.int32) * mask
    # Positions inside each row, one repeated, and the last row's padding slots at 0.
    pos = np.stack([rng.choice(n, P, replace=False) for n in lengths]).astype(np.int32)
    pos[1, 3] = pos[1, 0]
    pos[2, 2:] = 0
    return ids, mask, types, pos


def _loss(model):
    def loss(params, ids, mask, types, pos):
        out = model.apply({"params": params}, ids, mask, types, pos)
        logits = out["mlm_logits"]
        value = jnp.sum(jax.nn.log_softmax(logits)[..., 7] * jnp.arange(P))
        if "nsp_logits" in out:
            value += jnp.sum(out["nsp_logits"][:, 1])
        return value, out
    return jax.jit(jax.value_and_grad(loss, has_aux=True))


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_subset_outputs_and_gradients_are_the_full_layers(layout):
    """The same logits and the same gradient for every parameter, the last layer's slice of
    a scanned stack and shared blocks included."""
    on, off = _models(**LAYOUTS[layout])
    params = init_params(on, jax.random.key(1))
    batch = _batch()
    (v_on, out_on), g_on = _loss(on)(params, *batch)
    (v_off, out_off), g_off = _loss(off)(params, *batch)
    assert "last_hidden_state" not in out_on and "last_hidden_state" in out_off
    assert set(out_on) == set(out_off) - {"last_hidden_state"}
    for key in out_on:
        np.testing.assert_allclose(out_on[key], out_off[key], atol=1e-5, err_msg=key)
    np.testing.assert_allclose(v_on, v_off, rtol=1e-5)
    assert jax.tree.structure(g_on) == jax.tree.structure(g_off)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(g_on), jax.tree.leaves(g_off)):
        scale = max(float(jnp.abs(b).max()), 1e-3)
        assert float(jnp.abs(a - b).max()) <= 1e-4 * scale, jax.tree_util.keystr(path)
    # The gradient reaches every layer, the last one's stacked slice included.
    assert all(float(jnp.abs(x).max()) > 0 for x in jax.tree.leaves(g_on))


def test_parameters_do_not_depend_on_the_setting():
    """Same tree, same values: checkpoints move between the two settings."""
    on, off = _models()
    p_on, p_off = init_params(on, jax.random.key(3)), init_params(off, jax.random.key(3))
    assert jax.tree.structure(p_on) == jax.tree.structure(p_off)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(p_on),
                                                    jax.tree.leaves(p_off)))


def test_the_last_layer_computes_fewer_rows():
    """XLA's FLOP count of the forward pass drops by the formula's rows not computed, and
    as many positions as tokens fall back to the full layer (last_hidden_state returns)."""
    on, off = _models()
    params = init_params(on, jax.random.key(0))
    batch = _batch()

    def flops(model, *args):
        fn = jax.jit(lambda p, *a: model.apply({"params": p}, *a)["mlm_logits"])
        cost = fn.lower(params, *args).compile().cost_analysis()
        return (cost[0] if isinstance(cost, list) else cost)["flops"]

    c = on.config
    h, i = c.hidden_size, c.intermediate_size
    skipped = B * (L - (P + 1)) * (4 * h * h + 4 * h * i + 4 * L * h)
    saved = flops(off, *batch) - flops(on, *batch)
    assert saved == pytest.approx(skipped, rel=0.05)
    every = np.tile(np.arange(L, dtype=np.int32), (B, 1))
    out = jax.jit(lambda p: on.apply({"params": p}, *batch[:3], every))(params)
    assert out["last_hidden_state"].shape == (B, L, h)


def test_dropout_in_the_subset_layer_is_seeded():
    """With dropout the subset step is a function of its key: the same key, the same logits;
    another key, others."""
    cfg = family_config("roberta", "tiny", vocab_size=V)
    model = BertForPreTraining(cfg)
    params = init_params(model, jax.random.key(0))
    ids, mask, types, pos = _batch()
    run = jax.jit(lambda p, k: model.apply({"params": p}, ids, mask, types, pos,
                                           deterministic=False, rngs={"dropout": k})
                  ["mlm_logits"])
    a, b, c = (run(params, jax.random.key(k)) for k in (5, 5, 6))
    assert np.array_equal(a, b) and not np.allclose(a, c)


@pytest.mark.parametrize("variant", ["combo", "hybrid"])
def test_ambert_subset_is_the_full_last_layer(variant):
    """AMBERT's two granularities, each given its masked positions: the same logits, pooled
    outputs and gradients as with every row (combo: two encoders, each given its rows, as
    "shared" gives its one encoder twice; hybrid: one encoder takes both granularities'
    rows, the coarse ones offset by L)."""
    from bert_jax.modeling.ambert import AmbertForPreTraining

    cfg = family_config("ambert", "tiny", vocab_size=V, coarse_vocab_size=300,
                        ambert_variant=variant, hidden_dropout=0.0, attention_dropout=0.0)
    on = AmbertForPreTraining(cfg)
    off = AmbertForPreTraining(dataclasses.replace(cfg, last_layer_subset=False))
    params = init_params(on, jax.random.key(4))
    ids, mask, types, pos = _batch(2)
    rng = np.random.default_rng(3)
    start = ((rng.random((B, L)) < 0.5) | (np.arange(L)[None] == 0)).astype(np.int32) * mask
    coarse_ids = np.where(start == 1, rng.integers(5, 300, (B, L)), 0).astype(np.int32)
    coarse_pos = np.minimum(pos, start.sum(1, keepdims=True) - 1).astype(np.int32)

    def loss(model):
        def f(p):
            out = model.apply({"params": p}, ids, mask, types, pos, coarse_ids=coarse_ids,
                              coarse_start=start, coarse_masked_positions=coarse_pos)
            value = (jnp.sum(jax.nn.log_softmax(out["mlm_logits"])[..., 3])
                     + jnp.sum(jax.nn.log_softmax(out["coarse_mlm_logits"])[..., 5])
                     + jnp.sum(out["pooled_output_coarse"] ** 2))
            return value, out
        return jax.jit(jax.value_and_grad(f, has_aux=True))(params)

    (v_on, out_on), g_on = loss(on)
    (v_off, out_off), g_off = loss(off)
    assert "last_hidden_state_coarse" not in out_on and "last_hidden_state_coarse" in out_off
    for key in ("mlm_logits", "coarse_mlm_logits", "pooled_output_fine",
                "pooled_output_coarse"):
        np.testing.assert_allclose(out_on[key], out_off[key], atol=1e-5, err_msg=key)
    np.testing.assert_allclose(v_on, v_off, rtol=1e-5)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(g_on), jax.tree.leaves(g_off)):
        scale = max(float(jnp.abs(b).max()), 1e-3)
        assert float(jnp.abs(a - b).max()) <= 1e-4 * scale, jax.tree_util.keystr(path)


def _same_values_and_gradients(on, off, params, loss, *args, **kwargs):
    """Runs `loss(out)` through both models; returns their outputs after comparing the
    loss, every output `on` has and every parameter's gradient."""
    def grad(model):
        def f(p):
            out = model.apply({"params": p}, *args, **kwargs)
            return loss(out), out
        return jax.jit(jax.value_and_grad(f, has_aux=True))(params)

    (v_on, out_on), g_on = grad(on)
    (v_off, out_off), g_off = grad(off)
    for key in out_on:
        np.testing.assert_allclose(out_on[key], out_off[key], atol=1e-5, err_msg=key)
    np.testing.assert_allclose(v_on, v_off, rtol=1e-5)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(g_on), jax.tree.leaves(g_off)):
        scale = max(float(jnp.abs(b).max()), 1e-3)
        assert float(jnp.abs(a - b).max()) <= 1e-4 * scale, jax.tree_util.keystr(path)
    return out_on, out_off


@pytest.mark.parametrize("kind", ["classification", "span"])
def test_sequence_task_computes_the_last_layer_at_cls_only(kind):
    """A fine-tuning model whose head reads the pooled [CLS] computes the last layer at that
    row alone: the same logits and gradients as the full layer. A head that reads every
    position (here SQuAD's) keeps the full layer."""
    from bert_jax.modeling.task_models import task_model

    cfg = model_config_for("tiny", vocab_size=V, num_layers=3, hidden_dropout=0.0,
                           attention_dropout=0.0)
    on = task_model(cfg, kind, 3)
    off = task_model(dataclasses.replace(cfg, last_layer_subset=False), kind, 3)
    params = init_params(on, jax.random.key(2))
    ids, mask, types, _ = _batch(3)
    name = "logits" if kind == "classification" else "start_logits"
    loss = lambda out: jnp.sum(jax.nn.log_softmax(out[name])[:, 1] * jnp.arange(1, B + 1))
    out_on, out_off = _same_values_and_gradients(on, off, params, loss, ids, mask, types)
    assert "last_hidden_state" in out_off
    assert ("last_hidden_state" in out_on) == (kind == "span")


def test_ambert_task_computes_the_last_layers_at_both_cls_only():
    """AMBERT's classifier reads the fine and the coarse [CLS]: with the hybrid encoder (one
    pass over both granularities) the last layer computes those two rows alone."""
    from bert_jax.modeling.task_models import task_model

    cfg = family_config("ambert", "tiny", vocab_size=V, coarse_vocab_size=300,
                        ambert_variant="hybrid", hidden_dropout=0.0, attention_dropout=0.0)
    on = task_model(cfg, "classification", 3)
    off = task_model(dataclasses.replace(cfg, last_layer_subset=False), "classification", 3)
    params = init_params(on, jax.random.key(5))
    ids, mask, types, _ = _batch(4)
    rng = np.random.default_rng(6)
    start = ((rng.random((B, L)) < 0.5) | (np.arange(L)[None] == 0)).astype(np.int32) * mask
    coarse_ids = np.where(start == 1, rng.integers(5, 300, (B, L)), 0).astype(np.int32)
    loss = lambda out: sum(jnp.sum(jax.nn.log_softmax(out[k])[:, i])
                           for i, k in enumerate(("logits", "logits_fine", "logits_coarse")))
    out_on, out_off = _same_values_and_gradients(on, off, params, loss, ids, mask, types,
                                                 coarse_ids=coarse_ids, coarse_start=start)
    assert "last_hidden_state_coarse" in out_off and "last_hidden_state_coarse" not in out_on
