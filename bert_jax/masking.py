"""Vectorized masked-language-model (MLM) masking for the BERT family, run on device.

Pure `jax.numpy`: static shapes, jit-able with the `MaskingConfig` static, vmapped over the
per-device batch. Every example is masked with its own key only, so its mask does not depend
on its batch neighbours, the batch size or the device count, and a resumed run draws the same
masks. Keys (`cfg.static` picks; the train step in training/step.py applies it):

* dynamic (default; new masks every step, as RoBERTa): example i of the global batch at step
    s uses `fold_in(fold_in(base_key, s), i)` (`example_keys`);
* static (google-research/bert's dupe_factor behaviour): dataset row r read in epoch e uses
    `fold_in(fold_in(base_key, e % dupe_factor), r)` (`static_example_keys`): the same mask
    in epochs e and e + dupe_factor, whatever the step or the row's place in the batch.

Inside `mask_example` the key is split into (choose, action, random) keys.

Rules (facts from google-research/bert, ALBERT, SpanBERT and AMBERT; vectorized here):

* Candidates are real (`attention_mask == 1`) tokens whose id is not special. `mask_id`
    always counts as special, whether or not it is listed in `special_ids`.
* Budget, with `c` the number of candidates (of coarse units for "coarse"):
    `n = min(P, max(1, round(mask_rate * c)))`, and `n = 0` when `c == 0`. `round` is
    Python's (float64, ties to even), evaluated exactly on the host for every possible `c`
    and looked up on device, so float32 rounding never moves `n`.
* "token" picks `n` candidates uniformly at random without replacement.
* Every other strategy chooses among *units*, runs of consecutive candidates:
    - a *word* starts at a candidate with `word_start == 1` or at a candidate that follows a
      non-candidate (a stray continuation piece after [CLS]/[SEP]/padding) and runs over the
      following candidates with `word_start == 0`;
    - "whole_word": the units are the words;
    - "ngram" (ALBERT) and "span" (SpanBERT): the words of a sequence are tiled left to right
      by spans whose lengths in words are drawn independently from `span_length_probs(cfg)`:
      p(n) proportional to 1/n for n = 1..max_ngram ("ngram"); to span_p (1 - span_p)^(n-1)
      for n = 1..max_span, i.e. a geometric law truncated at max_span and renormalised, mean
      3.8 words at span_p=0.2, max_span=10 ("span"). A tile that would run over a
      non-candidate (an inner [SEP]) is cut there into two units. The units are the tiles:
      they start at word starts, hold whole words and never overlap, and choosing tiles
      uniformly makes the chosen lengths follow p(n), up to the cuts and the budget rule;
    - "coarse" (AMBERT, aligned coarse -> fine): the units are coarse tokens, defined like
      words with `coarse_start` in place of `word_start`.
* Units are visited in a uniformly random order and taken whole while they fit: a unit's
    cost must fit in what is left of the budget `n` and its pieces in what is left of the P
    slots. The cost of a unit is its piece count, except for "coarse" where it is 1 (the
    budget counts coarse tokens). A unit that would overflow:
    - "whole_word", "coarse": is skipped, and later units are still tried
      (google-research/bert's whole-word rule);
    - "ngram", "span": is cut to its longest whole-word prefix that fits (ALBERT shortens an
      overflowing n-gram the same way), or skipped if its first word does not fit, and later
      units are still tried. Cutting rather than skipping keeps long spans from being
      under-chosen as the budget runs out; only the few cut units are shorter than drawn.
    So a word (and a "whole_word"/"coarse" unit) is never partially masked, a word longer
    than the budget is never a target, and the number of targets can be below `n`.
* Each target becomes `mask_id` with probability `mask_token_prob`, a uniform random
    non-special id with probability `random_token_prob`, and stays unchanged otherwise. The
    decision is drawn per target piece (`replace_unit="piece"`) or once per chosen unit
    (`"word"`: all pieces of a word, n-gram, span or coarse token share it; for "token" a
    unit is a piece). Random ids are drawn per piece.
* Output `masked` [B, L] is the fine-level target map: True exactly at the real slots'
    positions, whatever each target's replacement. AMBERT contract ("coarse"): the coarse
    tokens are the `coarse_start` groups of the candidates defined above, and each has all
    or none of its fine tokens in `masked`; so a coarse token is masked iff `masked` is True
    at its first fine position (equivalently at any of them), and special or padding
    positions are never masked. The coarse-level input ids and labels are the model's to
    build from that map; with replace_unit="word" each coarse token's 80/10/10 decision is
    one draw shared by its fine tokens.
* `mask_coarse` builds them (AMBERT's coarse MLM): a coarse token is a target iff `masked`
    is True at its first fine token. Its replacement follows the fine decision (`action`) at
    that token with replace_unit="word" (so a phrase and its pieces are both [MASK], both
    random or both kept); with "piece" it is drawn on its own with the same probabilities.
    Coarse targets are compacted into the same number P of slots as the fine ones (each has
    at least one fine target, so they always fit); a target whose label is a special id (the
    coarse [UNK]: out-of-vocabulary words, or a phrase cut by truncation) is still corrupted
    but has no slot, as predicting "unknown" teaches nothing.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

STRATEGIES = ("token", "whole_word", "ngram", "span", "coarse")
ACTION_MASK, ACTION_RANDOM = 1, 2  # `action` codes: replaced by mask_id, by a random id
REPLACE_UNITS = ("piece", "word")


@dataclasses.dataclass(frozen=True)
class MaskingConfig:
    """Static masking hyper-parameters; hashable, so it can be a static jit argument.

    Attributes:
        vocab_size: number of token ids; ids are in [0, vocab_size).
        mask_id: id of the [MASK] token; also treated as special.
        special_ids: ids never chosen as targets and never drawn as random replacements
            (e.g. pad, unk, cls, sep, mask). Stored sorted and de-duplicated.
        mask_rate: fraction of candidates (of coarse tokens for "coarse") to predict, (0, 1].
        max_predictions: P, the static number of prediction slots per sequence, >= 1.
        mask_token_prob: probability that a target is replaced by `mask_id`.
        random_token_prob: probability that a target is replaced by a random non-special id;
            with probability 1 - mask_token_prob - random_token_prob it is kept.
        whole_word: input alias: True sets `strategy="whole_word"` and is then stored as
            False, so both spellings give equal configs and `dataclasses.replace` can change
            the strategy; read `strategy`.
        strategy: one of STRATEGIES: "token", "whole_word", "ngram" (ALBERT), "span"
            (SpanBERT) or "coarse" (AMBERT); see the module docstring.
        max_ngram: "ngram": longest n-gram in words (p(n) proportional to 1/n).
        span_p: "span": parameter of the geometric span-length law, in (0, 1].
        max_span: "span": longest span in words (the law is truncated there).
        replace_unit: one of REPLACE_UNITS: 80/10/10 decision per "piece" or per chosen "word"
            (word, n-gram, span or coarse token).
        static: masks keyed by dataset row and epoch % dupe_factor instead of by step.
        dupe_factor: with `static`, the number of epochs after which a row's mask repeats.
    """
    vocab_size: int
    mask_id: int
    special_ids: tuple[int, ...]
    mask_rate: float = 0.15
    max_predictions: int = 20
    mask_token_prob: float = 0.8
    random_token_prob: float = 0.1
    whole_word: bool = False
    strategy: str = "token"
    max_ngram: int = 3
    span_p: float = 0.2
    max_span: int = 10
    replace_unit: str = "piece"
    static: bool = False
    dupe_factor: int = 1

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
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.whole_word and self.strategy not in ("token", "whole_word"):
            raise ValueError(f"strategy={self.strategy!r} contradicts whole_word=True (an "
                             "alias of strategy='whole_word'); drop whole_word")
        if self.whole_word:
            object.__setattr__(self, "strategy", "whole_word")
            object.__setattr__(self, "whole_word", False)
        if self.replace_unit not in REPLACE_UNITS:
            raise ValueError(
                f"replace_unit must be one of {REPLACE_UNITS}, got {self.replace_unit!r}")
        for name in ("max_ngram", "max_span", "dupe_factor"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.span_p <= 1.0:
            raise ValueError(f"span_p must be in (0, 1], got {self.span_p}")

    @property
    def excluded_ids(self) -> tuple[int, ...]:
        """Sorted ids that are never targets nor random replacements: specials and mask_id."""
        return tuple(sorted(set(self.special_ids) | {self.mask_id}))


def config_from(section, *, vocab_size: int, mask_id: int, special_ids) -> MaskingConfig:
    """MaskingConfig from a run config's `masking` section (see config.py for the fields)."""
    return MaskingConfig(
        vocab_size=vocab_size, mask_id=mask_id, special_ids=tuple(special_ids),
        mask_rate=section.mask_rate, max_predictions=section.max_predictions_per_seq,
        mask_token_prob=section.mask_token_prob, random_token_prob=section.random_token_prob,
        strategy=section.strategy, max_ngram=section.max_ngram, span_p=section.span_p,
        max_span=section.max_span, replace_unit=section.replace_unit,
        static=section.static, dupe_factor=section.dupe_factor)


