"""Weighted cross-entropy and accuracy: hand values, weights, dtypes, exact splitting."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax import losses


def test_cross_entropy_hand_values():
    # Probabilities [1/4, 1/2, 1/4] and [1/3, 1/3, 1/3].
    logits_BxV = jnp.log(jnp.array([[1.0, 2.0, 1.0], [1.0, 1.0, 1.0]]))
    loss, weight = losses.weighted_cross_entropy(logits_BxV, jnp.array([1, 0]),
                                                 jnp.array([1.0, 2.0]))
    np.testing.assert_allclose(loss, np.log(2) + 2 * np.log(3), rtol=1e-6)
    np.testing.assert_allclose(weight, 3.0)


def test_label_smoothing_hand_value():
    logits_BxV = jnp.log(jnp.array([[1.0, 2.0, 1.0]]))
    labels, weights = jnp.array([1]), jnp.array([1.0])
    plain = losses.weighted_cross_entropy(logits_BxV, labels, weights, label_smoothing=0.0)
    assert plain == losses.weighted_cross_entropy(logits_BxV, labels, weights)
    loss, _ = losses.weighted_cross_entropy(logits_BxV, labels, weights, label_smoothing=0.3)
    # Target (0.1, 0.8, 0.1) against p = (1/4, 1/2, 1/4).
    np.testing.assert_allclose(loss, 0.2 * np.log(4) + 0.8 * np.log(2), rtol=1e-6)
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.weighted_cross_entropy(logits_BxV, labels, weights, label_smoothing=1.0)


def test_mlm_shapes_match_numpy_reference():
    rng = np.random.default_rng(0)
    logits_BxPxV = rng.normal(size=(3, 5, 11)).astype(np.float32) * 3
    labels_BxP = rng.integers(0, 11, (3, 5))
    weights_BxP = (rng.random((3, 5)) < 0.7).astype(np.float32)
    shifted = logits_BxPxV - logits_BxPxV.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, labels_BxP[..., None], -1)[..., 0]
    loss, weight = losses.weighted_cross_entropy(logits_BxPxV, labels_BxP, weights_BxP)
    np.testing.assert_allclose(loss, (nll * weights_BxP).sum(), rtol=1e-5)
    np.testing.assert_allclose(weight, weights_BxP.sum())
    correct, weight = losses.weighted_accuracy(logits_BxPxV, labels_BxP, weights_BxP)
    want = ((logits_BxPxV.argmax(-1) == labels_BxP) * weights_BxP).sum()
    np.testing.assert_allclose(correct, want)


def test_zero_weights_ignore_entries_even_garbage():
    logits_BxV = jnp.array([[2.0, 0.0], [jnp.nan, jnp.inf], [jnp.inf, -jnp.inf]])
    labels_B = jnp.array([0, 1, 7])  # 7 is out of range: a padding label.
    weights_B = jnp.array([1.0, 0.0, 0.0])
    loss, weight = losses.weighted_cross_entropy(logits_BxV, labels_B, weights_B)
    want, _ = losses.weighted_cross_entropy(logits_BxV[:1], labels_B[:1], weights_B[:1])
    assert np.isfinite(loss) and loss == want and weight == 1.0
    np.testing.assert_allclose(loss, np.log1p(np.exp(-2.0)), rtol=1e-6)
    correct, weight = losses.weighted_accuracy(logits_BxV, labels_B, weights_B)
    assert correct == 1.0 and weight == 1.0


def test_bf16_logits_use_fp32_log_softmax():
    rng = np.random.default_rng(1)
    logits_bf16 = jnp.asarray(rng.normal(size=(4, 6, 1000)) * 4 + 200, jnp.bfloat16)
    labels = jnp.asarray(rng.integers(0, 1000, (4, 6)))
    weights = jnp.ones((4, 6))
    loss, weight = losses.weighted_cross_entropy(logits_bf16, labels, weights)
    want, _ = losses.weighted_cross_entropy(logits_bf16.astype(jnp.float32), labels, weights)
    assert loss.dtype == jnp.float32 and weight.dtype == jnp.float32
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    # A bf16 log-softmax would be visibly off at this magnitude.
    in_bf16 = -jnp.take_along_axis(jax.nn.log_softmax(logits_bf16), labels[..., None], -1).sum()
    assert abs(float(in_bf16) - float(want)) > 1e-3 * float(want)


def test_sums_of_split_batch_equal_whole():
    rng = np.random.default_rng(2)
    logits = jnp.asarray(rng.normal(size=(8, 4, 13)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 13, (8, 4)))
    weights = jnp.asarray(rng.random((8, 4)) < 0.5, jnp.float32)
    for fn in (losses.weighted_cross_entropy, losses.weighted_accuracy):
        whole = fn(logits, labels, weights)
        parts = [fn(logits[i:i + 2], labels[i:i + 2], weights[i:i + 2]) for i in range(0, 8, 2)]
        np.testing.assert_allclose([sum(p[0] for p in parts), sum(p[1] for p in parts)],
                                   whole, rtol=1e-6)


def test_nsp_shapes_and_accuracy_hand_values():
    logits_Bx2 = jnp.array([[1.0, 0.0], [0.0, 3.0], [2.0, 5.0], [1.0, 1.0]])
    labels_B = jnp.array([0, 0, 1, 1])
    weights_B = jnp.array([1.0, 1.0, 0.5, 1.0])
    correct, weight = losses.weighted_accuracy(logits_Bx2, labels_B, weights_B)
    # Right, wrong, right (half weight), tie goes to class 0: wrong.
    np.testing.assert_allclose([correct, weight], [1.5, 3.5])
    loss, _ = losses.weighted_cross_entropy(logits_Bx2, labels_B, weights_B)
    want = (np.log1p(np.exp(-1.0)) + np.log1p(np.exp(3.0)) + 0.5 * np.log1p(np.exp(-3.0))
            + np.log(2.0))
    np.testing.assert_allclose(loss, want, rtol=1e-6)


def test_gradient_is_weighted_softmax_minus_one_hot():
    logits = jnp.array([[0.5, -1.0, 2.0], [1.0, 0.0, 0.0]])
    labels, weights = jnp.array([2, 1]), jnp.array([2.0, 0.0])
    grad = jax.grad(lambda x: losses.weighted_cross_entropy(x, labels, weights)[0])(logits)
    want = (jax.nn.softmax(logits) - jax.nn.one_hot(labels, 3)) * weights[:, None]
    np.testing.assert_allclose(grad, want, rtol=1e-6, atol=1e-7)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="labels"):
        losses.weighted_cross_entropy(jnp.zeros((2, 3, 5)), jnp.zeros((2, 4), int),
                                      jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="weights"):
        losses.weighted_accuracy(jnp.zeros((2, 5)), jnp.zeros((2,), int), jnp.zeros((3,)))
    jitted = jax.jit(losses.weighted_cross_entropy, static_argnames="label_smoothing")
    np.testing.assert_allclose(jitted(jnp.zeros((2, 4)), jnp.array([0, 3]), jnp.ones(2))[0],
                               2 * np.log(4), rtol=1e-6)


def test_accuracy_is_argmax_with_ties_and_out_of_range_labels():
    """Small integer logits tie often: right exactly where argmax (the lowest tied id) is the
    label; a label outside [0, V) is never right."""
    rng = np.random.default_rng(0)
    logits = rng.integers(0, 4, (6, 50, 7)).astype(np.float32)
    labels = rng.integers(-1, 8, (6, 50))
    weights = rng.random((6, 50)).astype(np.float32)
    correct, weight = jax.jit(losses.weighted_accuracy)(logits, labels, weights)
    right = logits.argmax(-1) == labels
    assert 0 < right.sum() < right.size and ((labels < 0) | (labels > 6)).any()
    np.testing.assert_allclose(correct, (right * weights).sum(), rtol=1e-6)
    np.testing.assert_allclose(weight, weights.sum(), rtol=1e-6)


def test_cross_entropy_picks_exactly_the_labels_log_probability():
    """The one-hot sum equals the gathered entry bit for bit, and so does its gradient."""
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.standard_normal((4, 20, 300)) * 5, jnp.float32)
    labels = jnp.asarray(rng.integers(0, 300, (4, 20)))
    weights = jnp.ones((4, 20))

    def gathered(x):
        logp = jax.nn.log_softmax(x, axis=-1)
        return -jnp.sum(jnp.take_along_axis(logp, labels[..., None], axis=-1))

    ours = lambda x: losses.weighted_cross_entropy(x, labels, weights)[0]
    per_entry = jax.jit(jax.vmap(jax.vmap(
        lambda x, y: losses.weighted_cross_entropy(x[None], y[None], jnp.ones(1))[0])))
    want = -jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), labels[..., None],
                                axis=-1)[..., 0]
    assert np.array_equal(per_entry(logits, labels), want)
    np.testing.assert_allclose(jax.jit(ours)(logits), jax.jit(gathered)(logits), rtol=1e-6)
    assert np.array_equal(jax.jit(jax.grad(ours))(logits), jax.jit(jax.grad(gathered))(logits))
