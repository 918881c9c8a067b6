"""Dropout with 16-bit draws (modeling/layers.keep_mask, Dropout, model.dropout_bits)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.config import ConfigError, model_config_for
from bert_jax.modeling import layers
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


@pytest.mark.parametrize("count", [1, 7, 4096, 100_003])
def test_random_words_are_jax_random_bits(count):
    """The written-out threefry gives jax.random.bits' words to the bit: typed and raw keys,
    split keys, jitted or not, and per-example keys under vmap."""
    expected = lambda k: jax.random.bits(k, (count,), jnp.uint32)
    for key in (jax.random.key(0), jax.random.split(jax.random.key(7))[1],
                jax.random.PRNGKey(123), jax.random.key(2**31 + 5)):
        want = np.asarray(expected(key))
        np.testing.assert_array_equal(np.asarray(layers.random_words(key, count)), want)
        np.testing.assert_array_equal(
            np.asarray(jax.jit(layers.random_words, static_argnums=1)(key, count)), want)
    keys = jax.random.split(jax.random.key(9), 3)
    np.testing.assert_array_equal(
        np.asarray(jax.vmap(lambda k: layers.random_words(k, count))(keys)),
        np.asarray(jax.vmap(expected)(keys)))


def test_random_words_of_other_prngs_come_from_jax():
    key = jax.random.key(5, impl="rbg")
    assert layers._threefry_key_words(key) is None
    np.testing.assert_array_equal(np.asarray(layers.random_words(key, 1000)),
                                  np.asarray(jax.random.bits(key, (1000,), jnp.uint32)))
    assert layers._threefry_key_words(jax.random.key_data(key)) is None  # raw, 4 words


def test_random_words_compile_to_one_loop_free_fusion():
    """The reason random_words exists: no while loop (JAX's CPU lowering of threefry has
    one, whose every iteration reads and writes the whole array)."""
    hlo = jax.jit(layers.random_words, static_argnums=1).lower(
        jax.random.key(0), 1 << 16).compile().as_text()
    assert " while(" not in hlo
    rolled = jax.jit(lambda k: jax.random.bits(k, (1 << 16,), jnp.uint32)).lower(
        jax.random.key(0)).compile().as_text()
    if jax.default_backend() == "cpu":
        assert " while(" in rolled  # what the test above compares against


@pytest.mark.parametrize("shape", [(8, 128, 768), (3, 5, 7)])
def test_16_bit_masks_follow_the_documented_draws(shape):
    """Element i of the flattened mask is kept when its 16-bit draw reaches round(rate *
    2^16): the low halves of jax.random.bits' words for the first half of the elements,
    the high halves for the rest. The masks of runs before random_words stay the same."""
    key, rate = jax.random.key(11), 0.1
    size = int(np.prod(shape))
    words = np.asarray(jax.random.bits(key, ((size + 1) // 2,), jnp.uint32))
    draws = np.concatenate([words & 0xFFFF, words >> 16])[:size]
    keep, _ = jax.jit(keep_mask, static_argnums=(1, 2))(key, rate, shape)
    np.testing.assert_array_equal(np.asarray(keep), (draws >= round(rate * 65536)).reshape(shape))