def example_keys(base_key, step, example_index_B):
    """Dynamic per-example keys: `fold_in(fold_in(base_key, step), example_index_B[i])`.

    Args:
        base_key: a PRNG key (typed `jax.random.key` or legacy uint32[2]).
        step: int scalar, may be traced.
        example_index_B: int [B] global indices of the examples in the batch.

    Returns:
        keys_B: [B] keys (legacy keys come back as uint32 [B, 2]).
    """
    step_key = jax.random.fold_in(base_key, step)
    return jax.vmap(lambda i: jax.random.fold_in(step_key, i))(jnp.asarray(example_index_B))


def static_example_keys(base_key, example_index_B, epoch_B, dupe_factor: int):
    """Static per-example keys: `fold_in(fold_in(base_key, epoch % dupe_factor), row)`.

    Args:
        base_key: a PRNG key.
        example_index_B: int [B], each example's row in the dataset (its identity).
        epoch_B: int [B], the epoch in which each row is read.
        dupe_factor: static int >= 1; a row's key repeats every `dupe_factor` epochs.
    """
    def one(row, epoch):
        return jax.random.fold_in(jax.random.fold_in(base_key, epoch % dupe_factor), row)
    return jax.vmap(one)(jnp.asarray(example_index_B), jnp.asarray(epoch_B))


