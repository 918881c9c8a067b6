"""The per-device fine-tuning steps: pure module-level functions, as training/step.py's.

They run inside the mapping over the device axis "batch" (training/parallel.py, with
`steps=STEPS`) and see one device's slice of the global batch. A batch holds the task's
feature arrays (data/tasks: int32 `input_ids`, `attention_mask`, `token_type_ids` [b, L],
the labels of its kind) plus `weight` float32 [b]: 1 for a real row, 0 for a row that only
pads the last eval batch (it then counts nowhere). AMBERT adds `coarse_ids`, `coarse_start`.

Losses are sums over rows (tokens for `token`) divided by the *global* weight, so the pmean'd
gradient is the single-device gradient of the whole batch: 1 device = 8 devices.
  classification  cross-entropy of `label`; metrics loss, accuracy
  regression      squared error of `label` (float); metrics loss
  token           cross-entropy of `labels` weighted by `label_weights` (0 on padding,
                  special tokens and non-first word pieces); metrics loss, accuracy
  span            (CE(start_position) + CE(end_position)) / 2 over the window's positions
AMBERT (classification/regression): loss = fine + coarse + concatenated classifier's losses
+ agreement_weight * ||p_fine - p_coarse||^2 (class probabilities; the predictions
themselves for regression), the paper's fine-tuning objective; `loss` is that sum and
`accuracy` is the concatenated classifier's. Dropout draws from
fold_in(fold_in(base_key, step), device index).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax import lax

from bert_jax import losses
from bert_jax.config import ModelConfig
from bert_jax.modeling.task_models import task_model
from bert_jax.training.step import (AXIS, TrainState, apply_gradients, device_mean,
                                    device_sum, step_dropout_key)


@dataclasses.dataclass(frozen=True)
class FinetuneStepConfig:
    """Everything static the fine-tuning step needs (hashable)."""

    model: ModelConfig
    kind: str  # modeling/task_models.TASK_KINDS
    num_labels: int
    agreement_weight: float = 1.0  # AMBERT's lambda; unused otherwise


# Model outputs per kind: what predict returns for each row (data/tasks' postprocess input).
OUTPUT_KEYS = {"classification": ("logits",), "regression": ("logits",),
               "token": ("logits",), "span": ("start_logits", "end_logits")}


def forward(params, batch, cfg: FinetuneStepConfig, dropout_key=None) -> dict:
    """The task model on a batch; dropout on when `dropout_key` is given."""
    coarse = {}
    if cfg.model.coarse_vocab_size:
        coarse = dict(coarse_ids=batch["coarse_ids"], coarse_start=batch["coarse_start"])
    rngs = None if dropout_key is None else {"dropout": dropout_key}
    return task_model(cfg.model, cfg.kind, cfg.num_labels).apply(
        {"params": params}, batch["input_ids"], batch["attention_mask"],
        batch["token_type_ids"], deterministic=dropout_key is None, rngs=rngs, **coarse)


def _row_sums(out, batch, cfg: FinetuneStepConfig, logits_key: str = "logits") -> dict:
    """{loss, weight[, correct]} sums of one classifier's outputs on this device's rows."""
    w_B = batch["weight"].astype(jnp.float32)
    if cfg.kind == "regression":
        err_B = out[logits_key][:, 0] - batch["label"].astype(jnp.float32)
        return {"loss": jnp.sum(jnp.where(w_B != 0, w_B * err_B**2, 0.0)), "weight": w_B.sum()}
    if cfg.kind == "span":
        start, w = losses.weighted_cross_entropy(out["start_logits"], batch["start_position"],
                                                 w_B)
        end, _ = losses.weighted_cross_entropy(out["end_logits"], batch["end_position"], w_B)
        return {"loss": (start + end) / 2, "weight": w}
    if cfg.kind == "token":
        labels, w = batch["labels"], batch["label_weights"] * w_B[:, None]
    else:
        labels, w = batch["label"], w_B
    loss, weight = losses.weighted_cross_entropy(out[logits_key], labels, w)
    correct, _ = losses.weighted_accuracy(out[logits_key], labels, w)
    return {"loss": loss, "weight": weight, "correct": correct}


def _agreement_sum(out, batch, cfg: FinetuneStepConfig):
    """AMBERT: sum over rows of ||p_fine - p_coarse||^2."""
    if cfg.kind == "regression":
        p_fine_BxC, p_coarse_BxC = out["logits_fine"], out["logits_coarse"]
    else:
        p_fine_BxC = jax.nn.softmax(out["logits_fine"], axis=-1)
        p_coarse_BxC = jax.nn.softmax(out["logits_coarse"], axis=-1)
    return jnp.sum(batch["weight"] * jnp.sum((p_fine_BxC - p_coarse_BxC) ** 2, axis=-1))


def loss_sums(params, batch, cfg: FinetuneStepConfig, dropout_key=None) -> dict:
    """Per-device sums; `loss` is the objective's sum (AMBERT: all its terms)."""
    out = forward(params, batch, cfg, dropout_key)
    sums = _row_sums(out, batch, cfg)
    if cfg.model.coarse_vocab_size:
        for side in ("fine", "coarse"):
            sums["loss"] += _row_sums(out, batch, cfg, f"logits_{side}")["loss"]
        sums["loss"] += cfg.agreement_weight * _agreement_sum(out, batch, cfg)
    return sums


def summarize(tot: dict) -> dict:
    """Metrics from global sums: loss (and accuracy) per weighted row or token."""
    weight = jnp.maximum(tot["weight"], 1.0)
    metrics = {"loss": tot["loss"] / weight}
    if "correct" in tot:
        metrics["accuracy"] = tot["correct"] / weight
    return metrics


def train_step(state: TrainState, batch, base_key, cfg: FinetuneStepConfig):
    """One optimizer step on this device's rows; returns (new state, global metrics)."""
    dropout_key = step_dropout_key(base_key, state.step, cfg.model)
    weight_sum = device_sum(_weight_sum(batch, cfg))

    def objective(params):
        sums = loss_sums(params, batch, cfg, dropout_key)
        return lax.axis_size(AXIS) * sums["loss"] / jnp.maximum(weight_sum, 1.0), sums

    grads, sums = jax.grad(objective, has_aux=True)(state.params)
    return apply_gradients(state, device_mean(grads), summarize(device_sum(sums)), batch)


def _weight_sum(batch, cfg: FinetuneStepConfig):
    if cfg.kind == "token":
        return jnp.sum(batch["label_weights"] * batch["weight"][:, None])
    return jnp.sum(batch["weight"])


def eval_step(params, batch, base_key, cfg: FinetuneStepConfig) -> dict:
    """Global loss sums of an eval batch (padding rows weigh 0), dropout off."""
    del base_key
    return device_sum(loss_sums(params, batch, cfg))


def predict_step(params, batch, base_key, cfg: FinetuneStepConfig) -> dict:
    """The head's outputs for each of this device's rows (OUTPUT_KEYS), dropout off."""
    del base_key
    out = forward(params, batch, cfg)
    return {k: out[k] for k in OUTPUT_KEYS[cfg.kind]}


STEPS = (train_step, eval_step, predict_step)  # for Parallel(..., steps=STEPS)
