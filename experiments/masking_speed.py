"""Time `jax.jit(mask_tokens)` per masking strategy (the masking share of a train step).

    python -m experiments.masking_speed                       # 32 x 128 and 32 x 512
    python -m experiments.masking_speed --batch=64 --lengths=128 --strategies=span,coarse

Prints one line per (strategy, length): the median wall time of a compiled call over random
[CLS] a [SEP] b [SEP] batches with multi-piece words and phrases, in milliseconds.
"""

if __name__ == "__main__":  # first, since it may restart the process: huge pages for XLA:CPU
    from bert_jax.training.host_memory import reexec_with_huge_pages

    reexec_with_huge_pages()

import time

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

from bert_jax import masking

_BATCH = flags.DEFINE_integer("batch", 32, "Sequences per batch.")
_LENGTHS = flags.DEFINE_list("lengths", ["128", "512"], "Sequence lengths L.")
_STRATEGIES = flags.DEFINE_list("strategies", list(masking.STRATEGIES), "Strategies to time.")
_REPEATS = flags.DEFINE_integer("repeats", 50, "Timed calls per case (after one warm-up).")


def _batch(batch: int, length: int, rng: np.random.Generator):
    """BERT-like ids (specials 0..4, [MASK]=4), full-length pairs, ~1.4 pieces per word."""
    ids = rng.integers(5, 30522, (batch, length)).astype(np.int32)
    ids[:, 0], ids[:, length // 2], ids[:, -1] = 2, 3, 3
    word_start = (rng.random((batch, length)) < 0.7).astype(np.int32)
    coarse_start = word_start * (rng.random((batch, length)) < 0.6)
    return ids, np.ones_like(ids), word_start, coarse_start.astype(np.int32)


def main(argv):
    del argv
    rng = np.random.default_rng(0)
    print(f"device: {jax.devices()[0].device_kind}, batch {_BATCH.value}")
    for length in map(int, _LENGTHS.value):
        ids, attention, word_start, coarse_start = _batch(_BATCH.value, length, rng)
        for strategy in _STRATEGIES.value:
            cfg = masking.MaskingConfig(vocab_size=30522, mask_id=4, special_ids=(0, 1, 2, 3),
                                        max_predictions=round(0.15 * length) + 1,
                                        strategy=strategy)
            times = []
            for step in range(_REPEATS.value + 1):
                keys = masking.example_keys(jax.random.key(0), step, jnp.arange(_BATCH.value))
                jax.block_until_ready(keys)
                start = time.perf_counter()
                jax.block_until_ready(masking.mask_tokens(keys, ids, attention, word_start, cfg,
                                                          coarse_start))
                times.append(time.perf_counter() - start)
            print(f"{strategy:>10}  {_BATCH.value} x {length:<4} "
                  f"{1e3 * np.median(times[1:]):8.3f} ms")


if __name__ == "__main__":
    app.run(main)
