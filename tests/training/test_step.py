"""The per-device step: loss scale, learning, device-count and backend invariance."""

import dataclasses
import functools
import re

import jax
import numpy as np
import pytest

from bert_jax.config import GPU_MODEL_SETTINGS
from bert_jax.modeling.models import BertForPreTraining, init_params, pretraining_model
from bert_jax.training.optimizer import make_optimizer
from bert_jax.training.parallel import Parallel
from bert_jax.training import step as step_lib
from bert_jax.training.step import TrainState
from tests import synthetic


def _run(backend, num_devices, steps, *, batches=None, cfg=None, tc=None):
    cfg = cfg or synthetic.step_config()
    tc = tc or synthetic.train_config(num_steps=steps)
    par = Parallel(backend, cfg, jax.devices()[:num_devices])
    params = init_params(pretraining_model(cfg.model), jax.random.key(0))
    state = par.replicate(TrainState.create(params, make_optimizer(tc), jax.random.key(1)))
    key = jax.random.key(1)
    history = []
    for i in range(steps):
        batch = batches[i % len(batches)]
        state, metrics = par.train(state, par.shard_batch(batch), key)
        history.append({k: float(v) for k, v in metrics.items()})
    return history, state


@functools.lru_cache(maxsize=None)
def _reference(steps=20):
    batches = [synthetic.batch(seed=s) for s in range(4)]
    return _run("pmap", 1, steps, batches=batches)[0]


def test_initial_mlm_loss_is_log_vocab():
    first = _reference()[0]
    assert abs(first["mlm_loss"] - np.log(synthetic.VOCAB)) < 0.15
    assert abs(first["nsp_loss"] - np.log(2)) < 0.1
    assert first["loss"] == pytest.approx(first["mlm_loss"] + first["nsp_loss"], rel=1e-6)


@pytest.mark.parametrize("backend,num_devices", [("pmap", 8), ("shard_map", 8),
                                                 ("shard_map", 1)])
def test_same_losses_for_any_device_count_and_backend(backend, num_devices):
    """Global batch 16, dropout off: 1 and 8 devices, pmap and shard_map, 20 steps."""
    batches = [synthetic.batch(seed=s) for s in range(4)]
    ref = _reference()
    got, _ = _run(backend, num_devices, 20, batches=batches)
    for name in ("loss", "mlm_loss", "nsp_loss", "mlm_accuracy", "grad_norm"):
        a, b = np.array([r[name] for r in ref]), np.array([r[name] for r in got])
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=name)
    losses = np.array([r["loss"] for r in ref]), np.array([r["loss"] for r in got])
    print(f"{backend} x{num_devices} vs pmap x1, 20 steps: max relative loss difference "
          f"{np.max(np.abs(losses[1] - losses[0]) / losses[0]):.2e}")  # shown with -s


# The float32 default, and the GPU variant's model settings (configs/pretrain/*.py:gpu:
# bf16 matmuls and residual stream, unrolled layers), with XLA attention on this CPU and
# the test's dropout of 0.
_GPU_VARIANT = {k: v for k, v in GPU_MODEL_SETTINGS.items()
                if k not in ("attention_impl", "attention_dropout")}


@pytest.mark.parametrize("model", [{}, _GPU_VARIANT], ids=["float32", "gpu_variant"])
def test_loss_falls_on_one_fixed_batch(model):
    batch = synthetic.batch(batch_size=8, seq_len=16)
    history, state = _run("shard_map", 2, 40, batches=[batch], cfg=synthetic.step_config(**model),
                          tc=synthetic.train_config(num_steps=40, learning_rate=3e-3))
    assert all(x.dtype == np.float32 for x in jax.tree.leaves(state.params))
    first, last = history[0]["mlm_loss"], np.mean([h["mlm_loss"] for h in history[-5:]])
    print(f"one fixed batch, 40 steps: MLM loss {first:.2f} -> {last:.2f}")  # shown with -s
    assert last < 0.6 * first, (first, last)
    assert history[-1]["learning_rate"] < history[5]["learning_rate"]  # linear decay


def test_dropout_is_active_and_reproducible():
    batches = [synthetic.batch()]
    cfg = synthetic.step_config(dropout=0.3)
    a, _ = _run("shard_map", 2, 2, batches=batches, cfg=cfg)
    b, _ = _run("shard_map", 2, 2, batches=batches, cfg=cfg)
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    ref = _reference()
    assert abs(a[0]["loss"] - ref[0]["loss"]) > 1e-4


