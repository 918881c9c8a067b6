"""Schedule, weight-decay mask, and LAMB's per-layer trust ratio."""

import jax
import numpy as np
import pytest

from bert_jax.config import model_config_for
from bert_jax.modeling.models import BertForPreTraining, init_params
from bert_jax.convert.names import relayout
from bert_jax.training.optimizer import decay_mask, learning_rate_schedule, make_optimizer
from tests import synthetic


def test_warmup_then_linear_decay():
    tc = synthetic.train_config(num_steps=110, learning_rate=1e-3)
    tc.warmup_steps = 10
    lr = learning_rate_schedule(tc)
    assert float(lr(0)) == 0.0
    assert float(lr(5)) == pytest.approx(5e-4)
    assert float(lr(10)) == pytest.approx(1e-3)
    assert float(lr(60)) == pytest.approx(5e-4)
    assert float(lr(110)) == pytest.approx(0.0, abs=1e-12)


def test_no_decay_on_biases_and_layer_norm():
    params = init_params(BertForPreTraining(model_config_for("tiny", vocab_size=50)),
                         jax.random.key(0))
    mask = decay_mask(params)
    flat = {"/".join(str(getattr(k, "key", k)) for k in path): v
            for path, v in jax.tree_util.tree_leaves_with_path(mask)}
    assert flat["embeddings/word_embeddings/embedding"]
    assert flat["encoder/layers/block/intermediate/kernel"]
    assert not flat["encoder/layers/block/intermediate/bias"]
    assert not flat["encoder/layers/block/attention_LayerNorm/scale"]
    assert not flat["embeddings/LayerNorm/bias"]
    assert not flat["mlm_head/bias"]
    assert np.sum(list(flat.values())) == sum(
        1 for k in flat if k.endswith(("kernel", "embedding")))


def _flat(tree):
    return {"/".join(str(getattr(k, "key", k)) for k in path): v
            for path, v in jax.tree_util.tree_leaves_with_path(tree)}


def _first_update(params, optimizer, seed=1):
    tc = synthetic.train_config(num_steps=10, optimizer=optimizer)
    tc.warmup_steps, tc.max_grad_norm = 0, 0.0  # unclipped N(0, 1) gradients
    tx = make_optimizer(tc)
    grads = jax.tree.map(
        lambda p: jax.random.normal(jax.random.key(seed), p.shape, p.dtype), params)
    updates, _ = tx.update(grads, tx.init(params), params)
    return updates


def test_lamb_trust_ratio():
    """LAMB's update of a weight matrix has norm lr * ||w|| (the trust ratio) plus the decay
    term; biases and LayerNorm get plain Adam steps (norm ~ lr * sqrt(size))."""
    params = init_params(BertForPreTraining(model_config_for(
        "tiny", vocab_size=50, scan_layers=False)), jax.random.key(0))
    upd, w = _flat(_first_update(params, "lamb")), _flat(params)
    lr = 1e-3
    for name in ("encoder/layer_0/intermediate/kernel", "embeddings/word_embeddings/embedding"):
        assert np.linalg.norm(upd[name]) == pytest.approx(lr * np.linalg.norm(w[name]), rel=1e-4)
    bias = "encoder/layer_0/intermediate/bias"  # first Adam step: |u| = lr |g| / (|g| + eps)
    np.testing.assert_allclose(np.median(np.abs(upd[bias])), lr, rtol=1e-4)


def test_lamb_trust_ratio_is_per_layer_when_layers_are_scanned():
    """Scanned layers stack the weights of all layers in one array; LAMB's ratio must still
    be computed per layer, giving the unrolled model's update exactly."""
    cfg = model_config_for("tiny", vocab_size=50, scan_layers=False)
    unrolled = init_params(BertForPreTraining(cfg), jax.random.key(0))
    scanned = relayout(unrolled, scan_layers=True)
    grads_unrolled = jax.tree.map(
        lambda p: jax.random.normal(jax.random.key(3), p.shape, p.dtype), unrolled)
    # Scale one layer's gradient so a shared (whole-stack) ratio would differ from per-layer.
    grads_unrolled["encoder"]["layer_1"] = jax.tree.map(
        lambda g: 7.0 * g, grads_unrolled["encoder"]["layer_1"])
    tc = synthetic.train_config(num_steps=10, optimizer="lamb")
    tc.warmup_steps = 0
    tx = make_optimizer(tc)
    u_unrolled, _ = tx.update(grads_unrolled, tx.init(unrolled), unrolled)
    grads_scanned = relayout(grads_unrolled, scan_layers=True)
    u_scanned, _ = tx.update(grads_scanned, tx.init(scanned), scanned)
    u_back = relayout(u_scanned, scan_layers=False)
    for name, value in _flat(u_unrolled).items():
        np.testing.assert_allclose(_flat(u_back)[name], value, rtol=1e-5, atol=1e-9,
                                   err_msg=name)
