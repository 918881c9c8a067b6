"""Building blocks of the BERT encoder: embeddings, self-attention, feed-forward, block.

Shape letters: B batch, L sequence, H hidden, N heads, D head dim, I feed-forward width,
V vocabulary. Parameters are stored in `config.param_dtype`; matmuls run in `config.dtype`;
LayerNorm statistics and softmax always run in float32; the residual stream (LayerNorm's
output and the sums it normalises) is `config.residual_dtype`, float32 by default.
Parameter names follow the released BERT checkpoints so converters stay simple.
"""

from __future__ import annotations

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn

from bert_jax.config import ModelConfig


def _init(config: ModelConfig):
    return nn.initializers.normal(stddev=config.initializer_range)


def layer_norm(config: ModelConfig, name: str) -> nn.LayerNorm:
    # The exact two-pass variance: the fast E[x^2]-E[x]^2 form costs parity with references.
    return nn.LayerNorm(epsilon=config.layer_norm_eps, dtype=config.residual_dtype,
                        param_dtype=config.param_dtype, use_fast_variance=False, name=name)


def gather_positions(x_BxLxH, positions_BxP):
    """Rows of x at the given positions: [B, L, H], int [B, P] -> [B, P, H]."""
    return jnp.take_along_axis(x_BxLxH, positions_BxP[..., None].astype(jnp.int32), axis=1)


def dense(config: ModelConfig, features, name: str | None = None, axis=-1) -> nn.DenseGeneral:
    # name=None: a module assigned in setup() takes its attribute name.
    return nn.DenseGeneral(features, axis=axis, dtype=config.dtype,
                           param_dtype=config.param_dtype, kernel_init=_init(config), name=name)


def gelu(x):
    """Exact (erf) GELU in HF's form, x/2 (1 + erf(x/sqrt 2)). (Google's original BERT used
    the tanh form.)

    jax.nn.gelu(approximate=False) computes x/2 erfc(-x/sqrt 2) instead: equal to within 1e-6
    for float32 (more accurate only in relative terms far in the negative tail, where both
    are below 1e-5), but XLA expands erfc into three polynomials, two divisions and an exp,
    which made it the costliest element-wise op of a GPU step (experiments/activation_speed.py).
    """
    return x * (0.5 * (1.0 + lax.erf(x * np.float32(1 / np.sqrt(2))))).astype(x.dtype)


# config.hidden_act -> function; the names are config.ACTIVATIONS.
_ACTIVATIONS = {
    "gelu": gelu,
    # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): google-research/bert, HF `gelu_new`.
    "gelu_tanh": lambda x: nn.gelu(x, approximate=True),
    "relu": nn.relu,
    "silu": nn.silu,
}


def activation(config: ModelConfig):
    """The feed-forward (and MLM transform) activation named by `config.hidden_act`."""
    return _ACTIVATIONS[config.hidden_act]


class DenseActivation(nn.Module):
    """act(x @ kernel + bias): the feed-forward's first layer with its activation.

    The parameters (`kernel` [H, I], `bias` [I]) and their initialisation are nn.Dense's, so
    checkpoints and seeds carry over. With `config.remat == "activation"` the backward pass
    recomputes bias + activation from the matmul's output, so a layer keeps two [B, L, I]
    tensors for it (that output, and the activation the next matmul reads) where autodiff
    keeps three or more. Measured (BENCHMARKS.md): 1.03x and 9% less memory for BERT-base
    on a CPU; no change on an H100, probably because XLA already fuses those element-wise
    producers into the backward kernels there.
    """

    config: ModelConfig
    features: int

    @nn.compact
    def __call__(self, x_BxLxH):
        c = self.config
        kernel = self.param("kernel", _init(c), (x_BxLxH.shape[-1], self.features),
                            c.param_dtype)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,),
                          c.param_dtype)
        x_BxLxH, kernel, bias = nn.dtypes.promote_dtype(x_BxLxH, kernel, bias, dtype=c.dtype)
        y_BxLxI = lax.dot_general(x_BxLxH, kernel, (((x_BxLxH.ndim - 1,), (0,)), ((), ())))
        return bias_activation(activation(c), recompute=c.remat == "activation")(y_BxLxI, bias)