def test_state_stays_replicated_and_step_counts():
    _, state = _run("pmap", 8, 3, batches=[synthetic.batch()])
    assert int(state.step) == 3
    leaf = jax.tree.leaves(state.params)[0]
    assert leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == 8


@pytest.mark.parametrize("guard,num_devices", [("cond", 2), ("select", 2), ("auto", 1)])
def test_nonfinite_step_is_skipped_and_counted(guard, num_devices):
    cfg = dataclasses.replace(synthetic.step_config(), update_guard=guard)
    par = Parallel("shard_map", cfg, jax.devices()[:num_devices])
    params = init_params(BertForPreTraining(cfg.model), jax.random.key(0))
    table = params["embeddings"]["word_embeddings"]["embedding"]
    params["embeddings"]["word_embeddings"]["embedding"] = table.at[:].set(np.nan)
    tx = make_optimizer(synthetic.train_config())
    state = TrainState.create(params, tx, jax.random.key(1))
    before = jax.tree.map(np.asarray, (state.params, state.opt_state))
    state, metrics = par.train(par.replicate(state), par.shard_batch(synthetic.batch()),
                               jax.random.key(1))
    assert float(metrics["nonfinite"]) == 1.0 and int(state.skipped_steps) == 1
    assert int(state.step) == 1
    after = jax.tree.map(np.asarray, (state.params, state.opt_state))
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), before, after)


def test_update_guards_compute_the_same_state():
    """lax.cond around the update, or jnp.where on its results: the same arithmetic, equal
    after 3 finite steps of this model up to rounding. XLA compiles the two programs apart and
    may round a value differently in each (BENCHMARKS.md): they agree bit for bit with XLA's
    default code generator, in the last bits with the suite's (tests/conftest.py)."""
    batches = [synthetic.batch(seed=s) for s in range(3)]
    states = []
    for guard in ("cond", "select"):
        cfg = dataclasses.replace(synthetic.step_config(dropout=0.1), update_guard=guard)
        history, state = _run("pmap", 2, 3, batches=batches, cfg=cfg)
        assert all(h["nonfinite"] == 0.0 for h in history)
        states.append(jax.tree.map(np.asarray, (state.params, state.opt_state)))
    # Up to rounding: within a millionth of the largest value of its kind (parameters, first
    # moments, second moments). One step's update moves a weight by ~5e-4 at this learning
    # rate; a gradient that is zero but for rounding (the attention key's bias) has moments
    # of ~1e-10 that are all rounding.
    (a, _), (b, _) = (jax.tree_util.tree_flatten_with_path(s) for s in states)

    def kind(path):  # "mu", "nu" or "" (parameters and counters)
        match = re.search(r"\.(mu|nu)\b", jax.tree_util.keystr(path))
        return match.group(1) if match else ""

    scale = {}
    for path, x in b:
        scale[kind(path)] = max(scale.get(kind(path), 0.0), float(np.abs(x).max()))
    for (path, x), (_, y) in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6 * scale[kind(path)],
                                   err_msg=jax.tree_util.keystr(path))
    with pytest.raises(ValueError, match="update_guard must be one of"):
        step_lib.apply_gradients(None, {}, {}, {}, guard="where")


def test_one_device_step_has_no_all_reduce():
    """On one device nothing is all-reduced (XLA:CPU would run those all-reduces: a copy of
    every gradient, and waits); on two the gradients are."""
    cfg = synthetic.step_config()
    params = init_params(pretraining_model(cfg.model), jax.random.key(0))
    state = TrainState.create(params, make_optimizer(synthetic.train_config()),
                              jax.random.key(1))
    counts = {}
    for n in (1, 2):
        par = Parallel("shard_map", cfg, jax.devices()[:n])
        hlo = par.train.lower(par.replicate(state), par.shard_batch(synthetic.batch()),
                              jax.random.key(1)).compile().as_text()
        counts[n] = {"any": len(re.findall(r" all-reduce(?:-start)?\(", hlo)),
                     "arrays": len(re.findall(r"= \(?[^=]*\w\[\d[^=]* all-reduce(?:-start)?\(",
                                              hlo))}
    assert counts[1]["any"] == 0 and counts[2]["arrays"] > 0, counts


def _step_masks(batch, step, masking_cfg, train=True):
    """`_masked_batch` on one device (vmap provides the "batch" axis): the `masked` map."""
    cfg = dataclasses.replace(synthetic.step_config(), masking=masking_cfg)
    one_device = jax.tree.map(lambda x: np.asarray(x)[None], batch)
    fn = lambda b: step_lib._masked_batch(b, jax.random.key(5), step, cfg, train=train)
    return np.asarray(jax.vmap(fn, axis_name=step_lib.AXIS)(one_device)["masked"][0])