def span_length_probs(cfg: MaskingConfig) -> np.ndarray:
    """float64 [N]: probability of a span of n = 1..N words ("ngram" and "span" only)."""
    if cfg.strategy == "ngram":
        weights = 1.0 / np.arange(1, cfg.max_ngram + 1)
    elif cfg.strategy == "span":
        weights = cfg.span_p * (1.0 - cfg.span_p) ** np.arange(cfg.max_span)
    else:
        raise ValueError(f"strategy {cfg.strategy!r} has no span lengths")
    return weights / weights.sum()


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


def _groups(candidate_L, start_L):
    """Runs of candidates cut where `start_L` is set: (first_L, unit_L, num_units, pieces_U).

    A unit starts at a candidate with `start_L` set or at a candidate that follows a
    non-candidate. first_L: bool [L], unit starts; unit_L: int [L], each candidate's unit
    index, L (out of range) elsewhere; pieces_U: int32 [L], pieces per unit (0 past the last).
    """
    length = candidate_L.shape[0]
    prev_candidate_L = jnp.concatenate([jnp.zeros((1,), bool), candidate_L[:-1]])
    first_L = candidate_L & ((start_L != 0) | ~prev_candidate_L)
    unit_L = jnp.where(candidate_L, jnp.cumsum(first_L) - 1, length)
    pieces_U = jax.ops.segment_sum(jnp.ones((length,), jnp.int32), unit_L, num_segments=length)
    return first_L, unit_L, jnp.sum(first_L), pieces_U


