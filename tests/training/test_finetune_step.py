"""The per-device fine-tuning step: learning for every kind, device-count and backend
invariance, padding rows that count nowhere, layer-wise learning-rate decay."""

import dataclasses
import functools

import jax
import numpy as np
import pytest
from flax import traverse_util

from bert_jax.modeling.models import init_params
from bert_jax.modeling.task_models import task_model
from bert_jax.training import finetune_step
from bert_jax.training.optimizer import layerwise_lr_multipliers, make_optimizer
from bert_jax.training.parallel import Parallel
from bert_jax.training.step import TrainState
from tests import synthetic
from tests.training import finetune_synthetic as fs

KINDS = ("classification", "regression", "token", "span")


@functools.lru_cache(maxsize=None)
def _parallel(cfg, backend, num_devices):
    """One compiled set of steps per (config, backend, device count) for the whole module."""
    return Parallel(backend, cfg, jax.devices()[:num_devices], steps=finetune_step.STEPS)


def _run(cfg, backend, num_devices, batches, steps, learning_rate=1e-3):
    par = _parallel(cfg, backend, num_devices)
    params = init_params(task_model(cfg.model, cfg.kind, cfg.num_labels), jax.random.key(0))
    tc = synthetic.train_config(num_steps=steps, learning_rate=learning_rate)
    state = par.replicate(TrainState.create(params, make_optimizer(tc), jax.random.key(1)))
    history = []
    for i in range(steps):
        state, metrics = par.train(state, par.shard_batch(batches[i % len(batches)]),
                                   jax.random.key(1))
        history.append({k: float(v) for k, v in metrics.items()})
    return history, state, par


@pytest.mark.parametrize("kind", KINDS)
def test_loss_falls_on_one_fixed_batch(kind):
    cfg = fs.step_config(kind)
    history, _, _ = _run(cfg, "shard_map", 2, [fs.features(kind, 8, 16)], 30, 3e-3)
    first, last = history[0]["loss"], np.mean([h["loss"] for h in history[-3:]])
    print(f"{kind}: loss {first:.3f} -> {last:.3f} in 30 steps on one batch")  # -s
    assert last < 0.5 * first, (first, last)
    assert all(h["nonfinite"] == 0 for h in history)


def test_initial_classification_loss_is_log_num_labels():
    cfg = fs.step_config("classification")
    history, _, _ = _run(cfg, "pmap", 1, [fs.features("classification")], 1)
    assert abs(history[0]["loss"] - np.log(3)) < 0.1


@functools.lru_cache(maxsize=None)
def _reference(kind, steps=6):
    batches = [fs.features(kind, seed=s) for s in range(3)]
    return _run(fs.step_config(kind), "pmap", 1, batches, steps)[0]


@pytest.mark.parametrize("backend,kind", [("pmap", "classification"), ("shard_map", "token"),
                                          ("shard_map", "span")])
def test_one_device_equals_eight(kind, backend):
    """Global batch 16, dropout off, 6 steps: the losses of 1 device on 8."""
    batches = [fs.features(kind, seed=s) for s in range(3)]
    got, _, _ = _run(fs.step_config(kind), backend, 8, batches, 6)
    ref = _reference(kind)
    for name in ("loss", "grad_norm"):
        np.testing.assert_allclose([r[name] for r in got], [r[name] for r in ref],
                                   rtol=2e-5, atol=1e-6, err_msg=name)


def test_dropout_active_and_reproducible():
    cfg = fs.with_dropout(fs.step_config("classification"), 0.3)
    batches = [fs.features("classification")]
    a = _run(cfg, "shard_map", 2, batches, 2)[0]
    b = _run(cfg, "shard_map", 2, batches, 2)[0]
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    assert abs(a[0]["loss"] - _reference("classification")[0]["loss"]) > 1e-4