def test_static_masks_follow_row_and_epoch_not_step_or_place():
    batch = synthetic.batch(batch_size=16, seq_len=32)
    static = dataclasses.replace(synthetic.step_config().masking, static=True, dupe_factor=2,
                                 mask_rate=0.3)
    first = _step_masks(batch, 3, static)
    np.testing.assert_array_equal(_step_masks(batch, 11, static), first)  # Any step.
    order = np.random.default_rng(0).permutation(16)  # Another place in the batch.
    moved = jax.tree.map(lambda x: x[order], batch)
    np.testing.assert_array_equal(_step_masks(moved, 3, static), first[order])
    later = dict(batch, epoch=batch["epoch"] + 2)  # dupe_factor epochs later: the same.
    np.testing.assert_array_equal(_step_masks(later, 3, static), first)
    other = dict(batch, epoch=batch["epoch"] + 1)
    assert np.all(_step_masks(other, 3, static) == first, axis=1).mean() < 0.25
    # Dynamic masks change with the step; eval masks (EVAL_STEP) ignore the epoch.
    dynamic = dataclasses.replace(static, static=False)
    assert np.all(_step_masks(batch, 3, dynamic) == _step_masks(batch, 11, dynamic),
                  axis=1).mean() < 0.25
    eval_masks = _step_masks(batch, step_lib.EVAL_STEP, static, train=False)
    np.testing.assert_array_equal(
        _step_masks(other, step_lib.EVAL_STEP, static, train=False), eval_masks)
    np.testing.assert_array_equal(
        _step_masks(batch, step_lib.EVAL_STEP, dynamic, train=False), eval_masks)


def _ambert_batches():
    return [synthetic.with_coarse(synthetic.batch(seed=s), seed=s) for s in range(4)]


@functools.lru_cache(maxsize=None)
def _ambert_reference(variant="shared", steps=12):
    return _run("pmap", 1, steps, batches=_ambert_batches(),
                cfg=synthetic.ambert_step_config(variant))[0]


def test_ambert_initial_losses_are_log_vocabs():
    first = _ambert_reference()[0]
    assert abs(first["mlm_loss_coarse"] - np.log(synthetic.COARSE_VOCAB)) < 0.15
    assert abs(first["mlm_loss_fine"] - np.log(synthetic.VOCAB)) < 0.15
    assert first["mlm_loss"] == first["mlm_loss_fine"]
    assert first["mlm_accuracy"] == first["mlm_accuracy_fine"]
    assert first["loss"] == pytest.approx(first["mlm_loss"] + first["mlm_loss_coarse"], rel=1e-6)
    assert "nsp_loss" not in first


# combo and hybrid share the step and its all-reduce with shared and differ only in the
# model, which tests/modeling covers on one device: their 8-device runs are in the slow group.
@pytest.mark.parametrize("variant,backend,num_devices", [
    ("shared", "pmap", 8), ("shared", "shard_map", 8),
    pytest.param("combo", "shard_map", 8, marks=pytest.mark.slow),
    pytest.param("hybrid", "pmap", 8, marks=pytest.mark.slow)])
def test_ambert_same_losses_for_any_device_count(variant, backend, num_devices):
    ref = _ambert_reference(variant)
    got, _ = _run(backend, num_devices, 12, batches=_ambert_batches(),
                  cfg=synthetic.ambert_step_config(variant))
    for name in ("loss", "mlm_loss", "mlm_loss_coarse", "mlm_accuracy_coarse", "grad_norm"):
        a, b = np.array([r[name] for r in ref]), np.array([r[name] for r in got])
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=name)


def test_ambert_both_losses_fall_on_one_fixed_batch():
    batch = synthetic.with_coarse(synthetic.batch(batch_size=8, seq_len=16))
    history, _ = _run("shard_map", 2, 40, batches=[batch], cfg=synthetic.ambert_step_config(),
                      tc=synthetic.train_config(num_steps=40, learning_rate=3e-3))
    for name in ("mlm_loss_fine", "mlm_loss_coarse"):
        first, last = history[0][name], np.mean([h[name] for h in history[-5:]])
        print(f"AMBERT, one fixed batch, 40 steps: {name} {first:.2f} -> {last:.2f}")
        assert last < 0.6 * first, (name, first, last)


