"""Pretraining heads: pooler, masked-LM (tied decoder), next-sentence prediction."""

from __future__ import annotations

import jax.numpy as jnp
import flax.linen as nn

from bert_jax.config import ModelConfig
from bert_jax.modeling.layers import activation, dense, layer_norm


def gather_positions(x_BxLxH, positions_BxP):
    """Rows of x at the given positions: [B, L, H], int [B, P] -> [B, P, H]."""
    return jnp.take_along_axis(x_BxLxH, positions_BxP[..., None].astype(jnp.int32), axis=1)


class Pooler(nn.Module):
    """tanh(Dense(h_[CLS])): [B, L, H] -> [B, H] float32."""

    config: ModelConfig

    @nn.compact
    def __call__(self, x_BxLxH):
        return jnp.tanh(dense(self.config, self.config.hidden_size, "dense")(x_BxLxH[:, 0])
                        .astype(jnp.float32))


class MlmHead(nn.Module):
    """Dense + activation (config.hidden_act) + LayerNorm, then logits against the tied word
    embeddings plus a bias.

    `attend` maps [..., H] to [..., V] with the embedding table (Embeddings.attend), so the
    decoder weight is shared with the input embedding, as in BERT.
    """

    config: ModelConfig

    @nn.compact
    def __call__(self, x_BxPxH, attend):
        c = self.config
        h_BxPxH = activation(c)(dense(c, c.hidden_size, "dense")(x_BxPxH))
        h_BxPxH = layer_norm(c, "LayerNorm")(h_BxPxH)
        bias_V = self.param("bias", nn.initializers.zeros, (c.vocab_size,), c.param_dtype)
        return attend(h_BxPxH).astype(jnp.float32) + bias_V.astype(jnp.float32)


class NspHead(nn.Module):
    """Two-way classifier on the pooled output: [B, H] -> [B, 2] float32 logits."""

    config: ModelConfig

    @nn.compact
    def __call__(self, pooled_BxH):
        return dense(self.config, 2, "dense")(pooled_BxH).astype(jnp.float32)
