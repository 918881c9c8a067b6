"""AMBERT (Zhang & Li 2020, "AMBERT: A Pre-trained Language Model with Multi-Grained
Tokenization"): the input encoded at two granularities, fine (WordPiece) and coarse
(phrases, data/phrases.py), with BERT's modules.

Inputs are aligned with the fine sequence (static shapes, data/instances.py): `coarse_start`
[B, L] is 1 at the first fine token of each coarse token and `coarse_ids` [B, L] holds the
coarse token's id there. `compact_coarse` moves the coarse tokens to the front of a length-L
coarse sequence on device (a cumsum and a scatter), which gives the coarse sequence, its
attention mask and the alignment: for each fine position, the index of its coarse token.

Variants (`config.ambert_variant`):
  "shared"  the paper's AMBERT: the fine and the coarse sequence each go through the same
            encoder (every Transformer layer shared), each with its own embeddings.
  "combo"   AMBERT-Combo: two encoders with their own parameters (`encoder`, `coarse_encoder`).
  "hybrid"  AMBERT-Hybrid: one encoder over the concatenation [fine; coarse] (length 2L), so
            attention also runs across granularities.

Choices the paper leaves open, decided here:
- Embeddings: the paper gives the two encoders different embedding layers and shares the rest.
  Here the whole `Embeddings` module is per granularity (`embeddings`, `coarse_embeddings`:
  token, position and token-type tables and the embedding LayerNorm), which is the literal
  reading; position p of the coarse sequence is the p-th coarse token.
- Heads: one MLM head per granularity, each tied to its own token embeddings. The pooler
  (for fine-tuning, not trained in pretraining) follows the encoder: one pooler for "shared"
  and "hybrid" applied to both [CLS] vectors, one per encoder for "combo".
- No sentence-level head: pretraining is fine MLM + coarse MLM (training/step.py).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import flax.linen as nn

from bert_jax.config import ModelConfig
from bert_jax.modeling.encoder import make_encoder
from bert_jax.modeling.heads import MlmHead, Pooler, gather_positions, read_rows
from bert_jax.modeling.layers import Embeddings


def coarse_view(config: ModelConfig) -> ModelConfig:
    """The config of the coarse side's embeddings and MLM head: the coarse vocabulary."""
    return dataclasses.replace(config, vocab_size=config.coarse_vocab_size)


def compact_coarse(coarse_ids_BxL, coarse_start_BxL, attention_mask_BxL, token_type_ids_BxL):
    """Fine-aligned coarse tokens -> the compact coarse sequence (static length L).

    Coarse token k of a row is its k-th real position with coarse_start set.

    Returns dict:
        ids [B, L] int32: coarse ids, coarse token k at index k, 0 after the last one;
        token_type_ids [B, L] int32: the token type at each coarse token's first fine token;
        attention_mask [B, L] int32: 1 on the coarse tokens;
        index [B, L] int32: for each fine position, its coarse token's index (the alignment;
            0 on padding).
    """
    start_BxL = (coarse_start_BxL != 0) & (attention_mask_BxL != 0)
    length = start_BxL.shape[1]
    index_BxL = jnp.cumsum(start_BxL, axis=1) - 1
    slot_BxL = jnp.where(start_BxL, index_BxL, length)  # L: dropped by the scatter

    def scatter(values_BxL):
        rows = lambda slot_L, v_L: jnp.zeros((length,), jnp.int32).at[slot_L].set(
            v_L.astype(jnp.int32), mode="drop")
        return jax.vmap(rows)(slot_BxL, values_BxL)

    count_B = jnp.sum(start_BxL, axis=1)
    return {
        "ids": scatter(coarse_ids_BxL),
        "token_type_ids": scatter(token_type_ids_BxL),
        "attention_mask": (jnp.arange(length)[None] < count_B[:, None]).astype(jnp.int32),
        "index": jnp.where(attention_mask_BxL != 0, jnp.maximum(index_BxL, 0), 0).astype(
            jnp.int32),
    }


