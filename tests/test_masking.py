"""Properties of MLM masking: statistics over many sequences, invariants, reproducibility."""
import dataclasses

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
    """Random [CLS] a [SEP] b [SEP] sequences with padding, stray specials and long words:
    (ids, attention, word_start, coarse_start), coarse tokens being runs of whole words.

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
    coarse_start = word_start * (rng.random((batch, length)) < 0.6)  # Phrases of ~1.7 words.
    return ids, attention, word_start, coarse_start


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


# (strategy, replace_unit) cases every generic property is checked on.
CASES = [("token", "piece"), ("whole_word", "piece"), ("ngram", "piece"), ("span", "piece"),
         ("coarse", "piece"), ("whole_word", "word"), ("span", "word"), ("coarse", "word")]


def mask_batch(batch, cfg, base=42, step=7):
    ids, attention, word_start, coarse_start = batch
    keys = masking.example_keys(jax.random.key(base), step, jnp.arange(ids.shape[0]))
    return numpy_out(masking.mask_tokens(keys, ids, attention, word_start, cfg, coarse_start))


def unit_ids(batch, cfg, base=42, step=7):
    """int [B, L] units of each candidate (L elsewhere), drawn with mask_batch's keys."""
    ids, attention, word_start, coarse_start = batch
    keys = masking.example_keys(jax.random.key(base), step, jnp.arange(ids.shape[0]))
    per_example = lambda k, i, a, w, c: masking.unit_ids(k, i, a, w, cfg, c)
    return np.asarray(jax.vmap(per_example)(keys, ids, attention, word_start, coarse_start))


def binomial_tol(p, n, z=5.0):
    """z standard deviations of a frequency of probability p over n independent draws."""
    return z * np.sqrt(p * (1 - p) / n)


@pytest.fixture(scope="module", params=CASES, ids=["-".join(c) for c in CASES])
def masked(request, batch):
    strategy, replace_unit = request.param
    cfg = config(strategy=strategy, replace_unit=replace_unit)
    return cfg, mask_batch(batch, cfg)


def test_config_validation():
    for field, value in [("mask_rate", 0.0), ("mask_rate", 1.5), ("max_predictions", 0),
                         ("mask_id", VOCAB), ("mask_token_prob", -0.1),
                         ("random_token_prob", 1.1), ("special_ids", (VOCAB,)),
                         ("vocab_size", 0), ("strategy", "bpe"), ("replace_unit", "span"),
                         ("max_ngram", 0), ("max_span", 0), ("span_p", 0.0), ("span_p", 1.5),
                         ("dupe_factor", 0)]:
        with pytest.raises(ValueError, match=field):
            config(**{field: value})
    with pytest.raises(ValueError, match="mask_token_prob"):
        config(mask_token_prob=0.9, random_token_prob=0.2)
    with pytest.raises(ValueError, match="whole_word"):
        config(whole_word=True, strategy="span")
    # whole_word=True is an alias: one config, however it is spelled, and replaceable.
    assert config(whole_word=True) == config(strategy="whole_word")
    assert dataclasses.replace(config(whole_word=True), strategy="span").strategy == "span"
    cfg = config(special_ids=[2, 1, 2])  # A list is normalised: the config stays hashable.
    assert cfg.special_ids == (1, 2) and hash(cfg) == hash(config(special_ids=(1, 2)))


def test_shapes_and_dtypes(masked):
    _, out = masked
    assert out["input_ids"].shape == (B, L) and out["input_ids"].dtype == np.int32
    assert out["masked"].shape == (B, L) and out["masked"].dtype == bool
    for name, dtype in [("masked_positions", np.int32), ("masked_labels", np.int32),
                        ("masked_weights", np.float32)]:
        assert out[name].shape == (B, P) and out[name].dtype == dtype, name


def words(ids, attention, word_start):
    """Word index of each candidate piece (-1 elsewhere) and pieces per word, [B, L] each.

    With coarse_start in place of word_start: the coarse tokens."""
    cand = candidates(ids, attention)
    prev = np.pad(cand[:, :-1], ((0, 0), (1, 0)))
    starts = cand & ((word_start == 1) | ~prev)
    word = np.where(cand, np.cumsum(starts, axis=1) - 1, -1)
    pieces = np.zeros_like(word)
    rows, cols = np.nonzero(cand)
    np.add.at(pieces, (rows, word[rows, cols]), 1)
    return word, pieces


