"""Vectorized masked-language-model (MLM) masking, run on device inside the train step.

Pure `jax.numpy`: static shapes, jit-able with the `MaskingConfig` static, vmapped over
the per-device batch. Every example is masked with its own key only,
`fold_in(fold_in(base_key, step), global_example_index)` (see `example_keys`), so an
example's mask does not depend on its batch neighbours, the batch size or the device count,
and a resumed run draws the same masks.

Rules (as in google-research/bert `create_pretraining_data.py`, vectorized):

* Candidates are real (`attention_mask == 1`) tokens whose id is not special. `mask_id`
    always counts as special, whether or not it is listed in `special_ids`.
* Number of targets per sequence, with `c` the number of candidates:
    `n = min(P, max(1, round(mask_rate * c)))`, and `n = 0` when `c == 0`. `round` is
    Python's (float64, ties to even), evaluated exactly on the host for every possible `c`
    and looked up on device, so float32 rounding never moves `n`.
* Token masking picks `n` candidates uniformly at random without replacement.
* Whole-word masking visits the words in a uniformly random order and takes a word (all its
    pieces) if its piece count still fits in what is left of the budget `n`; a word that would
    overflow is skipped and the next ones are still tried, exactly as google-research/bert does.
    A word is never partially masked, so a word longer than `n` is never a target, and the
    number of targets can be below `n`.
* Each target independently becomes `mask_id` with probability `mask_token_prob`, a uniform
    random non-special id with probability `random_token_prob`, and stays unchanged otherwise.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class MaskingConfig:
    """Static masking hyper-parameters; hashable, so it can be a static jit argument.

    Attributes:
        vocab_size: number of token ids; ids are in [0, vocab_size).
        mask_id: id of the [MASK] token; also treated as special.
        special_ids: ids never chosen as targets and never drawn as random replacements
            (e.g. pad, unk, cls, sep, mask). Stored sorted and de-duplicated.
        mask_rate: fraction of candidates to predict, in (0, 1].
        max_predictions: P, the static number of prediction slots per sequence, >= 1.
        mask_token_prob: probability that a target is replaced by `mask_id`.
        random_token_prob: probability that a target is replaced by a random non-special id;
            with probability 1 - mask_token_prob - random_token_prob it is kept.
        whole_word: choose whole words (runs of word pieces) rather than single tokens.
    """
    vocab_size: int
    mask_id: int
    special_ids: tuple[int, ...]
    mask_rate: float = 0.15
    max_predictions: int = 20
    mask_token_prob: float = 0.8
    random_token_prob: float = 0.1
    whole_word: bool = False

    def __post_init__(self):
        if self.vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {self.vocab_size}")
        if not 0 <= self.mask_id < self.vocab_size:
            raise ValueError(
                f"mask_id must be in [0, vocab_size={self.vocab_size}), got {self.mask_id}")
        specials = tuple(sorted(set(int(i) for i in self.special_ids)))
        bad = [i for i in specials if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"special_ids must be in [0, vocab_size={self.vocab_size}), got {bad}")
        object.__setattr__(self, "special_ids", specials)  # A list would break hashing.
        if not 0.0 < self.mask_rate <= 1.0:
            raise ValueError(f"mask_rate must be in (0, 1], got {self.mask_rate}")
        if self.max_predictions < 1:
            raise ValueError(f"max_predictions must be >= 1, got {self.max_predictions}")
        for name in ("mask_token_prob", "random_token_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.mask_token_prob + self.random_token_prob > 1.0 + 1e-9:
            raise ValueError(
                "mask_token_prob + random_token_prob must be <= 1, got "
                f"{self.mask_token_prob} + {self.random_token_prob}")
        if self.random_token_prob > 0 and len(self.excluded_ids) >= self.vocab_size:
            raise ValueError(
                "random_token_prob > 0 needs a non-special id to draw, but special_ids and "
                f"mask_id cover the whole vocab_size={self.vocab_size}")

    @property
    def excluded_ids(self) -> tuple[int, ...]:
        """Sorted ids that are never targets nor random replacements: specials and mask_id."""
        return tuple(sorted(set(self.special_ids) | {self.mask_id}))


def example_keys(base_key, step, example_index_B):
    """Per-example keys: `fold_in(fold_in(base_key, step), example_index_B[i])`.

    Args:
        base_key: a PRNG key (typed `jax.random.key` or legacy uint32[2]).
        step: int scalar, may be traced.
        example_index_B: int [B] global indices of the examples in the batch.

    Returns:
        keys_B: [B] keys (legacy keys come back as uint32 [B, 2]).
    """
    step_key = jax.random.fold_in(base_key, step)
    return jax.vmap(lambda i: jax.random.fold_in(step_key, i))(jnp.asarray(example_index_B))


@functools.cache
def _num_targets_table(length: int, mask_rate: float, max_predictions: int) -> np.ndarray:
    """int32 [length + 1]: n for each possible candidate count, exactly as in Python."""
    counts = range(length + 1)
    return np.array([0 if c == 0 else min(max_predictions, max(1, int(round(c * mask_rate))))
                     for c in counts], np.int32)


def _choose_tokens(key, candidate_L, num_targets, max_targets):
    """bool [L]: `num_targets` (<= max_targets) candidates, uniformly without replacement."""
    length = candidate_L.shape[0]
    # Random scores; non-candidates score below every candidate, so the `num_targets`
    # best are all candidates (num_targets <= number of candidates).
    scores_L = jnp.where(candidate_L, jax.random.uniform(key, (length,)), -1.0)
    k = min(max_targets, length)
    _, top_K = jax.lax.top_k(scores_L, k)
    return jnp.zeros((length,), bool).at[top_K].set(jnp.arange(k) < num_targets)


def _choose_words(key, candidate_L, word_start_L, num_targets):
    """bool [L]: whole words chosen greedily in random order within a budget of pieces.

    A word starts at a candidate with `word_start == 1`, or at a candidate that follows a
    non-candidate (a stray continuation piece after [CLS]/[SEP]/padding), and runs over the
    following candidates with `word_start == 0`.

    Greedy-with-skip over the random order is sequential; it is computed in passes instead:
    each pass keeps the untaken words that still fit the remaining budget (in the same
    order) and takes the longest prefix whose piece count fits. A word a pass stops at can
    never fit later (the budget only shrinks), so the passes take exactly the words the
    sequential greedy takes; each pass takes at least one word, and few passes are needed.
    """
    length = candidate_L.shape[0]
    prev_candidate_L = jnp.concatenate([jnp.zeros((1,), bool), candidate_L[:-1]])
    starts_L = candidate_L & ((word_start_L == 1) | ~prev_candidate_L)
    word_L = jnp.cumsum(starts_L) - 1  # Word index of each candidate piece.
    num_words = jnp.sum(starts_L)
    word_L = jnp.where(candidate_L, word_L, length)  # Out of range: dropped by segment_sum.
    pieces_W = jax.ops.segment_sum(jnp.ones((length,), jnp.int32), word_L, num_segments=length)

    valid_W = jnp.arange(length) < num_words
    order_W = jnp.argsort(jnp.where(valid_W, jax.random.uniform(key, (length,)), 2.0))
    pieces_S = pieces_W[order_W]  # S: words in visiting order.
    valid_S = valid_W[order_W]

    def eligible(taken_S, budget):
        return valid_S & ~taken_S & (pieces_S <= budget)

    def one_pass(state):
        taken_S, budget = state
        elig_S = eligible(taken_S, budget)
        take_S = elig_S & (jnp.cumsum(jnp.where(elig_S, pieces_S, 0)) <= budget)
        return taken_S | take_S, budget - jnp.sum(jnp.where(take_S, pieces_S, 0))

    # zeros_like, not zeros: the carry must vary across devices like the data (shard_map).
    taken_S, _ = jax.lax.while_loop(
        lambda state: jnp.any(eligible(*state)), one_pass,
        (jnp.zeros_like(valid_S), num_targets))
    taken_W = jnp.zeros((length,), bool).at[order_W].set(taken_S)
    return candidate_L & taken_W[jnp.minimum(word_L, length - 1)]


def _compact(target_L, num_slots):
    """Ascending target positions in `num_slots` slots: (positions_P, weights_P).

    Requires sum(target_L) <= num_slots; padding slots point at position 0.
    """
    length = target_L.shape[0]
    pad = max(0, num_slots - length)
    target_N = jnp.pad(target_L, (0, pad))
    n = target_N.shape[0]
    # Larger score = earlier target position; non-targets score 0.
    scores_N = jnp.where(target_N, n - jnp.arange(n), 0)
    _, positions_P = jax.lax.top_k(scores_N, num_slots)
    weights_P = jnp.arange(num_slots) < jnp.sum(target_L)
    return jnp.where(weights_P, positions_P, 0).astype(jnp.int32), weights_P


def _random_ids(key, shape, cfg: MaskingConfig):
    """Uniform ids from [0, vocab_size) minus `cfg.excluded_ids`."""
    excluded = cfg.excluded_ids
    ids = jax.random.randint(key, shape, 0, max(1, cfg.vocab_size - len(excluded)))
    # Remap the reduced range past each excluded id, in ascending order.
    for special in excluded:
        ids = ids + (ids >= special)
    return ids.astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("cfg",))
def mask_example(key, input_ids_L, attention_mask_L, word_start_L, cfg: MaskingConfig):
    """Masks one unbatched sequence; see `mask_tokens` for the outputs (without B)."""
    input_ids_L = jnp.asarray(input_ids_L, jnp.int32)
    length = input_ids_L.shape[0]
    excluded = jnp.asarray(cfg.excluded_ids, jnp.int32)
    candidate_L = (jnp.asarray(attention_mask_L) == 1) & ~jnp.any(
        input_ids_L[:, None] == excluded[None, :], axis=-1)
    table = jnp.asarray(_num_targets_table(length, cfg.mask_rate, cfg.max_predictions))
    num_targets = table[jnp.sum(candidate_L)]

    choose_key, action_key, random_key = jax.random.split(key, 3)
    if cfg.whole_word:
        if word_start_L is None:
            raise ValueError("whole_word=True needs word_start")
        target_L = _choose_words(choose_key, candidate_L, jnp.asarray(word_start_L), num_targets)
    else:
        target_L = _choose_tokens(choose_key, candidate_L, num_targets, cfg.max_predictions)

    action_L = jax.random.uniform(action_key, (length,))
    to_mask_L = target_L & (action_L < cfg.mask_token_prob)
    to_random_L = (target_L & ~to_mask_L
                   & (action_L < cfg.mask_token_prob + cfg.random_token_prob))
    corrupted_L = jnp.where(to_mask_L, cfg.mask_id, input_ids_L)
    corrupted_L = jnp.where(to_random_L, _random_ids(random_key, (length,), cfg), corrupted_L)

    positions_P, weights_P = _compact(target_L, cfg.max_predictions)
    return {
        "input_ids": corrupted_L,
        "masked_positions": positions_P,
        "masked_labels": jnp.where(weights_P, input_ids_L[positions_P], 0),
        "masked_weights": weights_P.astype(jnp.float32),
    }


@functools.partial(jax.jit, static_argnames=("cfg",))
def mask_tokens(keys_B, input_ids_BxL, attention_mask_BxL, word_start_BxL,
                cfg: MaskingConfig):
    """Masks a batch for MLM, each example with its own key.

    Args:
        keys_B: [B] per-example keys, e.g. from `example_keys`.
        input_ids_BxL: int [B, L] token ids.
        attention_mask_BxL: int/bool [B, L], 1 for real tokens, 0 for padding.
        word_start_BxL: int/bool [B, L], 1 where a word begins (whole-word masking only;
            may be None when `cfg.whole_word` is False).
        cfg: static masking configuration.

    Returns:
        dict with
            "input_ids": int32 [B, L], the corrupted input;
            "masked_positions": int32 [B, P], ascending target positions, 0 in padding slots;
            "masked_labels": int32 [B, P], original ids at those positions, 0 in padding slots;
            "masked_weights": float32 [B, P], 1.0 for real targets, 0.0 for padding slots.
    """
    if word_start_BxL is None:
        if cfg.whole_word:
            raise ValueError("whole_word=True needs word_start_BxL")
        return jax.vmap(lambda k, i, a: mask_example(k, i, a, None, cfg))(
            keys_B, input_ids_BxL, attention_mask_BxL)
    return jax.vmap(functools.partial(mask_example, cfg=cfg))(
        keys_B, input_ids_BxL, attention_mask_BxL, word_start_BxL)