class AmbertForPreTraining(nn.Module):
    """AMBERT with fine and coarse MLM heads (module docstring for the variants).

    Inputs as BertForPreTraining (`input_ids`, `attention_mask`, `token_type_ids`, int [B, L];
    `masked_positions` [B, P]), plus the fine-aligned `coarse_ids` and `coarse_start` [B, L]
    and `coarse_masked_positions` [B, P] (indices into the compact coarse sequence). Without
    coarse inputs every fine token is its own coarse token with the coarse id 1 ([UNK]; only
    useful for shape inference).

    Returns a dict, all float32 except the int32 alignment: `last_hidden_state` (= `_fine`)
    [B, L, H]; `last_hidden_state_coarse` [B, L, H] (compact, valid where
    `coarse_attention_mask`) (these three not with both granularities' masked positions and
    config.last_layer_subset, where the last layer computes [CLS] and the masked rows only);
    `coarse_index` [B, L] (fine position -> coarse token);
    `pooled_output_fine`/`pooled_output_coarse` [B, H] with `config.pooler` (`pooled_output`
    = the fine one); `mlm_logits` [B, P or L, V] and `coarse_mlm_logits` [B, P or L, Vc].
    """

    config: ModelConfig

    def setup(self):
        c = self.config
        self.embeddings = Embeddings(c)
        self.coarse_embeddings = Embeddings(coarse_view(c))
        self.encoder = make_encoder(c)
        if c.ambert_variant == "combo":
            self.coarse_encoder = make_encoder(c)
        if c.pooler:
            self.pooler = Pooler(c)
            if c.ambert_variant == "combo":
                self.coarse_pooler = Pooler(c)
        if c.mlm_head:
            self.mlm_head = MlmHead(c)
            self.coarse_mlm_head = MlmHead(coarse_view(c))

    def _encode(self, fine_BxLxH, fine_mask, coarse_BxLxH, coarse_mask, deterministic,
                rows=(None, None)):
        """Both granularities through the encoder(s); with `rows` (int [B, Qf], [B, Qc]) the
        last layer computes only those rows of each (config.last_layer_subset)."""
        c = self.config
        fine_rows, coarse_rows = rows
        if c.ambert_variant == "hybrid":
            length = fine_BxLxH.shape[1]
            split = length if fine_rows is None else fine_rows.shape[1]
            both_rows = (None if fine_rows is None
                         else jnp.concatenate([fine_rows, coarse_rows + length], axis=1))
            x = self.encoder(jnp.concatenate([fine_BxLxH, coarse_BxLxH], axis=1),
                             jnp.concatenate([fine_mask, coarse_mask], axis=1),
                             deterministic=deterministic, output_positions=both_rows)
            return x[:, :split], x[:, split:]
        coarse_encoder = self.coarse_encoder if c.ambert_variant == "combo" else self.encoder
        return (self.encoder(fine_BxLxH, fine_mask, deterministic=deterministic,
                             output_positions=fine_rows),
                coarse_encoder(coarse_BxLxH, coarse_mask, deterministic=deterministic,
                               output_positions=coarse_rows))

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None,
                 masked_positions=None, *, coarse_ids=None, coarse_start=None,
                 coarse_masked_positions=None, deterministic: bool = True):
        c = self.config
        if attention_mask is None:
            attention_mask = jnp.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = jnp.zeros_like(input_ids)
        if coarse_start is None:
            coarse_start = jnp.ones_like(input_ids)
        if coarse_ids is None:
            coarse_ids = jnp.ones_like(input_ids)
        coarse = compact_coarse(coarse_ids, coarse_start, attention_mask, token_type_ids)
        fine_BxLxH = self.embeddings(input_ids, token_type_ids, attention_mask,
                                     deterministic=deterministic)
        coarse_BxLxH = self.coarse_embeddings(coarse["ids"], coarse["token_type_ids"],
                                              coarse["attention_mask"],
                                              deterministic=deterministic)
        length = input_ids.shape[1]
        # As BertForPreTraining: given both granularities' masked positions, the last layer
        # computes [CLS] (for the poolers) and those rows only.
        subset = (masked_positions is not None and coarse_masked_positions is not None
                  and max(c.last_layer_rows(length, masked_positions.shape[1]),
                          c.last_layer_rows(length, coarse_masked_positions.shape[1])) < length)
        rows = (None, None)
        if subset:
            rows = (read_rows(masked_positions, c.pooler),
                    read_rows(coarse_masked_positions, c.pooler))
        fine_BxLxH, coarse_BxLxH = self._encode(fine_BxLxH, attention_mask, coarse_BxLxH,
                                                coarse["attention_mask"], deterministic, rows)
        f32 = lambda x: x.astype(jnp.float32)  # any residual_dtype
        out = {"coarse_attention_mask": coarse["attention_mask"], "coarse_index": coarse["index"]}
        if not subset:
            out.update(last_hidden_state=f32(fine_BxLxH), last_hidden_state_fine=f32(fine_BxLxH),
                       last_hidden_state_coarse=f32(coarse_BxLxH))
        if c.pooler:  # row 0 is [CLS] either way
            coarse_pooler = self.coarse_pooler if c.ambert_variant == "combo" else self.pooler
            out["pooled_output"] = out["pooled_output_fine"] = self.pooler(fine_BxLxH)
            out["pooled_output_coarse"] = coarse_pooler(coarse_BxLxH)
        if c.mlm_head:
            for name, x, positions, head, table in (
                    ("mlm_logits", fine_BxLxH, masked_positions, self.mlm_head,
                     self.embeddings),
                    ("coarse_mlm_logits", coarse_BxLxH, coarse_masked_positions,
                     self.coarse_mlm_head, self.coarse_embeddings)):
                if subset:
                    x = x[:, int(c.pooler):]
                elif positions is not None:
                    x = gather_positions(x, positions)
                out[name] = head(x, table.attend)
        return out