def hits_per_group(target, group, num_groups):
    """int [B, num_groups]: targets in each group (group -1 = none)."""
    hit = np.zeros((target.shape[0], num_groups), int)
    rows, cols = np.nonzero(target)
    assert np.all(group[rows, cols] >= 0), "a target outside every group"
    np.add.at(hit, (rows, group[rows, cols]), 1)
    return hit


def test_number_of_targets(batch, masked):
    cfg, out = masked
    ids, attention, _, coarse_start = batch
    got = out["masked_weights"].sum(1)
    assert np.all(np.diff(out["masked_weights"], axis=1) <= 0), "real slots must come first"
    if cfg.strategy == "coarse":  # The budget counts coarse tokens.
        group, pieces = words(ids, attention, coarse_start)
        chosen = (hits_per_group(targets_of(out), group, L) > 0).sum(1)
        counts = (pieces > 0).sum(1)
        n = np.array([0 if c == 0 else min(P, max(1, round(0.15 * c))) for c in counts])
        assert np.all(chosen <= n)
        assert chosen.sum() / n.sum() > 0.97, chosen.sum() / n.sum()
        rate = chosen.sum() / counts.sum()
    else:
        n = expected_n(ids, attention)
        if cfg.strategy == "token":
            np.testing.assert_array_equal(got, n)
        else:
            assert np.all(got <= n)  # Whole words only, within the budget.
            # Skipping (or cutting) overflowing units keeps the budget nearly full.
            assert got.sum() / n.sum() > 0.97, got.sum() / n.sum()
        rate = got.sum() / candidates(ids, attention).sum()
    # Not a random quantity: n is fixed per row; the slack is rounding and skipped units.
    assert abs(rate - 0.15) < 0.006, rate
    assert got[0] == 0 and got[1] == 0  # No candidates, no targets.


def test_targets_are_real_candidates_and_labels_are_originals(batch, masked):
    _, out = masked
    ids, attention, _, _ = batch
    real = out["masked_weights"] > 0
    positions = out["masked_positions"]
    labels = np.take_along_axis(ids, positions, axis=1)
    np.testing.assert_array_equal(out["masked_labels"], np.where(real, labels, 0))
    assert not np.isin(out["masked_labels"][real], SPECIALS).any()
    assert np.all(np.take_along_axis(attention, positions, axis=1)[real] == 1)
    assert np.all(positions[~real] == 0)
    # Ascending, hence unique, among the real slots.
    assert np.all((np.diff(positions, axis=1) > 0) | ~real[:, 1:])
    # `masked` is exactly the slots' positions; everything else is left alone.
    target = targets_of(out)
    np.testing.assert_array_equal(out["masked"], target)
    np.testing.assert_array_equal(out["input_ids"][~target], ids[~target])


def test_replacement_split(batch, masked):
    cfg, out = masked
    ids = batch[0]
    target = targets_of(out)
    original, corrupted = ids[target], out["input_ids"][target]
    # Independent 80/10/10 decisions: one per target, or one per chosen unit. Per-piece
    # fractions then have variance p(1-p) sum(size^2) / sum(size)^2 = p(1-p) / n_eff.
    if cfg.replace_unit == "word":
        units = unit_ids(batch, cfg)
        sizes = hits_per_group(target, np.where(units < L, units, -1), L)
        n_eff = sizes.sum() ** 2 / np.sum(sizes.astype(float) ** 2)
    else:
        n_eff = target.sum()
    masked_frac = np.mean(corrupted == MASK)
    random = (corrupted != MASK) & (corrupted != original)
    kept_frac = np.mean(corrupted == original)
    # A random draw equals the original with probability 1 / len(ALLOWED).
    p_random = 0.1 * (1 - 1 / len(ALLOWED))
    assert abs(masked_frac - 0.8) < binomial_tol(0.8, n_eff), (masked_frac, n_eff)
    assert abs(random.mean() - p_random) < binomial_tol(p_random, n_eff), random.mean()
    assert abs(kept_frac - (0.2 - p_random)) < binomial_tol(0.2 - p_random, n_eff), kept_frac
    drawn = corrupted[random]
    assert not np.isin(drawn, SPECIALS).any()
    counts = np.bincount(drawn, minlength=VOCAB)[ALLOWED]
    expected = len(drawn) / len(ALLOWED)
    # Uniform over the allowed ids: chi-square (mean = dof = 54, sd ~ 10) far from its tail.
    chi2 = np.sum((counts - expected) ** 2 / expected)
    assert chi2 < len(ALLOWED) + 50, (chi2, counts)


