"""Properties of MLM masking: statistics over many sequences, invariants, reproducibility."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax import masking

PAD, CLS, SEP, MASK, UNK, VOCAB = 0, 1, 2, 30, 59, 60  # Specials not contiguous: tests remap.
SPECIALS = (SEP, UNK, PAD, MASK, CLS)  # Unsorted on purpose.
ALLOWED = np.setdiff1d(np.arange(VOCAB), SPECIALS)
B, L, P = 4096, 128, 20
LONG_WORD = P + 5


def make_batch(seed=0, batch=B, length=L):
    """Random [CLS] a [SEP] b [SEP] sequences with padding, stray specials and long words.

    Half the rows are full length (for per-position statistics). Row 0 is all padding and
    row 1 holds only specials: neither has candidates.
    """
    rng = np.random.default_rng(seed)
    ids = rng.choice(ALLOWED, size=(batch, length)).astype(np.int32)
    stray = rng.random((batch, length))
    ids[stray < 0.02] = UNK
    ids[(stray >= 0.02) & (stray < 0.03)] = MASK  # An input [MASK] is never a target.
    short = rng.integers(min(8, length // 2), length, batch)
    lengths = np.where(rng.random(batch) < 0.5, length, short)
    ids[:, 0] = CLS
    ids[np.arange(batch), lengths // 2] = SEP
    ids[np.arange(batch), lengths - 1] = SEP
    attention = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int32)
    ids[attention == 0] = PAD
    word_start = (rng.random((batch, length)) < 0.6).astype(np.int32)
    long_rows = np.flatnonzero(rng.random(batch) < 0.05) if length > LONG_WORD + 1 else []
    for row in long_rows:  # Words longer than P.
        start = rng.integers(1, length - LONG_WORD)
        word_start[row, start:start + LONG_WORD] = 0
        word_start[row, start] = 1
    ids[0], attention[0] = PAD, 0
    ids[1] = rng.choice(SPECIALS, size=length)
    return ids, attention, word_start


def config(**overrides):
    kwargs = dict(vocab_size=VOCAB, mask_id=MASK, special_ids=SPECIALS, max_predictions=P)
    return masking.MaskingConfig(**{**kwargs, **overrides})


def candidates(ids, attention):
    return (attention == 1) & ~np.isin(ids, SPECIALS)


def expected_n(ids, attention, rate=0.15, max_predictions=P):
    counts = candidates(ids, attention).sum(1)
    return np.array([0 if c == 0 else min(max_predictions, max(1, round(rate * c)))
                     for c in counts])


def numpy_out(out):
    return {k: np.asarray(v) for k, v in out.items()}


def targets_of(out, length=L):
    """bool [B, L] target positions from the compact outputs."""
    target = np.zeros((out["masked_positions"].shape[0], length), bool)
    rows, slots = np.nonzero(out["masked_weights"])
    target[rows, out["masked_positions"][rows, slots]] = True
    return target


@pytest.fixture(scope="module")
def batch():
    return make_batch()


@pytest.fixture(scope="module", params=[False, True], ids=["token", "whole_word"])
def masked(request, batch):
    ids, attention, word_start = batch
    keys = masking.example_keys(jax.random.key(42), 7, jnp.arange(B))
    cfg = config(whole_word=request.param)
    return cfg, numpy_out(masking.mask_tokens(keys, ids, attention, word_start, cfg))


def test_config_validation():
    for field, value in [("mask_rate", 0.0), ("mask_rate", 1.5), ("max_predictions", 0),
                         ("mask_id", VOCAB), ("mask_token_prob", -0.1),
                         ("random_token_prob", 1.1), ("special_ids", (VOCAB,)),
                         ("vocab_size", 0)]:
        with pytest.raises(ValueError, match=field):
            config(**{field: value})
    with pytest.raises(ValueError, match="mask_token_prob"):
        config(mask_token_prob=0.9, random_token_prob=0.2)
    cfg = config(special_ids=[2, 1, 2])  # A list is normalised: the config stays hashable.
    assert cfg.special_ids == (1, 2) and hash(cfg) == hash(config(special_ids=(1, 2)))


def test_shapes_and_dtypes(masked):
    _, out = masked
    assert out["input_ids"].shape == (B, L) and out["input_ids"].dtype == np.int32
    for name, dtype in [("masked_positions", np.int32), ("masked_labels", np.int32),
                        ("masked_weights", np.float32)]:
        assert out[name].shape == (B, P) and out[name].dtype == dtype, name


def test_number_of_targets(batch, masked):
    cfg, out = masked
    ids, attention, _ = batch
    n = expected_n(ids, attention)
    got = out["masked_weights"].sum(1)
    weights = out["masked_weights"]
    assert np.all(np.diff(weights, axis=1) <= 0), "real slots must come first"
    if cfg.whole_word:
        assert np.all(got <= n)  # Whole words only, within the budget.
        rate = got.sum() / n.sum()
        assert rate > 0.97, rate  # Skipping overflowing words keeps the budget nearly full.
    else:
        np.testing.assert_array_equal(got, n)
    rate = got.sum() / candidates(ids, attention).sum()
    assert abs(rate - 0.15) < 0.006, rate
    assert got[0] == 0 and got[1] == 0  # No candidates, no targets.


def test_targets_are_real_candidates_and_labels_are_originals(batch, masked):
    _, out = masked
    ids, attention, _ = batch
    real = out["masked_weights"] > 0
    positions = out["masked_positions"]
    labels = np.take_along_axis(ids, positions, axis=1)
    np.testing.assert_array_equal(out["masked_labels"], np.where(real, labels, 0))
    assert not np.isin(out["masked_labels"][real], SPECIALS).any()
    assert np.all(np.take_along_axis(attention, positions, axis=1)[real] == 1)
    assert np.all(positions[~real] == 0)
    # Ascending, hence unique, among the real slots.
    assert np.all((np.diff(positions, axis=1) > 0) | ~real[:, 1:])
    # Everything but the targets is left alone.
    target = targets_of(out)
    np.testing.assert_array_equal(out["input_ids"][~target], ids[~target])


def test_replacement_split(batch, masked):
    _, out = masked
    ids, _, _ = batch
    target = targets_of(out)
    original, corrupted = ids[target], out["input_ids"][target]
    masked_frac = np.mean(corrupted == MASK)
    random = (corrupted != MASK) & (corrupted != original)
    kept_frac = np.mean(corrupted == original)
    # A random draw equals the original with probability 1 / len(ALLOWED).
    assert abs(masked_frac - 0.8) < 0.01, masked_frac
    assert abs(random.mean() - 0.1 * (1 - 1 / len(ALLOWED))) < 0.007, random.mean()
    assert abs(kept_frac - 0.1 * (1 + 1 / len(ALLOWED))) < 0.007, kept_frac
    drawn = corrupted[random]
    assert not np.isin(drawn, SPECIALS).any()
    counts = np.bincount(drawn, minlength=VOCAB)[ALLOWED]
    expected = len(drawn) / len(ALLOWED)
    # Uniform over the allowed ids: chi-square (mean = dof = 54, sd ~ 10) far from its tail.
    chi2 = np.sum((counts - expected) ** 2 / expected)
    assert chi2 < len(ALLOWED) + 50, (chi2, counts)


def test_targets_spread_uniformly_over_positions(batch, masked):
    _, out = masked
    ids, attention, _ = batch
    full = attention.all(axis=1)
    cand = candidates(ids, attention)[full]
    target = targets_of(out)[full]
    # Rate per block of 16 positions, skipping [CLS] at 0.
    rates = [target[:, s:s + 16].sum() / cand[:, s:s + 16].sum() for s in range(1, L - 16, 16)]
    assert max(rates) / min(rates) < 1.1, rates


def words(ids, attention, word_start):
    """Word index of each candidate piece (-1 elsewhere) and pieces per word, [B, L] each."""
    cand = candidates(ids, attention)
    prev = np.pad(cand[:, :-1], ((0, 0), (1, 0)))
    starts = cand & ((word_start == 1) | ~prev)
    word = np.where(cand, np.cumsum(starts, axis=1) - 1, -1)
    pieces = np.zeros_like(word)
    rows, cols = np.nonzero(cand)
    np.add.at(pieces, (rows, word[rows, cols]), 1)
    return word, pieces


def test_whole_word_takes_whole_words_greedily(batch):
    ids, attention, word_start = batch
    keys = masking.example_keys(jax.random.key(42), 7, jnp.arange(B))
    out = numpy_out(masking.mask_tokens(keys, ids, attention, word_start,
                                        config(whole_word=True)))
    word, pieces = words(ids, attention, word_start)
    hit = np.zeros_like(pieces)
    rows, cols = np.nonzero(targets_of(out))
    assert np.all(word[rows, cols] >= 0)
    np.add.at(hit, (rows, word[rows, cols]), 1)
    assert np.all((hit == 0) | (hit == pieces)), "a word was partially masked"
    assert np.any(pieces > P) and not np.any(hit[pieces > P]), "long words are never targets"
    # Greedy with skipping: no untouched word would still fit in the unused budget.
    left = expected_n(ids, attention) - out["masked_weights"].sum(1).astype(int)
    untouched = np.where((pieces > 0) & (hit == 0), pieces, np.iinfo(np.int32).max)
    assert np.all(untouched.min(axis=1) > left)
    assert np.any(left > 0)  # The last check was not vacuous.


def test_cap_and_short_sequences():
    ids, attention, word_start = make_batch(seed=1, batch=64, length=8)
    keys = masking.example_keys(jax.random.key(0), 0, jnp.arange(64))
    uncapped = expected_n(ids, attention, rate=1.0, max_predictions=8)
    assert uncapped.max() > 2  # So a cap of 2 binds.
    # 12 > L: slots beyond the sequence stay padding.
    for whole_word, cap in [(False, 2), (False, 12), (True, 2)]:
        cfg = config(max_predictions=cap, mask_rate=1.0, whole_word=whole_word)
        out = numpy_out(masking.mask_tokens(keys, ids, attention, word_start, cfg))
        got = out["masked_weights"].sum(1)
        n = np.minimum(uncapped, cap)
        assert out["masked_positions"].shape == (64, cap) and got.max() <= cap
        assert np.all(got <= n) if whole_word else np.array_equal(got, n)


def test_example_keys_formula_with_traced_step():
    base = jax.random.key(3)
    index = jnp.array([5, 0, 1234567])
    got = jax.jit(masking.example_keys)(base, jnp.int32(11), index)
    for i, example in enumerate(index):
        want = jax.random.fold_in(jax.random.fold_in(base, 11), example)
        np.testing.assert_array_equal(jax.random.key_data(got[i]), jax.random.key_data(want))
    legacy = masking.example_keys(jax.random.PRNGKey(3), 11, index)  # Raw uint32 keys too.
    np.testing.assert_array_equal(legacy, jax.random.key_data(got))


def small_batch_masks(keys, rows, cfg):
    ids, attention, word_start = (x[rows] for x in make_batch(seed=2, batch=16, length=32))
    return numpy_out(masking.mask_tokens(keys, ids, attention, word_start, cfg))


@pytest.mark.parametrize("whole_word", [False, True])
def test_masks_depend_only_on_the_example_key(whole_word):
    cfg = config(whole_word=whole_word, mask_rate=0.3)
    step = jnp.int32(4)
    base = jax.random.key(9)
    everything = small_batch_masks(masking.example_keys(base, step, jnp.arange(16)),
                                   np.arange(16), cfg)
    again = small_batch_masks(masking.example_keys(base, step, jnp.arange(16)),
                              np.arange(16), cfg)
    for name in everything:
        np.testing.assert_array_equal(everything[name], again[name])
    # The same examples in another batch, order and size give the same rows.
    rows = np.array([3, 7, 0, 12, 9])
    subset = small_batch_masks(masking.example_keys(base, step, jnp.asarray(rows)), rows, cfg)
    for name in everything:
        np.testing.assert_array_equal(subset[name], everything[name][rows])
    # Another step draws other masks.
    other = small_batch_masks(masking.example_keys(base, step + 1, jnp.arange(16)),
                              np.arange(16), cfg)
    same = np.all(other["masked_positions"] == everything["masked_positions"], axis=1)
    assert same.mean() < 0.25, same


def test_sharded_over_devices_matches_one_device():
    """Inside a per-device step over 8 devices, the masks equal the 1-device masks."""
    devices = jax.devices()
    mesh = jax.sharding.Mesh(np.array(devices), ("batch",))
    spec = jax.sharding.PartitionSpec("batch")
    ids, attention, word_start = make_batch(seed=3, batch=2 * len(devices), length=32)
    cfg = config(whole_word=True, mask_rate=0.3)

    def step_fn(base_key, step, index_B, ids_BxL, attention_BxL, word_start_BxL):
        keys_B = masking.example_keys(base_key, step, index_B)
        return masking.mask_tokens(keys_B, ids_BxL, attention_BxL, word_start_BxL, cfg)

    sharded = jax.jit(jax.shard_map(
        step_fn, mesh=mesh, out_specs=spec,
        in_specs=(jax.sharding.PartitionSpec(), jax.sharding.PartitionSpec(), spec, spec,
                  spec, spec)))
    args = (jax.random.key(1), jnp.int32(2), jnp.arange(ids.shape[0]), ids, attention,
            word_start)
    got, want = numpy_out(sharded(*args)), numpy_out(jax.jit(step_fn)(*args))
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])


def test_mask_example_matches_a_batch_row():
    ids, attention, word_start = make_batch(seed=2, batch=16, length=32)
    keys = masking.example_keys(jax.random.key(0), 0, jnp.arange(16))
    cfg = config(whole_word=True, mask_rate=0.3)
    batched = numpy_out(masking.mask_tokens(keys, ids, attention, word_start, cfg))
    single = masking.mask_example(keys[5], ids[5], attention[5], word_start[5], cfg)
    for name in batched:
        np.testing.assert_array_equal(np.asarray(single[name]), batched[name][5])
    with pytest.raises(ValueError, match="word_start"):
        masking.mask_tokens(keys, ids, attention, None, cfg)