@pytest.mark.parametrize("replace_unit", ["word", "piece"])
def test_ambert_coarse_targets_follow_the_fine_masks(replace_unit):
    """What the model sees: a coarse token is a target iff its first fine token is masked,
    then all its fine tokens are; with replace_unit="word" it is [MASK] iff they are."""
    cfg = synthetic.ambert_step_config(replace_unit=replace_unit)
    batch = synthetic.with_coarse(synthetic.batch(batch_size=16, seq_len=32), seed=3)
    one_device = jax.tree.map(lambda x: np.asarray(x)[None], batch)
    fn = lambda b: step_lib._masked_batch(b, jax.random.key(5), 7, cfg)
    m = jax.tree.map(lambda x: np.asarray(x[0]),
                     jax.vmap(fn, axis_name=step_lib.AXIS)(one_device))
    start = batch["coarse_start"].astype(bool)
    same_action = coarse_targets = 0
    for b in range(16):
        bounds = np.append(np.flatnonzero(start[b]), batch["attention_mask"][b].sum())
        targets = []
        for k, (a, e) in enumerate(zip(bounds[:-1], bounds[1:])):
            masked = m["masked"][b, a:e]
            assert masked.all() or not masked.any()  # all or none of its pieces
            if masked[0]:
                if batch["coarse_ids"][b, a] != 1:  # [UNK] labels get no slot
                    targets.append((k, batch["coarse_ids"][b, a]))
                coarse_masked = m["coarse_input_ids"][b, a] == 4
                fine_masked = (m["input_ids"][b, a:e] == 4)
                if replace_unit == "word":
                    assert (fine_masked == coarse_masked).all()
                same_action += bool(fine_masked[0] == coarse_masked)
                coarse_targets += 1
            else:
                assert m["coarse_input_ids"][b, a] == batch["coarse_ids"][b, a]
        weights = m["coarse_masked_weights"][b] > 0
        assert list(zip(m["coarse_masked_positions"][b][weights],
                        m["coarse_masked_labels"][b][weights])) == targets
    assert int((m["coarse_masked_weights"] > 0).sum()) > 20
    if replace_unit == "piece":  # independent draws: they differ now and then
        assert same_action < coarse_targets


@pytest.mark.parametrize("backend,num_devices,accum", [("pmap", 2, 4), ("shard_map", 1, 2)])
def test_gradient_accumulation_gives_the_same_steps(backend, num_devices, accum):
    """Micro-batches inside the step: the same losses, gradients and updates as one pass."""
    batches = [synthetic.batch(seed=s) for s in range(4)]
    cfg = dataclasses.replace(synthetic.step_config(), grad_accum=accum)
    got, state = _run(backend, num_devices, 6, batches=batches, cfg=cfg)
    ref, ref_state = _run(backend, num_devices, 6, batches=batches)
    for name in ("loss", "mlm_accuracy", "nsp_loss", "grad_norm"):
        np.testing.assert_allclose([r[name] for r in got], [r[name] for r in ref],
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6),
                 jax.device_get(state.params), jax.device_get(ref_state.params))


def test_premasked_batch_is_used_as_given():
    """A batch carrying its own masks (pre-masked data) trains on exactly those: the same
    step as on-device masking that drew them."""
    cfg = synthetic.step_config()
    batch = synthetic.batch(seed=3)
    mask_key, _ = jax.random.split(jax.random.key(1))  # as train_step splits _run's key
    one_device = jax.tree.map(lambda x: np.asarray(x)[None], batch)
    fn = lambda b: step_lib._masked_batch(b, mask_key, 0, cfg)
    drawn = jax.tree.map(lambda x: np.asarray(x)[0],
                         jax.vmap(fn, axis_name=step_lib.AXIS)(one_device))
    premasked = dict(batch, input_ids=drawn["input_ids"],
                     **{k: drawn[k] for k in step_lib.PREMASKED_KEYS})
    ref, _ = _run("shard_map", 2, 1, batches=[batch])
    got, _ = _run("shard_map", 2, 1, batches=[premasked])
    assert got[0]["loss"] == pytest.approx(ref[0]["loss"], rel=1e-6)
    # Other masks give another loss: the given ones were really used.
    shifted = dict(premasked, masked_labels=np.roll(premasked["masked_labels"], 1, axis=0))
    other, _ = _run("shard_map", 2, 1, batches=[shifted])
    assert abs(other[0]["loss"] - ref[0]["loss"]) > 1e-3
