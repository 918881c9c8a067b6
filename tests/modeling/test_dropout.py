"""Dropout with 16-bit draws (modeling/layers.keep_mask, Dropout, model.dropout_bits)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.config import ConfigError, model_config_for
from bert_jax.modeling.layers import Dropout, keep_mask


@pytest.mark.parametrize("rate", [0.1, 0.3])
def test_16_bit_draws_realise_the_rate(rate):
    size = 1 << 20
    keep, keep_prob = keep_mask(jax.random.key(0), rate, (size,))
    keep = np.asarray(keep)
    assert keep_prob == 1 - round(rate * 65536) / 65536
    assert abs(keep_prob - (1 - rate)) <= 2 ** -17
    sigma = np.sqrt(keep_prob * (1 - keep_prob) / size)
    assert abs(keep.mean() - keep_prob) < 5 * sigma
    # Each word's two halves are separate draws: the first and second half of the mask
    # agree as independent draws would (p^2 + q^2), not always (the same bits twice).
    half = size // 2
    agree = (keep[:half] == keep[half:]).mean()
    expected = keep_prob ** 2 + (1 - keep_prob) ** 2
    assert abs(agree - expected) < 0.01, (agree, expected)


def test_odd_sizes_and_shapes():
    keep, _ = keep_mask(jax.random.key(1), 0.5, (3, 5, 7))
    assert keep.shape == (3, 5, 7) and keep.dtype == jnp.bool_
    assert 0 < np.asarray(keep).sum() < 105
    keep, keep_prob = keep_mask(jax.random.key(1), 1e-9, (9,))  # rounds to no dropout
    assert keep_prob == 1.0 and np.asarray(keep).all()


def test_32_bits_is_flax_dropout():
    x = jax.random.normal(jax.random.key(2), (4, 16, 32))
    rngs = {"dropout": jax.random.key(3)}
    ours = Dropout(0.1, bits=32).apply({}, x, deterministic=False, rngs=rngs)
    flax = nn.Dropout(0.1).apply({}, x, deterministic=False, rngs=rngs)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(flax))


def test_dropout_keeps_the_expectation_and_is_off_when_deterministic():
    x = jnp.ones((256, 1024))
    module = Dropout(0.1, bits=16)
    y = np.asarray(module.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(4)}))
    kept = y != 0
    assert np.allclose(y[kept], 1 / (1 - round(0.1 * 65536) / 65536))
    assert abs(y.mean() - 1.0) < 5 * np.sqrt(0.1 / 0.9 / y.size)
    np.testing.assert_array_equal(np.asarray(module.apply({}, x, deterministic=True)),
                                  np.asarray(x))
    bf16 = module.apply({}, x.astype(jnp.bfloat16), deterministic=False,
                        rngs={"dropout": jax.random.key(4)})
    assert bf16.dtype == jnp.bfloat16


def test_config_refuses_other_bit_counts():
    with pytest.raises(ConfigError, match="model.dropout_bits must be one of"):
        model_config_for("tiny", dropout_bits=8).check()