@pytest.mark.parametrize("kind", KINDS)
def test_padding_rows_count_nowhere(kind):
    """An eval batch on 8 devices padded with 3 weight-0 garbage rows gives the sums of the
    13 real rows alone, and the same outputs for them."""
    cfg = fs.step_config(kind)
    params = init_params(task_model(cfg.model, cfg.kind, cfg.num_labels), jax.random.key(0))
    par, key = _parallel(cfg, "shard_map", 8), jax.random.key(0)
    rows = fs.features(kind, batch_size=13, seed=5)
    padded = par.shard_batch(fs.pad_rows(rows, 3))
    sums = jax.device_get(par.evaluate(params, padded, key))
    out = par.unshard(par.predict(params, padded, key))
    alone_sums = jax.jit(finetune_step.loss_sums, static_argnums=2)(params, rows, cfg)
    alone = jax.jit(finetune_step.forward, static_argnums=2)(params, rows, cfg)
    assert float(sums["weight"]) == (rows["label_weights"].sum() if kind == "token" else 13)
    for name in alone_sums:
        assert float(sums[name]) == pytest.approx(float(alone_sums[name]), rel=1e-5)
    for name in finetune_step.OUTPUT_KEYS[kind]:
        assert out[name].shape[0] == 16
        np.testing.assert_allclose(out[name][:13], alone[name], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scan_layers", [True, False])
def test_layerwise_lr_multipliers_exact(scan_layers):
    """3 layers, decay 0.5: embeddings 1/8, layers 1/4, 1/2, 1; pooler and head 1; and an
    update scaled by exactly that."""
    cfg = fs.step_config("classification", num_layers=3, scan_layers=scan_layers)
    params = init_params(task_model(cfg.model, cfg.kind, cfg.num_labels), jax.random.key(0))
    mult = layerwise_lr_multipliers(params, 0.5, 3)
    flat = traverse_util.flatten_dict(mult, sep="/")
    assert flat["embeddings/word_embeddings/embedding"] == 0.125
    assert flat["embeddings/LayerNorm/scale"] == 0.125
    assert flat["pooler/dense/kernel"] == 1.0 and flat["classifier/bias"] == 1.0
    expected = [0.25, 0.5, 1.0]
    for name in ("attention/query/kernel", "output_LayerNorm/bias"):
        if scan_layers:
            got = np.asarray(flat[f"encoder/layers/block/{name}"])
            assert got.shape[0] == 3 and got.size == 3
            np.testing.assert_array_equal(got.reshape(-1), expected)
        else:
            assert [flat[f"encoder/layer_{i}/{name}"] for i in range(3)] == expected
    # The update of a decayed optimizer is the plain one times the multiplier.
    tc = synthetic.train_config(num_steps=10)
    tc.weight_decay = 0.0
    grads = jax.tree.map(lambda p: np.ones_like(p), params)
    plain_tx, decayed_tx = make_optimizer(tc), make_optimizer(tc, mult)
    for _ in range(3):  # past the warm-up's zero learning rate
        plain, _ = plain_tx.update(grads, plain_tx.init(params), params)
    plain_state, decayed_state = plain_tx.init(params), decayed_tx.init(params)
    for _ in range(3):
        plain, plain_state = plain_tx.update(grads, plain_state, params)
        decayed, decayed_state = decayed_tx.update(grads, decayed_state, params)
    jax.tree.map(lambda p, d, m: np.testing.assert_allclose(
        np.asarray(d), np.asarray(p) * m, rtol=1e-6), plain, decayed, mult)


def test_ambert_loss_falls_and_agreement_term_counts():
    """AMBERT classification: the three classifiers' losses plus lambda * agreement fall on
    one batch; lambda changes the loss (the agreement term is in it) but not the accuracy."""
    model = synthetic.ambert_step_config().model
    cfg = finetune_step.FinetuneStepConfig(model=model, kind="classification", num_labels=3)
    rows = fs.features("classification", 8, 16)
    rows = synthetic.with_coarse(rows)
    history, _, _ = _run(cfg, "shard_map", 2, [rows], 30, 3e-3)
    first, last = history[0]["loss"], np.mean([h["loss"] for h in history[-3:]])
    assert abs(first - 3 * np.log(3)) < 0.3  # three classifiers at chance, agreement ~0
    assert last < 0.5 * first, (first, last)
    params = init_params(task_model(model, "classification", 3), jax.random.key(0))
    sums = {lam: jax.jit(finetune_step.loss_sums, static_argnums=2)(
        params, rows, dataclasses.replace(cfg, agreement_weight=lam)) for lam in (0.0, 100.0)}
    assert float(sums[100.0]["loss"]) > float(sums[0.0]["loss"]) + 1e-3
    assert float(sums[100.0]["correct"]) == float(sums[0.0]["correct"])