def bias_activation(act, *, recompute: bool):
    """(y, b) -> act(y + b); with `recompute`, the backward pass recomputes it from y and b
    (jax.checkpoint) instead of keeping what autodiff of `act` keeps."""
    bias_act = lambda y, b: act(y + b)
    return jax.checkpoint(bias_act) if recompute else bias_act


# Threefry-2x32's rotation distances, for its even and odd groups of four rounds (Salmon et
# al., "Parallel random numbers: as easy as 1, 2, 3", 2011).
_THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_THREEFRY_PARITY = 0x1BD11BDA


def _threefry_key_words(key):
    """The two uint32 words of a threefry2x32 key, typed or raw; None for another PRNG, or
    when JAX draws threefry's bits another way (jax_threefry_partitionable off)."""
    if not jax.config.jax_threefry_partitionable:
        return None
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        threefry = str(jax.random.key_impl(key)) == "threefry2x32"
        return jax.random.key_data(key) if threefry else None
    return key if key.shape == (2,) else None  # raw keys of rbg and unsafe_rbg have 4 words


def random_words(key, count: int):
    """uint32 [count]: jax.random.bits(key, (count,), jnp.uint32), bit for bit (a test).

    For a threefry2x32 key the cipher runs here, its 20 rounds written out as element-wise
    ops on the counters 0..count-1, which XLA fuses into one pass. JAX's own lowering of
    threefry on CPUs is a 5-iteration loop instead (to compile faster), and each iteration
    reads and writes the whole array; without it BERT-base's CPU step ran 1.03-1.05x faster
    (BENCHMARKS.md). Other PRNGs go to jax.random.bits.
    """
    words = _threefry_key_words(key)
    if words is None or count >= 2**32:
        return jax.random.bits(key, (count,), jnp.uint32)
    k0, k1 = words[0], words[1]
    ks = (k0, k1, k0 ^ k1 ^ np.uint32(_THREEFRY_PARITY))
    # Counter i is the 64-bit i as (high word, low word); every count here fits the low one.
    x0 = jnp.broadcast_to(ks[0], (count,))
    x1 = lax.iota(jnp.uint32, count) + ks[1]
    for group in range(5):
        for r in _THREEFRY_ROTATIONS[group % 2]:
            x0 = x0 + x1
            x1 = ((x1 << np.uint32(r)) | (x1 >> np.uint32(32 - r))) ^ x0
        x0 = x0 + ks[(group + 1) % 3]
        x1 = x1 + ks[(group + 2) % 3] + np.uint32(group + 1)
    return x0 ^ x1


