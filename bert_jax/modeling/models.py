"""BERT assembled from one ModelConfig: the bare encoder and the pretraining model."""

from __future__ import annotations

import jax.numpy as jnp
import flax.linen as nn

from bert_jax.config import ModelConfig
from bert_jax.modeling.encoder import Encoder
from bert_jax.modeling.heads import MlmHead, NspHead, Pooler, gather_positions
from bert_jax.modeling.layers import Embeddings


class BertForPreTraining(nn.Module):
    """BERT encoder with the pooler, MLM and NSP heads that the config turns on.

    Inputs are int [B, L]: `input_ids`, `attention_mask` (1 real, 0 padding) and
    `token_type_ids`. With `masked_positions` (int [B, P]) the MLM head runs only at those
    positions (static P, as google-research/bert does), else at every position.

    Returns a dict, all float32: `last_hidden_state` [B, L, H]; `pooled_output` [B, H] with
    `config.pooler`; `mlm_logits` [B, P, V] or [B, L, V] with `config.mlm_head`; and
    `nsp_logits` [B, 2] with `config.next_sentence`. A module that is off has no parameters.
    """

    config: ModelConfig

    def setup(self):
        c = self.config
        self.embeddings = Embeddings(c)
        self.encoder = Encoder(c)
        if c.pooler:
            self.pooler = Pooler(c)
        if c.mlm_head:
            self.mlm_head = MlmHead(c)
        if c.next_sentence:
            self.nsp_head = NspHead(c)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None,
                 masked_positions=None, *, deterministic: bool = True):
        if attention_mask is None:
            attention_mask = jnp.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = jnp.zeros_like(input_ids)
        x_BxLxH = self.embeddings(input_ids, token_type_ids, deterministic=deterministic)
        x_BxLxH = self.encoder(x_BxLxH, attention_mask, deterministic=deterministic)
        out = {"last_hidden_state": x_BxLxH}
        if self.config.pooler:
            out["pooled_output"] = self.pooler(x_BxLxH)
        if self.config.mlm_head:
            if masked_positions is not None:
                mlm_in = gather_positions(x_BxLxH, masked_positions)
            else:
                mlm_in = x_BxLxH
            out["mlm_logits"] = self.mlm_head(mlm_in, self.embeddings.attend)
        if self.config.next_sentence:
            out["nsp_logits"] = self.nsp_head(out["pooled_output"])
        return out


def init_params(model: BertForPreTraining, key, seq_len: int = 8):
    """Parameters of `model` from a PRNG key (shapes do not depend on seq_len)."""
    ids = jnp.zeros((1, seq_len), jnp.int32)
    return model.init({"params": key}, ids, ids + 1, ids, deterministic=True)["params"]