def _span_units(key, candidate_L, word_start_L, cfg: MaskingConfig):
    """"ngram"/"span" units (module docstring) as `_groups` returns them, plus part_end_L:
    int [L], the pieces of a candidate's unit up to the end of its word (its prefix cost)."""
    length = candidate_L.shape[0]
    clip = lambda index_L: jnp.minimum(index_L, length - 1)  # For gathers; L = not a candidate.
    word_first_L, word_L, _, _ = _groups(candidate_L, word_start_L)
    probs = jnp.asarray(span_length_probs(cfg), jnp.float32)
    lengths_K = 1 + jax.random.choice(key, probs.shape[0], (length,), p=probs)
    # Tile k + 1 starts at word cumsum(lengths)[k]; tile 0 at word 0.
    tile_first_W = jnp.zeros((length,), bool).at[0].set(True).at[jnp.cumsum(lengths_K)].set(
        True, mode="drop")
    groups = _groups(candidate_L, word_first_L & tile_first_W[clip(word_L)])
    unit_L = groups[1]
    # Segment ops drop the out-of-range index L of non-candidates.
    count_L = jnp.cumsum(candidate_L)  # Candidates up to and including each position.
    word_end_W = jax.ops.segment_max(count_L, word_L, num_segments=length)
    unit_before_U = jax.ops.segment_min(count_L, unit_L, num_segments=length) - 1
    part_end_L = word_end_W[clip(word_L)] - unit_before_U[clip(unit_L)]
    return groups, jnp.where(candidate_L, part_end_L, 0)


def _choose_units(key, unit_L, num_units, pieces_U, cost_U, budget, max_pieces,
                  part_end_L=None):
    """bool [L]: the pieces of the units taken greedily in random order within two budgets.

    Units are visited in a random order. Indivisible units (`part_end_L` None): a unit is
    taken if `cost_U` fits what is left of `budget` and `pieces_U` what is left of
    `max_pieces`; one that would overflow is skipped and later ones are still tried.
    Divisible units (cost = pieces; `part_end_L` gives each piece's prefix cost up to the
    end of its word): a unit that would overflow is cut to its longest whole-word prefix
    that fits, or skipped if its first word does not fit, and later ones are still tried.

    Sequential greedy is computed in passes instead: each pass keeps the unvisited units
    whose smallest take (first word, or whole unit) fits the budgets, in the same order,
    takes the longest prefix of them that fits whole, and cuts or skips the unit after it.
    Units a pass does not reach see exactly the budgets the sequential greedy gives them,
    and a unit that does not fit now never fits later (the budgets only shrink), so the
    passes take exactly what the sequential greedy takes; each pass visits at least one
    unit, and few passes are needed.
    """
    length = pieces_U.shape[0]
    divisible = part_end_L is not None
    gather_L = jnp.minimum(unit_L, length - 1)  # unit_L is L off the candidates.
    if not divisible:
        part_end_L = pieces_U[gather_L]
    valid_U = jnp.arange(length) < num_units
    order_U = jnp.argsort(jnp.where(valid_U, jax.random.uniform(key, (length,)), 2.0))
    # Smallest take of each unit: its first word (divisible) or all of it.
    first_U = jax.ops.segment_min(part_end_L, unit_L, num_segments=length)
    # S: units in visiting order.
    pieces_S, cost_S, first_S = pieces_U[order_U], cost_U[order_U], first_U[order_U]
    valid_S = valid_U[order_U]
    smallest_cost_S = first_S if divisible else cost_S

    def eligible(visited_S, budget, slots):
        return valid_S & ~visited_S & (smallest_cost_S <= budget) & (first_S <= slots)

    def one_pass(state):
        visited_S, taken_S, budget, slots = state  # taken_S: pieces taken of each unit.
        elig_S = eligible(visited_S, budget, slots)
        whole_S = elig_S & (jnp.cumsum(jnp.where(elig_S, cost_S, 0)) <= budget) & (
            jnp.cumsum(jnp.where(elig_S, pieces_S, 0)) <= slots)
        rest_S = elig_S & ~whole_S
        stop_S = rest_S & (jnp.cumsum(rest_S) == 1)  # The first unit that does not fit.
        budget = budget - jnp.sum(jnp.where(whole_S, cost_S, 0))
        slots = slots - jnp.sum(jnp.where(whole_S, pieces_S, 0))
        taken_S = jnp.where(whole_S, pieces_S, taken_S)
        if divisible:  # Cut the stop unit to its longest whole-word prefix that fits.
            stop_unit = jnp.where(jnp.any(stop_S), order_U[jnp.argmax(stop_S)], -1)
            fits_L = (unit_L == stop_unit) & (part_end_L <= jnp.minimum(budget, slots))
            cut = jnp.max(jnp.where(fits_L, part_end_L, 0))
            taken_S = jnp.where(stop_S, cut, taken_S)
            budget, slots = budget - cut, slots - cut
        return visited_S | whole_S | stop_S, taken_S, budget, slots

    # zeros_like, not zeros: the carry must vary across devices like the data (shard_map).
    init = (jnp.zeros_like(valid_S), jnp.zeros_like(pieces_S), budget,
            jnp.full_like(budget, max_pieces))
    _, taken_S, _, _ = jax.lax.while_loop(
        lambda state: jnp.any(eligible(state[0], state[2], state[3])), one_pass, init)
    taken_U = jnp.zeros((length,), taken_S.dtype).at[order_U].set(taken_S)
    return (unit_L < length) & (part_end_L <= taken_U[gather_L])


