"""Model FLOPs of a pretraining step, and the device's measured matmul rate.

Model FLOPs count the matrix multiplications the model needs, not what the hardware ends up
doing: recomputation (remat) is not counted, and neither are elementwise operations
(LayerNorm, softmax, GELU, dropout, the optimizer) or embedding lookups (gathers). This is the
convention of "model FLOPs utilisation" (MFU; Chowdhery et al. 2022, appendix B). A multiply-add
counts 2 FLOPs and the backward pass costs twice the forward (one product for the input
gradient and one for the weight gradient), so a training step is 3x the forward pass.

Forward FLOPs of one sequence of L tokens (H hidden, I feed-forward width, E embedding width,
V vocabulary, P predicted positions, n layers):

    per token and layer   8 H^2         query, key, value and output projections
                        + 4 H I         the two feed-forward matrices
                        + 4 L H         attention scores QK^T and the weighted sum of V
    per token             2 E H         ALBERT's embedding projection (when E is factorized)
    per prediction        2 H E + 2 E V the MLM head's transform and the tied decoder
    per sequence          2 H^2 + 4 H   the pooler and the 2-way NSP/SOP classifier

With `model.last_layer_subset` and gathered positions, the last layer computes Q = P + 1 rows
(the masked positions and [CLS]; P without a pooler) rather than L: its key and value
projections still run at all L tokens, while per row not computed it saves

    8 H^2 - 4 H^2 + 4 H I + 4 L H   the query and output projections, the feed-forward
                                     and that row's attention

(when Q < L; otherwise the layer runs in full). With 12 H^2 = 8 H^2 + 4 H (4 H) per layer this is the familiar "6 N per token" (N the
non-embedding parameters) plus the attention and head terms. A training step of BERT-base at
L = 128 costs 524 MFLOP per token in the encoder; the MLM head adds 144 MFLOP per token when
run at every position (as transformers' BertForPreTraining does) or 22.5 MFLOP with 20
gathered positions per sequence, whose last layer then needs 30.6 MFLOP per token less.

The peak is measured, not taken from a data sheet: the best rate of a jitted chain of square
matmuls in the benchmark's dtype on one device.
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from bert_jax.config import ModelConfig


def forward_flops_per_sequence(cfg: ModelConfig, seq_len: int, predictions: int, *,
                               gathered: bool = True) -> float:
    """Forward matmul FLOPs of one sequence of `seq_len` tokens with `predictions` MLM
    positions. `gathered`=False: transformers' layout, the head (and the last layer) at
    every position, `predictions` == seq_len."""
    if cfg.coarse_vocab_size:
        raise ValueError("FLOPs of AMBERT's two granularities are not counted here; "
                         "benchmark a BERT/RoBERTa/ALBERT config")
    h, i, e, v, l = (cfg.hidden_size, cfg.intermediate_size, cfg.embedding_width,
                     cfg.vocab_size, seq_len)
    per_token_layer = 8 * h * h + 4 * h * i + 4 * l * h
    per_token = cfg.num_layers * per_token_layer + (2 * e * h if cfg.embedding_size else 0)
    rows = cfg.last_layer_rows(seq_len, predictions) if gathered and cfg.num_layers else l
    skipped = (l - rows) * (4 * h * h + 4 * h * i + 4 * l * h)
    head = predictions * (2 * h * e + 2 * e * v) if cfg.mlm_head else 0
    sentence = (2 * h * h if cfg.pooler else 0) + (
        4 * h if cfg.next_sentence or cfg.sentence_order else 0)
    return float(l * per_token - skipped + head + sentence)


def train_flops_per_step(cfg: ModelConfig, *, batch_size: int, seq_len: int,
                         predictions: int, gathered: bool = True) -> float:
    """Model FLOPs of one training step on a global batch (3 x forward)."""
    return 3.0 * batch_size * forward_flops_per_sequence(cfg, seq_len, predictions,
                                                         gathered=gathered)


def measure_matmul_peak(dtype: str = "float32", sizes: tuple[int, ...] | None = None,
                        device=None, repeats: int = 5) -> tuple[float, int]:
    """Best FLOP/s of an N x N by N x N matmul in `dtype` on one device, over `sizes`.

    Each timing runs a jitted loop of several dependent matmuls (so dispatch is amortised)
    and takes the median of `repeats`. Returns (FLOP/s, the N that gave it).
    """
    device = device or jax.devices()[0]
    if sizes is None:
        sizes = (1024, 2048) if device.platform == "cpu" else (4096, 8192)
    best = (0.0, 0)
    for n in sizes:
        rng = np.random.default_rng(n)
        # Scaled so the chained products keep unit magnitude in any dtype.
        a = jax.device_put(jnp.asarray(rng.standard_normal((n, n)), dtype), device)
        b = jax.device_put(jnp.asarray(rng.standard_normal((n, n)) / np.sqrt(n), dtype), device)
        chain = 4

        @jax.jit
        def run(a, b):
            return jax.lax.fori_loop(0, chain, lambda _, x: x @ b, a)

        run(a, b).block_until_ready()  # compile
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run(a, b).block_until_ready()
            times.append(time.perf_counter() - t0)
        rate = chain * 2.0 * n**3 / statistics.median(times)
        best = max(best, (rate, n))
    return best
