"""Speed of the attention core's forward + backward in two layouts of the heads.

    python -m experiments.attention_layout                       # BERT-base, batch 8, L 128
    python -m experiments.attention_layout --batch_size 32 --seq_len 512

The core is what SelfAttention's explicit path computes between the projections (the path
training takes with attention dropout): scaled scores, key mask, softmax, dropout on the
probabilities (a fixed mask here), and the weighted sum of the values. "in place" contracts
the projections' [B, L, N, D] arrays as they are (einsums "bqnd,bknd->bnqk" and
"bnqk,bknd->bqnd"); "heads first" transposes them to [B, N, L, D] first and back after, so
both products are plain batched matmuls (modeling/layers.py does this). The two run in
alternating rounds, jitted, on synthetic inputs; the script checks that both give the same
values and gradients before timing them.
"""

import statistics
import time

from absl import app, flags, logging

flags.DEFINE_integer("batch_size", 8, "Sequences.")
flags.DEFINE_integer("seq_len", 128, "Tokens per sequence.")
flags.DEFINE_integer("num_heads", 12, "Attention heads.")
flags.DEFINE_integer("head_dim", 64, "Size of each head.")
flags.DEFINE_integer("steps", 20, "Timed calls of each layout per round.")
flags.DEFINE_integer("rounds", 3, "Alternating rounds.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # JAX's INFO lines about absent backends
    import jax
    import jax.numpy as jnp
    import numpy as np

    b, l, n, d = FLAGS.batch_size, FLAGS.seq_len, FLAGS.num_heads, FLAGS.head_dim
    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.standard_normal((b, l, n, d)), jnp.float32) for _ in range(3))
    lengths = rng.integers(l // 2, l + 1, b)
    mask = jnp.asarray(np.arange(l)[None, :] < lengths[:, None])[:, None, None, :]
    keep = jnp.asarray(rng.random((b, n, l, l)) >= 0.1)

    def probs(logits):
        logits = jnp.where(mask, logits / np.sqrt(d), jnp.finfo(jnp.float32).min)
        return jnp.where(keep, jax.nn.softmax(logits, axis=-1) / 0.9, 0.0)

    def in_place(q, k, v):
        p = probs(jnp.einsum("bqnd,bknd->bnqk", q, k))
        return jnp.einsum("bnqk,bknd->bqnd", p, v)

    def heads_first(q, k, v):
        q, k, v = (x.transpose(0, 2, 1, 3) for x in (q, k, v))
        p = probs(jnp.einsum("bnqd,bnkd->bnqk", q, k))
        return jnp.einsum("bnqk,bnkd->bnqd", p, v).transpose(0, 2, 1, 3)

    layouts = {"in place": in_place, "heads first": heads_first}
    steps = {name: jax.jit(jax.value_and_grad(
        lambda q, k, v, f=f: jnp.sum(f(q, k, v) * v), argnums=(0, 1, 2)))
        for name, f in layouts.items()}
    ref = steps["in place"](q, k, v)
    out = steps["heads first"](q, k, v)
    for a, c in zip(jax.tree.leaves(ref), jax.tree.leaves(out)):
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-4)
    times = {name: [] for name in layouts}
    for _ in range(FLAGS.rounds):
        for name, step in steps.items():
            jax.block_until_ready(step(q, k, v))  # untimed first call of each turn
            for _ in range(FLAGS.steps):
                t0 = time.perf_counter()
                jax.block_until_ready(step(q, k, v))
                times[name].append(time.perf_counter() - t0)
    medians = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    print(f"attention core forward + backward, B={b} L={l} N={n} D={d}, "
          f"{jax.devices()[0].device_kind}, medians of {len(times['in place'])} calls: "
          + ", ".join(f"{name} {ms:.2f} ms" for name, ms in medians.items())
          + f"; heads first is {medians['in place'] / medians['heads first']:.2f}x the speed")


if __name__ == "__main__":
    app.run(main)