def _units(key, candidate_L, word_start_L, coarse_start_L, cfg: MaskingConfig):
    """The units of `cfg.strategy`: (`_groups` output, part_end_L or None if indivisible)."""
    if cfg.strategy == "token":
        return _groups(candidate_L, jnp.ones_like(candidate_L)), None
    if cfg.strategy == "coarse":
        return _groups(candidate_L, coarse_start_L), None
    if cfg.strategy == "whole_word":
        return _groups(candidate_L, word_start_L), None
    return _span_units(key, candidate_L, word_start_L, cfg)


def _targets(key, candidate_L, word_start_L, coarse_start_L, cfg: MaskingConfig):
    """(target_L bool [L], unit_L int [L]): the chosen pieces and each piece's unit index."""
    length = candidate_L.shape[0]
    table = jnp.asarray(_num_targets_table(length, cfg.mask_rate, cfg.max_predictions))
    (_, unit_L, num_units, pieces_U), part_end_L = _units(
        jax.random.fold_in(key, 1), candidate_L, word_start_L, coarse_start_L, cfg)
    if cfg.strategy == "token":  # Units of one piece: a cheaper uniform draw, same law.
        target_L = _choose_tokens(key, candidate_L, table[jnp.sum(candidate_L)],
                                  cfg.max_predictions)
        return target_L, unit_L
    if cfg.strategy == "coarse":
        cost_U, budget = jnp.ones_like(pieces_U), table[num_units]
    else:
        cost_U, budget = pieces_U, table[jnp.sum(candidate_L)]
    taken_L = _choose_units(key, unit_L, num_units, pieces_U, cost_U, budget,
                            cfg.max_predictions, part_end_L)
    return candidate_L & taken_L, unit_L


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


def _check_inputs(cfg: MaskingConfig, word_start, coarse_start):
    if cfg.strategy in ("whole_word", "ngram", "span") and word_start is None:
        raise ValueError(f"strategy={cfg.strategy!r} needs word_start")
    if cfg.strategy == "coarse" and coarse_start is None:
        raise ValueError("strategy='coarse' needs coarse_start (1 where a coarse token begins)")


def _as_array(x):
    return None if x is None else jnp.asarray(x)


