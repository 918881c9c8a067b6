"""Building blocks of the BERT encoder: embeddings, self-attention, feed-forward, block.

Shape letters: B batch, L sequence, H hidden, N heads, D head dim, I feed-forward width,
V vocabulary. Parameters are stored in `config.param_dtype`; matmuls run in `config.dtype`;
LayerNorm and softmax always run in float32 and the residual stream leaves LayerNorm in
float32. Parameter names follow the released BERT checkpoints so converters stay simple.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import flax.linen as nn

from bert_jax.config import ModelConfig


def _init(config: ModelConfig):
    return nn.initializers.normal(stddev=config.initializer_range)


def layer_norm(config: ModelConfig, name: str) -> nn.LayerNorm:
    # The exact two-pass variance: the fast E[x^2]-E[x]^2 form costs parity with references.
    return nn.LayerNorm(epsilon=config.layer_norm_eps, dtype=jnp.float32,
                        param_dtype=config.param_dtype, use_fast_variance=False, name=name)


def dense(config: ModelConfig, features, name: str, axis=-1) -> nn.DenseGeneral:
    return nn.DenseGeneral(features, axis=axis, dtype=config.dtype,
                           param_dtype=config.param_dtype, kernel_init=_init(config), name=name)


def gelu(x):
    """Exact (erf) GELU, HF's `gelu`. (Google's original BERT used the tanh form.)"""
    return nn.gelu(x, approximate=False)


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


class Embeddings(nn.Module):
    """Word + learned position + token-type embeddings, then LayerNorm and dropout."""

    config: ModelConfig

    def setup(self):
        c = self.config
        self.word_embeddings = nn.Embed(c.vocab_size, c.hidden_size, embedding_init=_init(c),
                                        param_dtype=c.param_dtype)
        self.position_embeddings = nn.Embed(c.max_position_embeddings, c.hidden_size,
                                            embedding_init=_init(c), param_dtype=c.param_dtype)
        self.token_type_embeddings = nn.Embed(c.type_vocab_size, c.hidden_size,
                                              embedding_init=_init(c), param_dtype=c.param_dtype)
        self.layer_norm = layer_norm(c, "LayerNorm")
        self.dropout = nn.Dropout(c.hidden_dropout)

    def __call__(self, input_ids_BxL, token_type_ids_BxL, *, deterministic: bool):
        """int [B, L] ids -> float32 [B, L, H]."""
        length = input_ids_BxL.shape[-1]
        x_BxLxH = (self.word_embeddings(input_ids_BxL)
                   + self.position_embeddings(jnp.arange(length)[None, :])
                   + self.token_type_embeddings(token_type_ids_BxL))
        x_BxLxH = self.layer_norm(x_BxLxH.astype(jnp.float32))
        return self.dropout(x_BxLxH, deterministic=deterministic)

    def attend(self, x_BxPxH):
        """Logits against the (tied) word embedding table: [..., H] -> [..., V] in dtype."""
        table_VxH = self.word_embeddings.embedding.astype(self.config.dtype)
        return jnp.einsum("...h,vh->...v", x_BxPxH.astype(self.config.dtype), table_VxH)


class SelfAttention(nn.Module):
    """Multi-head self-attention with a key padding mask; returns the projected output."""

    config: ModelConfig

    @nn.compact
    def __call__(self, x_BxLxH, attention_mask_BxL, *, deterministic: bool):
        c = self.config
        n, d = c.num_heads, c.head_dim
        q_BxLxNxD = dense(c, (n, d), "query")(x_BxLxH)
        k_BxLxNxD = dense(c, (n, d), "key")(x_BxLxH)
        v_BxLxNxD = dense(c, (n, d), "value")(x_BxLxH)
        mask_Bx1x1xL = attention_mask_BxL[:, None, None, :].astype(bool)
        use_dropout = c.attention_dropout > 0.0 and not deterministic
        if use_dropout:
            # jax.nn.dot_product_attention has no dropout on the probabilities, so the
            # explicit form runs whenever attention dropout is active.
            logits_BxNxLxL = jnp.einsum("bqnd,bknd->bnqk", q_BxLxNxD, k_BxLxNxD,
                                        preferred_element_type=jnp.float32) / jnp.sqrt(d)
            logits_BxNxLxL = jnp.where(mask_Bx1x1xL, logits_BxNxLxL,
                                       jnp.finfo(jnp.float32).min)
            probs_BxNxLxL = jax.nn.softmax(logits_BxNxLxL, axis=-1)
            probs_BxNxLxL = nn.Dropout(c.attention_dropout)(probs_BxNxLxL,
                                                            deterministic=deterministic)
            ctx_BxLxNxD = jnp.einsum("bnqk,bknd->bqnd", probs_BxNxLxL.astype(c.dtype),
                                     v_BxLxNxD)
        else:
            ctx_BxLxNxD = jax.nn.dot_product_attention(q_BxLxNxD, k_BxLxNxD, v_BxLxNxD,
                                                       mask=mask_Bx1x1xL)
        return dense(c, c.hidden_size, "output", axis=(-2, -1))(ctx_BxLxNxD)


class TransformerBlock(nn.Module):
    """Post-LN block: x = LN(x + Attn(x)); x = LN(x + FFN(x)), with hidden dropout."""

    config: ModelConfig

    @nn.compact
    def __call__(self, x_BxLxH, attention_mask_BxL, deterministic: bool):
        c = self.config
        drop = nn.Dropout(c.hidden_dropout)
        attn_BxLxH = SelfAttention(c, name="attention")(x_BxLxH, attention_mask_BxL,
                                                        deterministic=deterministic)
        x_BxLxH = layer_norm(c, "attention_LayerNorm")(
            x_BxLxH + drop(attn_BxLxH, deterministic=deterministic).astype(jnp.float32))
        h_BxLxI = activation(c)(dense(c, c.intermediate_size, "intermediate")(x_BxLxH))
        h_BxLxH = dense(c, c.hidden_size, "output")(h_BxLxI)
        return layer_norm(c, "output_LayerNorm")(
            x_BxLxH + drop(h_BxLxH, deterministic=deterministic).astype(jnp.float32))
