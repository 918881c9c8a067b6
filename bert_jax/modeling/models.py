"""BERT, RoBERTa and ALBERT assembled from one ModelConfig: the pretraining model.

The three are values of ModelConfig (config.family_config), not classes: RoBERTa is BERT
with a position offset and no NSP; ALBERT is BERT with factorized embeddings, shared layers
and a sentence-order head. AMBERT (a coarse vocabulary besides) is AmbertForPreTraining
(modeling/ambert.py), built of the same modules; `pretraining_model` picks the class.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import flax.linen as nn

from bert_jax.config import ModelConfig
from bert_jax.modeling.encoder import make_encoder
from bert_jax.modeling.heads import (MlmHead, Pooler, SentencePairHead, gather_positions,
                                     read_rows)
from bert_jax.modeling.layers import Embeddings, packed_attention_mask


class BertForPreTraining(nn.Module):
    """BERT-family encoder with the pooler, MLM and NSP/SOP heads that the config turns on.

    Inputs are int [B, L]: `input_ids`, `attention_mask` (1 real, 0 padding) and
    `token_type_ids`. With `masked_positions` (int [B, P]) the MLM head runs only at those
    positions (static P, as google-research/bert does), else at every position; P may be 0
    (a sequence task's model, which reads [CLS] alone). With
    `pack_ids` (int [B, L], rows holding several sequences: 1, 2, ... per sequence, 0
    padding; data.packing="packed_documents") tokens attend only within their sequence and
    positions restart at each, so each sequence gets what it would get alone.

    Returns a dict, all float32: `last_hidden_state` [B, L, H] (not with masked_positions
    and config.last_layer_subset, where the last layer computes [CLS] and the masked rows
    only); `pooled_output` [B, H] with
    `config.pooler`; `mlm_logits` [B, P, V] or [B, L, V] with `config.mlm_head`; and
    `nsp_logits` [B, 2] with `config.next_sentence`, or `sop_logits` [B, 2] with
    `config.sentence_order`. A module that is off has no parameters.
    """

    config: ModelConfig

    def setup(self):
        c = self.config
        self.embeddings = Embeddings(c)
        self.encoder = make_encoder(c)
        if c.pooler:
            self.pooler = Pooler(c)
        if c.mlm_head:
            self.mlm_head = MlmHead(c)
        if c.next_sentence:
            self.nsp_head = SentencePairHead(c)
        if c.sentence_order:
            self.sop_head = SentencePairHead(c)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None,
                 masked_positions=None, *, deterministic: bool = True, pack_ids=None):
        if attention_mask is None:
            attention_mask = jnp.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = jnp.zeros_like(input_ids)
        x_BxLxH = self.embeddings(input_ids, token_type_ids, attention_mask,
                                  deterministic=deterministic, pack_ids_BxL=pack_ids)
        mask = attention_mask if pack_ids is None else packed_attention_mask(pack_ids)
        c = self.config
        length = input_ids.shape[1]
        if (masked_positions is not None
                and c.last_layer_rows(length, masked_positions.shape[1]) < length):
            # Only [CLS] (for the pooler) and the masked positions leave the last layer.
            x_BxQxH = self.encoder(x_BxLxH, mask, deterministic=deterministic,
                                   output_positions=read_rows(masked_positions, c.pooler))
            out = {}
            if c.pooler:
                out["pooled_output"] = self.pooler(x_BxQxH)  # row 0 is [CLS]
            if c.mlm_head:
                out["mlm_logits"] = self.mlm_head(x_BxQxH[:, int(c.pooler):],
                                                  self.embeddings.attend)
        else:
            x_BxLxH = self.encoder(x_BxLxH, mask, deterministic=deterministic)
            out = {"last_hidden_state": x_BxLxH.astype(jnp.float32)}  # any residual_dtype
            if c.pooler:
                out["pooled_output"] = self.pooler(x_BxLxH)
            if c.mlm_head:
                if masked_positions is not None:
                    mlm_in = gather_positions(x_BxLxH, masked_positions)
                else:
                    mlm_in = x_BxLxH
                out["mlm_logits"] = self.mlm_head(mlm_in, self.embeddings.attend)
        if self.config.next_sentence:
            out["nsp_logits"] = self.nsp_head(out["pooled_output"])
        if self.config.sentence_order:
            out["sop_logits"] = self.sop_head(out["pooled_output"])
        return out


def pretraining_model(config: ModelConfig) -> nn.Module:
    """The pretraining module of `config`: AMBERT when it has a coarse vocabulary, else BERT."""
    if config.coarse_vocab_size:
        from bert_jax.modeling.ambert import AmbertForPreTraining  # pylint: disable=g-import-not-at-top
        return AmbertForPreTraining(config)
    return BertForPreTraining(config)


@functools.partial(jax.jit, static_argnums=(0, 2))
def init_params(model: nn.Module, key, seq_len: int = 8):
    """Parameters of `model` from a PRNG key (shapes do not depend on seq_len).

    Jitted: Flax's eager init runs every operation as a program of its own, each compiled by
    XLA (91 programs for a tiny BERT, ~0.1 s each on a 2-core CPU; a test counts them). The
    values agree with an eager init's to ~1e-8 (rounding in the normal sampler); the CLIs
    always ran it jitted."""
    ids = jnp.zeros((1, seq_len), jnp.int32)
    return model.init({"params": key}, ids, ids + 1, ids, deterministic=True)["params"]
