"""Pretraining heads: pooler, masked-LM (tied decoder), sentence-pair (NSP / SOP) classifier."""

from __future__ import annotations

import jax.numpy as jnp
import flax.linen as nn

from bert_jax.config import ModelConfig
from bert_jax.modeling.layers import activation, dense, gather_positions, layer_norm

__all__ = ["MlmHead", "Pooler", "SentencePairHead", "gather_positions", "read_rows"]


def read_rows(positions_BxP, with_cls: bool):
    """int32 [B, P + with_cls]: the rows of the last layer the pretraining heads read, [CLS]
    (row 0, for the pooler) first when `with_cls`, then the masked positions."""
    positions_BxP = positions_BxP.astype(jnp.int32)
    cls_Bx1 = jnp.zeros((positions_BxP.shape[0], int(with_cls)), jnp.int32)
    return jnp.concatenate([cls_Bx1, positions_BxP], axis=1)


class Pooler(nn.Module):
    """tanh(Dense(h_[CLS])): [B, L, H] -> [B, H] float32."""

    config: ModelConfig

    @nn.compact
    def __call__(self, x_BxLxH):
        return jnp.tanh(dense(self.config, self.config.hidden_size, "dense")(x_BxLxH[:, 0])
                        .astype(jnp.float32))


class MlmHead(nn.Module):
    """Dense H -> E + activation (config.hidden_act) + LayerNorm, then logits against the
    tied word embeddings plus a bias. E = config.embedding_width (H without factorization).

    `attend` maps [..., E] to [..., V] with the embedding table (Embeddings.attend), so the
    decoder weight is shared with the input embedding, as in BERT (and RoBERTa, ALBERT).
    """

    config: ModelConfig

    @nn.compact
    def __call__(self, x_BxPxH, attend):
        c = self.config
        h_BxPxE = activation(c)(dense(c, c.embedding_width, "dense")(x_BxPxH))
        h_BxPxE = layer_norm(c, "LayerNorm")(h_BxPxE)
        bias_V = self.param("bias", nn.initializers.zeros, (c.vocab_size,), c.param_dtype)
        return attend(h_BxPxE).astype(jnp.float32) + bias_V.astype(jnp.float32)


class SentencePairHead(nn.Module):
    """Two-way classifier on the pooled output: [B, H] -> [B, 2] float32 logits.

    BERT's next-sentence and ALBERT's sentence-order prediction are this same function with
    their own parameters (models.py names them `nsp_head` / `sop_head`).
    """

    config: ModelConfig

    @nn.compact
    def __call__(self, pooled_BxH):
        return dense(self.config, 2, "dense")(pooled_BxH).astype(jnp.float32)
