"""Fine-tuning models: the pretraining encoder plus one task head.

The encoder modules keep the names of the pretraining model (`embeddings`, `encoder`,
`pooler`, and AMBERT's `coarse_*`), so any checkpoint `convert.init_params_from` reads fills
them; the heads take Hugging Face's names (`classifier` as in BertForSequenceClassification
and BertForTokenClassification, `qa_outputs` as in BertForQuestionAnswering) and are the only
new parameters. Pretraining heads (MLM, NSP/SOP) are off in a task model
(`task_model_config`); the pooler is on only where the head reads it.

Kinds (`TASK_KINDS`), all outputs float32:
  classification  pooled [CLS] -> dropout -> Dense C     `logits` [B, C]
                  (with config.last_layer_subset the last layer computes [CLS] alone:
                  the same logits up to rounding, ~3/4 of that layer's matmuls fewer)
  regression      pooled [CLS] -> dropout -> Dense 1     `logits` [B, 1]
  token           each position -> dropout -> Dense C    `logits` [B, L, C]
  span            each position -> Dense 2               `start_logits`, `end_logits` [B, L],
                  padding positions set to SPAN_MASKED (finite, so a softmax stays defined)

AMBERT (`AmbertForTask`, classification and regression): the paper's fine-tuning uses the
[CLS] vectors of both granularities: a classifier on the fine one (`classifier_fine`), one on
the coarse one (`classifier_coarse`) and one on both concatenated (`classifier`). `logits`
is the concatenated classifier's (the prediction), `logits_fine`/`logits_coarse` the others;
the loss combining them is in training/finetune_step.py.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import flax.linen as nn

from bert_jax.config import ModelConfig
from bert_jax.modeling.ambert import AmbertForPreTraining
from bert_jax.modeling.layers import dense, dropout
from bert_jax.modeling.models import BertForPreTraining

TASK_KINDS = ("classification", "regression", "token", "span")
SEQUENCE_KINDS = ("classification", "regression")  # the head reads the pooled [CLS] vector
SPAN_MASKED = -1e9  # span logit at padding positions: never a start or an end


def task_model_config(config: ModelConfig, kind: str) -> ModelConfig:
    """`config` with the pretraining heads off and the pooler on only where `kind` uses it."""
    if kind not in TASK_KINDS:
        raise ValueError(f"task kind must be one of {TASK_KINDS}, got {kind!r}")
    return dataclasses.replace(config, mlm_head=False, next_sentence=False,
                               sentence_order=False, pooler=kind in SEQUENCE_KINDS)


def num_outputs(kind: str, num_labels: int) -> int:
    """Width of the head's Dense."""
    return {"regression": 1, "span": 2}.get(kind, num_labels)


def _span_logits(logits_BxLx2, attention_mask_BxL) -> dict:
    real_BxL = attention_mask_BxL != 0
    return {name: jnp.where(real_BxL, logits_BxLx2[..., i], SPAN_MASKED)
            for i, name in enumerate(("start_logits", "end_logits"))}


def _cls_only(config: ModelConfig, kind: str, input_ids):
    """No gathered positions (int [B, 0]) where the head reads the pooled [CLS] alone and
    config.last_layer_subset is on, so the last layer computes that row only; else None."""
    if kind in SEQUENCE_KINDS and config.last_layer_subset:
        return jnp.zeros((input_ids.shape[0], 0), jnp.int32)
    return None


class BertForTask(BertForPreTraining):
    """BERT / RoBERTa / ALBERT encoder + the head of `kind` (module docstring).

    `config` must come from `task_model_config`. Inputs as BertForPreTraining (int [B, L]
    `input_ids`, `attention_mask`, `token_type_ids`). Returns the encoder's outputs
    (`last_hidden_state`, `pooled_output` where pooled) plus the head's (module docstring).
    Classification and regression with `config.last_layer_subset` compute the last layer
    at [CLS] only, the one row the head reads, and return no `last_hidden_state`.
    """

    kind: str = "classification"
    num_labels: int = 2

    def setup(self):
        super().setup()
        c = self.config
        self.head_dropout = dropout(c, c.hidden_dropout)
        if self.kind == "span":
            self.qa_outputs = dense(c, 2)
        else:
            self.classifier = dense(c, num_outputs(self.kind, self.num_labels))

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, *,
                 deterministic: bool = True):
        if attention_mask is None:
            attention_mask = jnp.ones_like(input_ids)
        out = super().__call__(input_ids, attention_mask, token_type_ids,
                               _cls_only(self.config, self.kind, input_ids),
                               deterministic=deterministic)
        if self.kind == "span":  # as BertForQuestionAnswering: no dropout before the Dense
            logits_BxLx2 = self.qa_outputs(out["last_hidden_state"]).astype(jnp.float32)
            return {**out, **_span_logits(logits_BxLx2, attention_mask)}
        x = out["pooled_output"] if self.kind in SEQUENCE_KINDS else out["last_hidden_state"]
        x = self.head_dropout(x, deterministic=deterministic)
        return {**out, "logits": self.classifier(x).astype(jnp.float32)}


class AmbertForTask(AmbertForPreTraining):
    """AMBERT + fine, coarse and concatenated [CLS] classifiers (classification and
    regression only). Inputs as AmbertForPreTraining without masked positions (the coarse
    inputs `coarse_ids`, `coarse_start` [B, L] as data/phrases.py lays them over the fine
    tokens). Returns `logits` (concatenated), `logits_fine`, `logits_coarse`, all [B, C]."""

    kind: str = "classification"
    num_labels: int = 2

    def setup(self):
        if self.kind not in SEQUENCE_KINDS:
            raise ValueError(f"AMBERT fine-tuning supports {SEQUENCE_KINDS}, not {self.kind!r}")
        super().setup()
        c, width = self.config, num_outputs(self.kind, self.num_labels)
        self.head_dropout = dropout(c, c.hidden_dropout)
        self.classifier_fine = dense(c, width)
        self.classifier_coarse = dense(c, width)
        self.classifier = dense(c, width)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, *,
                 coarse_ids=None, coarse_start=None, deterministic: bool = True):
        none = _cls_only(self.config, self.kind, input_ids)
        out = super().__call__(input_ids, attention_mask, token_type_ids, none,
                               coarse_ids=coarse_ids, coarse_start=coarse_start,
                               coarse_masked_positions=none, deterministic=deterministic)
        drop = lambda x: self.head_dropout(x, deterministic=deterministic)
        fine_BxH, coarse_BxH = drop(out["pooled_output_fine"]), drop(out["pooled_output_coarse"])
        both_Bx2H = jnp.concatenate([fine_BxH, coarse_BxH], axis=-1)
        return {**out, "logits": self.classifier(both_Bx2H).astype(jnp.float32),
                "logits_fine": self.classifier_fine(fine_BxH).astype(jnp.float32),
                "logits_coarse": self.classifier_coarse(coarse_BxH).astype(jnp.float32)}


def task_model(config: ModelConfig, kind: str, num_labels: int) -> nn.Module:
    """The fine-tuning module: AMBERT's when `config` has a coarse vocabulary, else BERT's."""
    config = task_model_config(config, kind)
    cls = AmbertForTask if config.coarse_vocab_size else BertForTask
    return cls(config, kind=kind, num_labels=num_labels)