def _candidates(input_ids_L, attention_mask_L, cfg: MaskingConfig):
    """bool [L]: real tokens that are not special (module docstring)."""
    excluded = jnp.asarray(cfg.excluded_ids, jnp.int32)
    return (jnp.asarray(attention_mask_L) == 1) & ~jnp.any(
        jnp.asarray(input_ids_L)[:, None] == excluded[None, :], axis=-1)


@functools.partial(jax.jit, static_argnames=("cfg",))
def unit_ids(key, input_ids_L, attention_mask_L, word_start_L, cfg: MaskingConfig,
             coarse_start_L=None):
    """int32 [L]: the unit index of each candidate (L elsewhere) that `mask_example` with the
    same arguments chooses among, for tests and analysis ("token": one unit per candidate)."""
    _check_inputs(cfg, word_start_L, coarse_start_L)
    choose_key = jax.random.split(key, 3)[0]
    (_, unit_L, _, _), _ = _units(jax.random.fold_in(choose_key, 1),
                                  _candidates(input_ids_L, attention_mask_L, cfg),
                                  _as_array(word_start_L), _as_array(coarse_start_L), cfg)
    return unit_L.astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("cfg",))
def mask_example(key, input_ids_L, attention_mask_L, word_start_L, cfg: MaskingConfig,
                 coarse_start_L=None):
    """Masks one unbatched sequence; see `mask_tokens` for the outputs (without B)."""
    _check_inputs(cfg, word_start_L, coarse_start_L)
    input_ids_L = jnp.asarray(input_ids_L, jnp.int32)
    length = input_ids_L.shape[0]
    choose_key, action_key, random_key = jax.random.split(key, 3)
    target_L, unit_L = _targets(choose_key, _candidates(input_ids_L, attention_mask_L, cfg),
                                _as_array(word_start_L), _as_array(coarse_start_L), cfg)

    action_L = jax.random.uniform(action_key, (length,))
    if cfg.replace_unit == "word":  # One draw per unit, shared by its pieces.
        action_L = action_L[jnp.minimum(unit_L, length - 1)]
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
        "masked": target_L,
        "action": jnp.where(to_mask_L, ACTION_MASK, jnp.where(to_random_L, ACTION_RANDOM, 0)),
    }


@functools.partial(jax.jit, static_argnames=("cfg",))
def mask_tokens(keys_B, input_ids_BxL, attention_mask_BxL, word_start_BxL,
                cfg: MaskingConfig, coarse_start_BxL=None):
    """Masks a batch for MLM, each example with its own key.

    Args:
        keys_B: [B] per-example keys, from `example_keys` or `static_example_keys`.
        input_ids_BxL: int [B, L] token ids.
        attention_mask_BxL: int/bool [B, L], 1 for real tokens, 0 for padding.
        word_start_BxL: int/bool [B, L], 1 where a word begins; needed by "whole_word",
            "ngram" and "span", may be None otherwise.
        cfg: static masking configuration.
        coarse_start_BxL: int/bool [B, L], 1 where a coarse token begins; needed by
            "coarse" only.

    Returns:
        dict with
            "input_ids": int32 [B, L], the corrupted input;
            "masked_positions": int32 [B, P], ascending target positions, 0 in padding slots;
            "masked_labels": int32 [B, P], original ids at those positions, 0 in padding slots;
            "masked_weights": float32 [B, P], 1.0 for real targets, 0.0 for padding slots;
            "masked": bool [B, L], True at the target positions (the same set as the real
                slots); for "coarse", all or none of a coarse token's pieces;
            "action": int32 [B, L], what became of each position: ACTION_MASK, ACTION_RANDOM,
                or 0 (not a target, or a target kept unchanged).
    """
    _check_inputs(cfg, word_start_BxL, coarse_start_BxL)
    mask_one = lambda k, i, a, w, c: mask_example(k, i, a, w, cfg, c)
    return jax.vmap(mask_one)(keys_B, input_ids_BxL, attention_mask_BxL, word_start_BxL,
                              coarse_start_BxL)