def assert_flat_over_positions(batch, cfg, out, block):
    """Masking rate per block of positions of the full-length rows (skipping [CLS]) within
    4.5 sd of the overall rate. Targets come in units, so the binomial variance of a
    block's rate is scaled by the size-weighted mean unit size sum(s^2) / sum(s)."""
    ids, attention, _, _ = batch
    length = ids.shape[1]
    full = attention.all(axis=1)
    cand = candidates(ids, attention)[full]
    target = out["masked"][full]
    units = unit_ids(batch, cfg)[full]
    sizes = hits_per_group(cand, np.where(units < length, units, -1), length)
    cluster = np.sum(sizes.astype(float) ** 2) / sizes.sum()
    rate = target[:, 1:].sum() / cand[:, 1:].sum()
    for start in range(1, length - block + 1, block):
        n = cand[:, start:start + block].sum()
        got = target[:, start:start + block].sum() / n
        assert abs(got - rate) < 4.5 * np.sqrt(rate * (1 - rate) * cluster / n), (start, got,
                                                                                  rate)


def test_targets_spread_uniformly_over_positions(batch, masked):
    cfg, out = masked
    assert_flat_over_positions(batch, cfg, out, block=16)


@pytest.mark.parametrize("strategy", ["whole_word", "ngram", "span", "coarse"])
def test_units_are_taken_whole_or_cut_at_a_word_end(batch, strategy):
    """No word is ever partially masked; whole_word/coarse units are all-or-none; ngram and
    span units are all-or-none or a whole-word prefix (the one cut at the budget)."""
    ids, attention, word_start, coarse_start = batch
    cfg = config(strategy=strategy)
    target = mask_batch(batch, cfg)["masked"]
    word, pieces = words(ids, attention, word_start)  # coarse_start marks only word starts.
    hit = hits_per_group(target, word, L)
    assert np.all((hit == 0) | (hit == pieces)), "a word was partially masked"
    assert np.any(pieces > P) and not np.any(hit[pieces > P]), "long words are never targets"
    units = unit_ids(batch, cfg)
    same_unit = (units[:, 1:] == units[:, :-1]) & (units[:, 1:] < L)
    if strategy == "coarse":  # unit_ids and the test's own reading of coarse_start agree.
        np.testing.assert_array_equal(units, np.where(word >= 0, words(
            ids, attention, coarse_start)[0], L))
    if strategy in ("ngram", "span"):
        cut = same_unit & target[:, :-1] & ~target[:, 1:]
        assert not np.any(same_unit & target[:, 1:] & ~target[:, :-1]), "not a prefix"
        assert cut.any(), "no unit was cut: vacuous"
    else:
        assert not np.any(same_unit & (target[:, 1:] != target[:, :-1]))
        assert np.any(same_unit[target[:, 1:]]), "no unit of several pieces: vacuous"


def test_whole_word_takes_whole_words_greedily(batch):
    ids, attention, word_start, _ = batch
    out = mask_batch(batch, config(whole_word=True))
    word, pieces = words(ids, attention, word_start)
    hit = hits_per_group(targets_of(out), word, L)
    # Greedy with skipping: no untouched word would still fit in the unused budget.
    left = expected_n(ids, attention) - out["masked_weights"].sum(1).astype(int)
    untouched = np.where((pieces > 0) & (hit == 0), pieces, np.iinfo(np.int32).max)
    assert np.all(untouched.min(axis=1) > left)
    assert np.any(left > 0)  # The last check was not vacuous.