def keep_mask(key, rate: float, shape, bits: int = 16):
    """bool `shape`: True where dropout at `rate` keeps the element, and the probability of
    keeping one. `bits`=16 splits each random 32-bit word into two 16-bit draws (half the
    random bits of jax.random.bernoulli, which converts one word per element to a float):
    an element is dropped when its draw is below round(rate * 2^16), so the rate is realised
    to within 2^-17 and the returned probability is exact. `bits`=32 is jax.random.bernoulli.
    """
    if bits == 32:
        return jax.random.bernoulli(key, 1.0 - rate, shape), 1.0 - rate
    threshold = round(rate * 65536)
    size = int(np.prod(shape))
    with jax.named_scope("random_bits"):  # how training/profile.py finds them
        words_W = random_words(key, (size + 1) // 2)
        # Compared before they are joined: XLA fuses the cipher into this one pass, which
        # writes one byte per element rather than a 4-byte draw to be compared later.
        keep_S = jnp.concatenate([(words_W & 0xFFFF) >= threshold,
                                  (words_W >> 16) >= threshold])[:size]
    return keep_S.reshape(shape), 1.0 - threshold / 65536


class Dropout(nn.Module):
    """Inverted dropout, as nn.Dropout (the same "dropout" RNG stream, kept elements scaled
    by 1 / keep probability), with its random bits drawn by keep_mask(bits=config's
    dropout_bits)."""

    rate: float
    bits: int = 16

    @nn.compact
    def __call__(self, x, deterministic: bool):
        if deterministic or self.rate == 0.0:
            return x
        keep, keep_prob = keep_mask(self.make_rng("dropout"), self.rate, x.shape, self.bits)
        if keep_prob == 0.0:
            return jnp.zeros_like(x)
        return lax.select(keep, x / jnp.asarray(keep_prob, x.dtype), jnp.zeros_like(x))


def dropout(config: ModelConfig, rate: float) -> Dropout:
    return Dropout(rate, config.dropout_bits)


class Embeddings(nn.Module):
    """Word + learned position + token-type embeddings, then LayerNorm and dropout.

    The tables are `config.embedding_width` wide. With `config.embedding_size` (ALBERT's
    factorization) a Dense `embedding_projection` maps the E-wide result to H afterwards.
    With `config.position_offset` > 0 (RoBERTa) positions count real tokens from the offset
    and padded slots use row offset - 1 (see ModelConfig.position_offset).
    """

    config: ModelConfig

    def setup(self):
        c = self.config
        width = c.embedding_width
        self.word_embeddings = nn.Embed(c.vocab_size, width, embedding_init=_init(c),
                                        param_dtype=c.param_dtype)
        self.position_embeddings = nn.Embed(c.max_position_embeddings, width,
                                            embedding_init=_init(c), param_dtype=c.param_dtype)
        self.token_type_embeddings = nn.Embed(c.type_vocab_size, width,
                                              embedding_init=_init(c), param_dtype=c.param_dtype)
        self.layer_norm = layer_norm(c, "LayerNorm")
        self.dropout = dropout(c, c.hidden_dropout)
        if c.embedding_size:
            self.embedding_projection = dense(c, c.hidden_size, "embedding_projection")

    def positions(self, attention_mask_BxL, length: int, pack_ids_BxL=None):
        """int [B or 1, L] position ids; with `pack_ids_BxL` they restart at every pack."""
        offset = self.config.position_offset
        if pack_ids_BxL is not None:
            j_L = jnp.arange(length)
            starts_BxL = pack_ids_BxL != jnp.pad(pack_ids_BxL[:, :-1], ((0, 0), (1, 0)),
                                                 constant_values=-1)
            in_pack_BxL = j_L - lax.cummax(jnp.where(starts_BxL, j_L, 0), axis=1)
            if offset == 0:
                return in_pack_BxL
            mask_BxL = (pack_ids_BxL > 0).astype(jnp.int32)
            return (in_pack_BxL + 1) * mask_BxL + (offset - 1)
        if offset == 0:
            return jnp.arange(length)[None, :]
        # fairseq/HF RoBERTa: the k-th real token (k = 1, 2, ...) sits at offset - 1 + k; a
        # padded slot at offset - 1 (the padding row). The same as offset + arange for
        # right-padded rows, and still right for left padding.
        mask_BxL = attention_mask_BxL.astype(jnp.int32)
        return jnp.cumsum(mask_BxL, axis=1) * mask_BxL + (offset - 1)

    def __call__(self, input_ids_BxL, token_type_ids_BxL, attention_mask_BxL=None, *,
                 deterministic: bool, pack_ids_BxL=None):
        """int [B, L] ids (and mask, needed only with a position offset; pack ids of packed
        rows, see packed_attention_mask) -> [B, L, H] in config.residual_dtype."""
        if attention_mask_BxL is None:
            attention_mask_BxL = jnp.ones_like(input_ids_BxL)
        positions_BxL = self.positions(attention_mask_BxL, input_ids_BxL.shape[-1],
                                       pack_ids_BxL)
        x_BxLxE = (self.word_embeddings(input_ids_BxL)
                   + self.position_embeddings(positions_BxL)
                   + self.token_type_embeddings(token_type_ids_BxL))
        x_BxLxE = self.layer_norm(x_BxLxE.astype(jnp.float32))
        x_BxLxE = self.dropout(x_BxLxE, deterministic=deterministic)
        if not self.config.embedding_size:
            return x_BxLxE
        return self.embedding_projection(x_BxLxE).astype(self.config.residual_dtype)

    def attend(self, x_BxPxE):
        """Logits against the (tied) word embedding table: [..., E] -> [..., V] in dtype."""
        table_VxE = self.word_embeddings.embedding.astype(self.config.dtype)
        return jnp.einsum("...e,ve->...v", x_BxPxE.astype(self.config.dtype), table_VxE)


def packed_attention_mask(pack_ids_BxL):
    """bool [B, 1, L, L] for rows holding several sequences: pack_ids 1, 2, ... mark each
    sequence's tokens, 0 padding. A token attends to the keys of its own sequence only; a
    padding query attends to every real key (as with a padding mask, so no row is empty)."""
    q_Bx1xLx1 = pack_ids_BxL[:, None, :, None]
    k_Bx1x1xL = pack_ids_BxL[:, None, None, :]
    return ((q_Bx1xLx1 == k_Bx1x1xL) | (q_Bx1xLx1 == 0)) & (k_Bx1x1xL > 0)


class SelfAttention(nn.Module):
    """Multi-head self-attention; returns the projected output.

    The mask is a key padding mask int [B, L] (1 real, 0 padding) or a full bool [B, 1, L, L]
    one (True = may attend), e.g. packed_attention_mask's. With `query_positions` (int
    [B, Q]) only those positions query: keys and values come from every position, the
    output is [B, Q, H], and each row equals the full output's row at that position.
    """

    config: ModelConfig

    @nn.compact
    def __call__(self, x_BxLxH, attention_mask, *, deterministic: bool,
                 query_positions=None):
        c = self.config
        n, d = c.num_heads, c.head_dim
        x_BxQxH = x_BxLxH if query_positions is None else gather_positions(x_BxLxH,
                                                                           query_positions)
        q_BxQxNxD = dense(c, (n, d), "query")(x_BxQxH)
        k_BxLxNxD = dense(c, (n, d), "key")(x_BxLxH)
        v_BxLxNxD = dense(c, (n, d), "value")(x_BxLxH)
        full_mask = attention_mask.ndim == 4
        if full_mask and query_positions is not None:  # the queries' rows of the mask
            attention_mask = jnp.take_along_axis(
                attention_mask, query_positions[:, None, :, None].astype(jnp.int32), axis=2)
        mask_Bx1xQxL = (attention_mask if full_mask
                        else attention_mask[:, None, None, :]).astype(bool)  # or [B,1,1,L]
        use_dropout = c.attention_dropout > 0.0 and not deterministic
        if use_dropout:
            # jax.nn.dot_product_attention has no dropout on the probabilities, so the
            # explicit form runs whenever attention dropout is active. Heads are moved next
            # to the batch first, so both products are plain batched matmuls: on a CPU the
            # attention core's forward and backward ran 1.09x faster than with the heads
            # left in place (experiments/attention_layout.py), BERT-base's step 1.009x.
            q_BxNxQxD, k_BxNxLxD, v_BxNxLxD = (
                x.transpose(0, 2, 1, 3) for x in (q_BxQxNxD, k_BxLxNxD, v_BxLxNxD))
            logits_BxNxQxL = jnp.einsum("bnqd,bnkd->bnqk", q_BxNxQxD, k_BxNxLxD,
                                        preferred_element_type=jnp.float32) / jnp.sqrt(d)
            logits_BxNxQxL = jnp.where(mask_Bx1xQxL, logits_BxNxQxL,
                                       jnp.finfo(jnp.float32).min)
            probs_BxNxQxL = jax.nn.softmax(logits_BxNxQxL, axis=-1)
            probs_BxNxQxL = dropout(c, c.attention_dropout)(probs_BxNxQxL,
                                                             deterministic=deterministic)
            ctx_BxNxQxD = jnp.einsum("bnqk,bnkd->bnqd", probs_BxNxQxL.astype(c.dtype),
                                     v_BxNxLxD)
            ctx_BxQxNxD = ctx_BxNxQxD.transpose(0, 2, 1, 3)
        elif c.attention_impl == "cudnn" and full_mask and query_positions is None:
            ctx_BxQxNxD = jax.nn.dot_product_attention(
                q_BxQxNxD, k_BxLxNxD, v_BxLxNxD, mask=mask_Bx1xQxL, implementation="cudnn")
        elif c.attention_impl == "cudnn" and query_positions is None:
            # Lengths, not a mask: cuDNN's fused kernel skips the padded keys' blocks.
            lengths_B = attention_mask.astype(jnp.int32).sum(-1)
            ctx_BxQxNxD = jax.nn.dot_product_attention(
                q_BxQxNxD, k_BxLxNxD, v_BxLxNxD, query_seq_lengths=lengths_B,
                key_value_seq_lengths=lengths_B, implementation="cudnn")
        else:
            # (Also the last layer's few gathered queries under cudnn: a small product, and
            # a shape cuDNN's kernel has not been run with here.)
            ctx_BxQxNxD = jax.nn.dot_product_attention(q_BxQxNxD, k_BxLxNxD, v_BxLxNxD,
                                                       mask=mask_Bx1xQxL, implementation="xla")
        return dense(c, c.hidden_size, "output", axis=(-2, -1))(ctx_BxQxNxD)


# The block's sub-layers by the names of their modules: cross-layer sharing (encoder.py) and
# the converters (convert/names.py) pick parameters by these names.
SUBLAYERS = {
    "attention": ("attention", "attention_LayerNorm"),
    "ffn": ("intermediate", "output", "output_LayerNorm"),
}


class TransformerBlock(nn.Module):
    """Post-LN block: x = LN(x + Attn(x)); x = LN(x + FFN(x)), with hidden dropout.

    BERT, RoBERTa and ALBERT all use this one block; ALBERT's sharing only decides where its
    parameters come from (encoder.py). With `query_positions` (int [B, Q]) the block computes
    only those rows of its output, [B, Q, H] (every position still serves as a key and a
    value): the last layer of a pretraining step needs no others (encoder.py).
    """

    config: ModelConfig

    @nn.compact
    def __call__(self, x_BxLxH, attention_mask, deterministic: bool, query_positions=None):
        c = self.config
        drop = dropout(c, c.hidden_dropout)
        attn_BxQxH = SelfAttention(c, name="attention")(x_BxLxH, attention_mask,
                                                        deterministic=deterministic,
                                                        query_positions=query_positions)
        if query_positions is not None:
            x_BxLxH = gather_positions(x_BxLxH, query_positions)  # L is Q from here on
        x_BxLxH = layer_norm(c, "attention_LayerNorm")(
            x_BxLxH + drop(attn_BxQxH, deterministic=deterministic).astype(c.residual_dtype))
        h_BxLxI = DenseActivation(c, c.intermediate_size, name="intermediate")(x_BxLxH)
        h_BxLxH = dense(c, c.hidden_size, "output")(h_BxLxI)
        return layer_norm(c, "output_LayerNorm")(
            x_BxLxH + drop(h_BxLxH, deterministic=deterministic).astype(c.residual_dtype))