def coarse_config(cfg: MaskingConfig, *, vocab_size: int, mask_id: int,
                  special_ids) -> MaskingConfig:
    """The MaskingConfig of AMBERT's coarse side: `cfg` with the coarse vocabulary's size,
    [MASK] and special ids (random replacements are drawn from the coarse vocabulary)."""
    return dataclasses.replace(cfg, vocab_size=vocab_size, mask_id=mask_id,
                               special_ids=tuple(special_ids))


def _mask_coarse_example(key, masked_L, action_L, coarse_ids_L, coarse_start_L,
                         attention_mask_L, cfg: MaskingConfig):
    length = masked_L.shape[0]
    start_L = (coarse_start_L != 0) & (attention_mask_L != 0)
    target_L = masked_L & start_L
    if cfg.replace_unit == "piece":  # The coarse token's own 80/10/10 draw.
        u_L = jax.random.uniform(jax.random.fold_in(key, 0xC0A1), (length,))
        action_L = jnp.where(u_L < cfg.mask_token_prob, ACTION_MASK, jnp.where(
            u_L < cfg.mask_token_prob + cfg.random_token_prob, ACTION_RANDOM, 0))
    random_L = _random_ids(jax.random.fold_in(key, 0xC0A2), (length,), cfg)
    corrupted_L = jnp.where(target_L & (action_L == ACTION_MASK), cfg.mask_id, coarse_ids_L)
    corrupted_L = jnp.where(target_L & (action_L == ACTION_RANDOM), random_L, corrupted_L)
    # Coarse index of each start: the coarse sequence is the starts, compacted in order.
    slot_L = jnp.where(start_L, jnp.cumsum(start_L) - 1, length)
    labels_C = jnp.zeros((length,), jnp.int32).at[slot_L].set(coarse_ids_L, mode="drop")
    special = jnp.any(coarse_ids_L[:, None] == jnp.asarray(cfg.excluded_ids)[None], axis=-1)
    target_C = jnp.zeros((length,), bool).at[slot_L].set(target_L & ~special, mode="drop")
    positions_P, weights_P = _compact(target_C, cfg.max_predictions)
    return {
        "coarse_input_ids": corrupted_L.astype(jnp.int32),
        "coarse_masked_positions": positions_P,
        "coarse_masked_labels": jnp.where(weights_P, labels_C[positions_P], 0),
        "coarse_masked_weights": weights_P.astype(jnp.float32),
    }


@functools.partial(jax.jit, static_argnames=("cfg",))
def mask_coarse(keys_B, fine, coarse_ids_BxL, coarse_start_BxL, attention_mask_BxL,
                cfg: MaskingConfig):
    """AMBERT's coarse-level MLM inputs from a "coarse" `mask_tokens` result (module docstring).

    Args:
        keys_B: the per-example keys that `mask_tokens` used.
        fine: the dict `mask_tokens` returned (its "masked" and "action").
        coarse_ids_BxL: int [B, L], a coarse token's id at its first fine position.
        coarse_start_BxL: int [B, L], 1 at the first fine token of each coarse token.
        attention_mask_BxL: int [B, L].
        cfg: `coarse_config(...)` of the fine config; P = cfg.max_predictions slots.

    Returns:
        dict with
            "coarse_input_ids": int32 [B, L], coarse_ids with the targets corrupted (still
                aligned with the fine positions, as the model takes them);
            "coarse_masked_positions": int32 [B, P], ascending target indices into the
                *compacted* coarse sequence (coarse token k = the k-th coarse start);
            "coarse_masked_labels": int32 [B, P], their original coarse ids;
            "coarse_masked_weights": float32 [B, P], 1.0 for real targets.
    """
    one = lambda k, m, a, i, s, am: _mask_coarse_example(k, m, a, i, s, am, cfg)
    return jax.vmap(one)(keys_B, fine["masked"], fine["action"], jnp.asarray(coarse_ids_BxL),
                         jnp.asarray(coarse_start_BxL), jnp.asarray(attention_mask_BxL))