@pytest.mark.parametrize("strategy", masking.STRATEGIES)
def test_cap_and_short_sequences(strategy):
    batch = make_batch(seed=1, batch=64, length=8)
    ids, attention, _, coarse_start = batch
    uncapped = expected_n(ids, attention, rate=1.0, max_predictions=8)
    assert uncapped.max() > 2  # So a cap of 2 binds.
    # 12 > L: slots beyond the sequence stay padding.
    for cap in (2, 12):
        cfg = config(max_predictions=cap, mask_rate=1.0, strategy=strategy)
        out = mask_batch(batch, cfg)
        got = out["masked_weights"].sum(1)
        n = np.minimum(uncapped, cap)
        assert out["masked_positions"].shape == (64, cap) and got.max() <= cap
        if strategy == "token":
            np.testing.assert_array_equal(got, n)
        elif strategy != "coarse":  # Coarse budgets count coarse tokens, not pieces.
            assert np.all(got <= n)
        np.testing.assert_array_equal(out["masked"], targets_of(out, length=8))


def test_example_keys_formula_with_traced_step():
    base = jax.random.key(3)
    index = jnp.array([5, 0, 1234567])
    got = jax.jit(masking.example_keys)(base, jnp.int32(11), index)
    for i, example in enumerate(index):
        want = jax.random.fold_in(jax.random.fold_in(base, 11), example)
        np.testing.assert_array_equal(jax.random.key_data(got[i]), jax.random.key_data(want))
    legacy = masking.example_keys(jax.random.PRNGKey(3), 11, index)  # Raw uint32 keys too.
    np.testing.assert_array_equal(legacy, jax.random.key_data(got))


def test_static_keys_formula():
    base = jax.random.key(3)
    rows, epochs = jnp.array([5, 0, 99]), jnp.array([0, 4, 7])
    got = jax.jit(masking.static_example_keys, static_argnums=3)(base, rows, epochs, 3)
    for i in range(3):
        want = jax.random.fold_in(jax.random.fold_in(base, int(epochs[i]) % 3), int(rows[i]))
        np.testing.assert_array_equal(jax.random.key_data(got[i]), jax.random.key_data(want))


def small_batch_masks(keys, rows, cfg):
    batch = tuple(x[rows] for x in make_batch(seed=2, batch=16, length=64))
    ids, attention, word_start, coarse_start = batch
    return numpy_out(masking.mask_tokens(keys, ids, attention, word_start, cfg, coarse_start))


@pytest.mark.parametrize("strategy", masking.STRATEGIES)
def test_masks_depend_only_on_the_example_key(strategy):
    cfg = config(strategy=strategy, mask_rate=0.3)
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
    # Another step draws other masks (dynamic masking).
    other = small_batch_masks(masking.example_keys(base, step + 1, jnp.arange(16)),
                              np.arange(16), cfg)
    same = np.all(other["masked"] == everything["masked"], axis=1)
    assert same[2:].mean() < 0.25, same  # Rows 0 and 1 have no candidates.


@pytest.mark.parametrize("strategy", ["token", "span"])
def test_static_masks_repeat_every_dupe_factor_epochs(strategy):
    """Static keys: row r in epoch e, whatever the step or the row's place in the batch."""
    dupe = 3
    cfg = config(strategy=strategy, static=True, dupe_factor=dupe, mask_rate=0.3)
    base = jax.random.key(9)
    rows = np.arange(16)

    def masks(epoch, order=rows):
        keys = masking.static_example_keys(base, jnp.asarray(order), jnp.full(16, epoch), dupe)
        return small_batch_masks(keys, order, cfg)

    first = masks(2)
    for name, value in masks(2 + dupe).items():  # Same mask dupe_factor epochs later.
        np.testing.assert_array_equal(value, first[name])
    shuffled = np.random.default_rng(0).permutation(16)  # Another place in the batch.
    np.testing.assert_array_equal(masks(2, shuffled)["masked"], first["masked"][shuffled])
    for epoch in (3, 4):  # The other epochs of the period draw other masks.
        same = np.all(masks(epoch)["masked"] == first["masked"], axis=1)
        assert same.mean() < 0.25, (epoch, same)


def test_sharded_over_devices_matches_one_device():
    """Inside a per-device step over 8 devices, the masks equal the 1-device masks."""
    devices = jax.devices()
    mesh = jax.sharding.Mesh(np.array(devices), ("batch",))
    spec = jax.sharding.PartitionSpec("batch")
    ids, attention, word_start, _ = make_batch(seed=3, batch=2 * len(devices), length=32)
    cfg = config(strategy="span", mask_rate=0.3, replace_unit="word")

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
    ids, attention, word_start, coarse_start = make_batch(seed=2, batch=16, length=32)
    keys = masking.example_keys(jax.random.key(0), 0, jnp.arange(16))
    for cfg in (config(whole_word=True, mask_rate=0.3), config(strategy="coarse")):
        batched = numpy_out(masking.mask_tokens(keys, ids, attention, word_start, cfg,
                                                coarse_start))
        single = masking.mask_example(keys[5], ids[5], attention[5], word_start[5], cfg,
                                      coarse_start[5])
        for name in batched:
            np.testing.assert_array_equal(np.asarray(single[name]), batched[name][5])
    with pytest.raises(ValueError, match="word_start"):
        masking.mask_tokens(keys, ids, attention, None, config(strategy="ngram"))
    with pytest.raises(ValueError, match="coarse_start"):
        masking.mask_tokens(keys, ids, attention, word_start, config(strategy="coarse"))


@pytest.mark.parametrize("strategy", ["whole_word", "span", "coarse"])
def test_per_word_replacement_shares_the_decision(batch, strategy):
    """replace_unit="word": all pieces of a chosen unit are [MASK], or none is, and the
    others are all kept or all random (up to a random id equal to the original)."""
    ids = batch[0]
    verdicts = {}
    for replace_unit in ("word", "piece"):
        cfg = config(strategy=strategy, replace_unit=replace_unit)
        out = mask_batch(batch, cfg)
        units = unit_ids(batch, cfg)
        group = np.where(out["masked"], units, -1)  # Units of the targets only.
        size = hits_per_group(out["masked"], group, L)
        as_mask = hits_per_group(out["masked"] & (out["input_ids"] == MASK), group, L)
        changed = hits_per_group(out["masked"] & (out["input_ids"] != ids), group, L)
        several = size > 1
        mixed_mask = several & (as_mask > 0) & (as_mask < size)
        no_mask = several & (as_mask == 0)
        mixed_change = no_mask & (changed > 0) & (changed < size)
        verdicts[replace_unit] = mixed_mask.sum(), mixed_change.sum() / no_mask.sum()
        if replace_unit == "word":
            frac = (as_mask[size > 0] == size[size > 0]).mean()  # One decision per unit.
            assert abs(frac - 0.8) < binomial_tol(0.8, (size > 0).sum()), frac
    assert verdicts["word"][0] == 0, verdicts
    # A random replacement equals the original with probability 1 / len(ALLOWED) per piece.
    assert verdicts["word"][1] < 0.05, verdicts
    assert verdicts["piece"][0] > 100 and verdicts["piece"][1] > 0.2, verdicts  # Not vacuous.


def single_run_batch(batch, length, seed=0):
    """[CLS] words [SEP], full length, no other specials: one run of words per row."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(ALLOWED, size=(batch, length)).astype(np.int32)
    ids[:, 0], ids[:, -1] = CLS, SEP
    word_start = (rng.random((batch, length)) < 0.6).astype(np.int32)
    return ids, np.ones_like(ids), word_start, word_start


def complete_tile_counts(probs, num_words):
    """Expected number of tiles of each length 1..N that end before the last word of a run
    of `num_words` words tiled from its start by i.i.d. lengths ~ probs (a renewal process:
    u[x] = P(a tile starts at word x))."""
    n = np.arange(1, len(probs) + 1)
    u = np.zeros(num_words)
    u[0] = 1.0
    for x in range(1, num_words):
        back = x - n
        u[x] = np.sum(probs[back >= 0] * u[back[back >= 0]])
    before = np.concatenate([[0.0], np.cumsum(u)])  # before[k] = sum of u[:k]
    return probs * before[np.clip(num_words - n, 0, None)]


@pytest.mark.parametrize("strategy,law", [
    ("ngram", (1 / np.arange(1, 4)) / np.sum(1 / np.arange(1, 4))),
    ("span", 0.2 * 0.8 ** np.arange(10) / np.sum(0.2 * 0.8 ** np.arange(10)))])
def test_span_lengths_follow_the_law(strategy, law):
    """Span lengths in words: p(n) ~ 1/n, n <= 3 (ngram); Geo(0.2) truncated at 10 (span).

    The drawn spans are the units of a row but its last one (cut by the end of the row);
    their expected counts follow from the renewal process, exactly. Within a row, the spans
    chosen (touched by the mask) are a uniform choice among its spans, whatever their
    length, but for the one at which the budget runs out (it is cut), which is size-biased
    like any span straddling a point: ~+2% on the mean at L=128. Across rows, rows of longer
    spans have fewer of them, each likelier chosen, so chosen spans are compared with the
    drawn ones of their own rows, within 4% (the skip rule, say, would give -30%)."""
    batch = single_run_batch(2048, L)
    cfg = config(strategy=strategy)
    units = unit_ids(batch, cfg)
    ids, attention, word_start, _ = batch
    word, pieces = words(ids, attention, word_start)
    num_words = (pieces > 0).sum(1)
    target = mask_batch(batch, cfg)["masked"]
    cand = candidates(ids, attention)
    starts = cand & ((word_start == 1) | ~np.pad(cand[:, :-1], ((0, 0), (1, 0))))
    drawn, chosen, expected, uniform_choice = (np.zeros(len(law)) for _ in range(4))
    for row in range(len(ids)):
        u = units[row][units[row] < L]
        length_U = np.bincount(units[row][starts[row]], minlength=u.max() + 1)
        touched_U = np.bincount(u, weights=target[row][units[row] < L]) > 0
        row_drawn = np.bincount(length_U[:-1] - 1, minlength=len(law))  # The last is cut.
        drawn += row_drawn
        chosen += np.bincount(length_U[:-1][touched_U[:-1]] - 1, minlength=len(law))
        expected += complete_tile_counts(law, num_words[row])
        uniform_choice += row_drawn * touched_U[:-1].sum() / max(1, row_drawn.sum())
    n = np.arange(1, len(law) + 1)
    chi2 = np.sum((drawn - expected) ** 2 / expected)
    dof = len(law) - 1
    assert chi2 < dof + 6 * np.sqrt(2 * dof), (chi2, drawn, expected)
    p_drawn = expected / expected.sum()
    assert abs(drawn[0] / drawn.sum() - p_drawn[0]) < binomial_tol(p_drawn[0], drawn.sum())
    mean = lambda counts: np.sum(n * counts) / counts.sum()
    sd = np.sqrt(np.sum(n ** 2 * p_drawn) - np.sum(n * p_drawn) ** 2)
    assert abs(mean(drawn) - mean(expected)) < 5 * sd / np.sqrt(drawn.sum())
    p_chosen, p_uniform = chosen / chosen.sum(), uniform_choice / uniform_choice.sum()
    assert abs(mean(chosen) / mean(uniform_choice) - 1) < 0.04, mean(chosen)
    for k in (0, 1):
        assert abs(p_chosen[k] / p_uniform[k] - 1) < 0.06, (k, p_chosen, p_uniform)
    print(f"{strategy}: law mean {mean(law):.3f} words; drawn spans (row ends excluded) "
          f"{mean(drawn):.3f} (expected {mean(expected):.3f}), chi2 {chi2:.1f} (dof {dof}); "
          f"chosen {mean(chosen):.3f} (uniform choice per row: {mean(uniform_choice):.3f})")


def test_span_positions_are_uniform_at_512():
    """At SpanBERT's length, with a tighter test than at 128 (where a ~19-piece budget holds
    ~3 spans and the first words after [CLS]/[SEP] are masked up to ~1.3x as often: a span
    always starts there, and a span cut at the budget keeps its first words)."""
    length = 512
    batch = make_batch(seed=4, batch=1024, length=length)
    cfg = config(strategy="span", max_predictions=77)
    assert_flat_over_positions(batch, cfg, mask_batch(batch, cfg), block=32)
