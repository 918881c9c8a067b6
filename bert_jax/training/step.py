"""The per-device pretraining and evaluation steps: pure module-level functions.

Both run *inside* a mapping over the device axis named "batch" (jax.pmap, or
jax.shard_map under jit; see training/parallel.py) and see one device's slice of the global
batch. Reductions over the axis make every reported number a global one, and the loss is
normalised by *global* counts, so the gradient equals the single-device gradient of the whole
batch: 1 device and 8 devices give the same numbers up to summation order.

Keys: the run's `base_key` is split once into a masking key and a dropout key. Example i of
the global batch at step s is masked with fold_in(fold_in(mask_key, s), i) (masking.py), so
masks depend neither on the device count nor on where the example sits. With static masking
(cfg.masking.static) training masks use fold_in(fold_in(mask_key, epoch % dupe_factor), row)
instead, from the batch's `epoch` and `example_index`: a row's mask ignores the step and
repeats every dupe_factor epochs. Evaluation always uses the dynamic form at the fixed step
EVAL_STEP. Dropout draws per device from fold_in(fold_in(dropout_key, s), device index).

AMBERT (cfg.coarse_masking set, model.coarse_vocab_size > 0): the fine masking ("coarse"
strategy) decides the targets of both granularities and masking.mask_coarse builds the coarse
inputs from the same per-example keys; the objective is fine MLM + coarse MLM, each
normalised by its own global target count. Metrics: `mlm_loss`/`mlm_accuracy` stay the fine
MLM's (comparable with BERT's), also named `mlm_loss_fine`/`mlm_accuracy_fine`, besides
`mlm_loss_coarse`/`mlm_accuracy_coarse`; `loss` is the objective, their sum.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax import lax

from bert_jax import losses
from bert_jax.config import ModelConfig
from bert_jax.masking import (MaskingConfig, example_keys, mask_coarse, mask_tokens,
                              static_example_keys)
from bert_jax.modeling.models import pretraining_model

AXIS = "batch"
EVAL_STEP = 2**31 - 1  # the step folded into eval masking keys: the same masks at every eval


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """Everything static the step needs (hashable; a static argument of the mapping)."""

    model: ModelConfig
    masking: MaskingConfig
    # AMBERT: the coarse vocabulary's masking (masking.coarse_config); None otherwise.
    coarse_masking: MaskingConfig | None = None
    # Gradient accumulation: each device's rows go through the model in this many equal
    # micro-batches (a lax.scan), and their gradients add up to the gradient of the whole
    # batch. One optimizer step either way; only activation memory and speed differ.
    grad_accum: int = 1
    # How the update of a non-finite step is discarded (UPDATE_GUARDS): the same arithmetic
    # either way, compiled differently (so a value may round differently in its last bit).
    update_guard: str = "auto"


class TrainState(struct.PyTreeNode):
    """What a checkpoint holds of the model: step counter, parameters, optimizer state, the
    run's base PRNG key (as raw uint32 key data, so it saves like any array) and the number
    of steps whose update was skipped because the loss or gradient was not finite."""

    step: jax.Array
    params: Any
    opt_state: Any
    key_data: jax.Array
    skipped_steps: jax.Array
    tx: optax.GradientTransformation = struct.field(pytree_node=False)

    @classmethod
    def create(cls, params, tx, key):
        return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                   key_data=jax.random.key_data(key), skipped_steps=jnp.zeros((), jnp.int32),
                   tx=tx)

    @property
    def base_key(self):
        return jax.random.wrap_key_data(self.key_data)


def _global_example_index(local_batch: int):
    """Index of each local example in the global batch: device d holds rows [d*b, (d+1)*b)."""
    return lax.axis_index(AXIS) * local_batch + jnp.arange(local_batch)


# A batch that already carries these (pre-masked data, as google-research/bert's TFRecords
# hold: input_ids with the masks applied) is used as it is; nothing is drawn on device.
PREMASKED_KEYS = ("masked_positions", "masked_labels", "masked_weights")


def _masked_batch(batch, key, step, cfg: StepConfig, *, train: bool = True):
    """Masks this device's rows; static keys for training when cfg.masking.static."""
    if all(k in batch for k in PREMASKED_KEYS) and cfg.coarse_masking is None:
        return {"input_ids": batch["input_ids"], **{k: batch[k] for k in PREMASKED_KEYS}}
    m = cfg.masking
    if m.static and train:
        keys_B = static_example_keys(key, batch["example_index"], batch["epoch"], m.dupe_factor)
    else:
        keys_B = example_keys(key, step, _global_example_index(batch["input_ids"].shape[0]))
    masked = mask_tokens(keys_B, batch["input_ids"], batch["attention_mask"],
                         batch["word_start"], m, batch.get("coarse_start"))
    if cfg.coarse_masking is not None:
        masked.update(mask_coarse(keys_B, masked, batch["coarse_ids"], batch["coarse_start"],
                                  batch["attention_mask"], cfg.coarse_masking))
    return masked


def _forward(params, batch, masked, cfg: StepConfig, dropout_key=None):
    """The pretraining model on the masked batch (MLM heads at the masked positions)."""
    extra = {}  # The keyword inputs that only some models or batches have.
    if cfg.model.coarse_vocab_size:
        extra = dict(coarse_ids=masked["coarse_input_ids"], coarse_start=batch["coarse_start"],
                     coarse_masked_positions=masked["coarse_masked_positions"])
    if "pack_ids" in batch:  # data.packing="packed_documents"
        extra["pack_ids"] = batch["pack_ids"]
    rngs = None if dropout_key is None else {"dropout": dropout_key}
    return pretraining_model(cfg.model).apply(
        {"params": params}, masked["input_ids"], batch["attention_mask"],
        batch["token_type_ids"], masked["masked_positions"], deterministic=dropout_key is None,
        rngs=rngs, **extra)


def _prediction_sums(sums, prefix, logits, labels, weights):
    sums[f"{prefix}_loss"], sums[f"{prefix}_weight"] = losses.weighted_cross_entropy(
        logits, labels, weights)
    sums[f"{prefix}_correct"], _ = losses.weighted_accuracy(logits, labels, weights)


def _losses(params, batch, masked, cfg: StepConfig, *, dropout_key, counts):
    """Objective normalised by global counts (so a pmean of gradients is exact) + sums."""
    out = _forward(params, batch, masked, cfg, dropout_key)
    sums = {}
    _prediction_sums(sums, "mlm", out["mlm_logits"], masked["masked_labels"],
                     masked["masked_weights"])
    num_devices = lax.axis_size(AXIS)
    objective = num_devices * sums["mlm_loss"] / jnp.maximum(counts["mlm"], 1.0)
    if cfg.model.coarse_vocab_size:
        _prediction_sums(sums, "coarse_mlm", out["coarse_mlm_logits"],
                         masked["coarse_masked_labels"],
                         masked["coarse_masked_weights"])
        objective += num_devices * sums["coarse_mlm_loss"] / jnp.maximum(
            counts["coarse_mlm"], 1.0)
    task = sentence_task(cfg.model)
    if task:
        ones_B = jnp.ones(batch["next_sentence_label"].shape, jnp.float32)
        _prediction_sums(sums, task, out[f"{task}_logits"], batch["next_sentence_label"], ones_B)
        objective += num_devices * sums[f"{task}_loss"] / counts["sentence"]
    return objective, sums


def sentence_task(model: ModelConfig) -> str | None:
    """The sentence-level objective: "nsp" (BERT), "sop" (ALBERT) or None (RoBERTa). Its
    label is the batch's `next_sentence_label` either way; metrics are named after it."""
    if model.next_sentence:
        return "nsp"
    return "sop" if model.sentence_order else None


def summarize(tot, maximum=jnp.maximum):
    """Metrics from global sums (of a step, or of a whole evaluation: `maximum=max` on the
    host keeps its float64 arithmetic)."""
    mlm_w = maximum(tot["mlm_weight"], 1.0)
    metrics = {"mlm_loss": tot["mlm_loss"] / mlm_w, "mlm_accuracy": tot["mlm_correct"] / mlm_w}
    metrics["loss"] = metrics["mlm_loss"]
    if "coarse_mlm_loss" in tot:  # AMBERT (module docstring)
        coarse_w = maximum(tot["coarse_mlm_weight"], 1.0)
        metrics.update(mlm_loss_fine=metrics["mlm_loss"],
                       mlm_accuracy_fine=metrics["mlm_accuracy"],
                       mlm_loss_coarse=tot["coarse_mlm_loss"] / coarse_w,
                       mlm_accuracy_coarse=tot["coarse_mlm_correct"] / coarse_w)
        metrics["loss"] = metrics["loss"] + metrics["mlm_loss_coarse"]
    for task in ("nsp", "sop"):
        if f"{task}_loss" in tot:
            metrics[f"{task}_loss"] = tot[f"{task}_loss"] / tot[f"{task}_weight"]
            metrics[f"{task}_accuracy"] = tot[f"{task}_correct"] / tot[f"{task}_weight"]
            metrics["loss"] = metrics["loss"] + metrics[f"{task}_loss"]
    return metrics


def _reduce(sums):
    """Global metrics from per-device sums (psum over the device axis)."""
    return summarize(device_sum(sums))


def _accumulated_grads(params, batch, masked, cfg: StepConfig, dropout_key, counts):
    """Gradient of this device's share of the objective, and its metric sums, computed over
    cfg.grad_accum micro-batches. The objective is normalised by global counts, so the
    micro-batch gradients simply add up (as do the sums). Micro-batch i draws its dropout
    from fold_in(dropout_key, i)."""
    grad_fn = jax.grad(_losses, has_aux=True)
    k = cfg.grad_accum
    if k == 1:
        return grad_fn(params, batch, masked, cfg, dropout_key=dropout_key, counts=counts)
    inputs = ({n: x for n, x in batch.items() if n != "stop"}, masked)
    micro = jax.tree.map(lambda x: x.reshape((k, x.shape[0] // k) + x.shape[1:]), inputs)

    def one(i, micro_batch, micro_masked):
        key = None if dropout_key is None else jax.random.fold_in(dropout_key, i)
        return grad_fn(params, micro_batch, micro_masked, cfg, dropout_key=key, counts=counts)

    def body(total, xs):
        return jax.tree.map(jnp.add, total, one(*xs)), None

    shapes = jax.eval_shape(one, 0, *jax.tree.map(lambda x: x[0], micro))
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    total, _ = lax.scan(body, zeros, (jnp.arange(k), *micro))
    return total


def train_step(state: TrainState, batch, base_key, cfg: StepConfig):
    """One optimizer step on this device's slice of the batch.

    batch: int32 `input_ids`, `attention_mask`, `token_type_ids`, `word_start` [b, L] and
    `next_sentence_label` [b]; with static masking also `example_index` and `epoch` [b], with
    coarse masking also `coarse_start` [b, L] (and, for AMBERT, `coarse_ids`); optionally
    `stop` [b] (1 where the host was asked to stop). A pre-masked batch also carries
    PREMASKED_KEYS ([b, P]) and its `input_ids` are the corrupted ones. Returns (new state,
    metrics), metrics identical on all devices.
    """
    mask_key, dropout_key = jax.random.split(base_key)
    masked = _masked_batch(batch, mask_key, state.step, cfg)
    dropout_key = step_dropout_key(dropout_key, state.step, cfg.model)
    counts = {"mlm": device_sum(masked["masked_weights"].sum()),
              "sentence": device_sum(jnp.float32(batch["input_ids"].shape[0]))}
    if cfg.model.coarse_vocab_size:
        counts["coarse_mlm"] = device_sum(masked["coarse_masked_weights"].sum())
    grads, sums = _accumulated_grads(state.params, batch, masked, cfg, dropout_key, counts)
    return apply_gradients(state, device_mean(grads), _reduce(sums), batch,
                           guard=cfg.update_guard)


def step_dropout_key(key, step, model: ModelConfig):
    """This device's dropout key at `step`: fold_in(fold_in(key, step), device index); None
    when the model has no dropout (the step then runs deterministically)."""
    if model.hidden_dropout == 0.0 and model.attention_dropout == 0.0:
        return None
    return jax.random.fold_in(jax.random.fold_in(key, step), lax.axis_index(AXIS))


# How a non-finite step's update is discarded (StepConfig.update_guard):
#   "select": compute the update, then jnp.where(finite, new, old) on every parameter and
#             moment. XLA:CPU fuses the moments' arithmetic into both the parameter's and the
#             moment's select, then copies each donated input that one of them overwrites
#             while the other still reads it.
#   "cond":   lax.cond(finite, update, keep): the update runs only when the step is finite
#             and writes in place. The same arithmetic, but XLA compiles it apart from
#             the rest of the step, and a value may round differently: over the main
#             job's 1,200 steps the eval MLM accuracy moved from 0.2270 to 0.2298.
#   "auto":   "cond" on the CPU, where it measured faster (BENCHMARKS.md); "select"
#             elsewhere. A GPU runs a conditional by copying its predicate to the host and
#             waiting for it, a stall of the launch queue once per step: not yet measured.
UPDATE_GUARDS = ("auto", "cond", "select")


def _across_devices(collective, tree):
    """`collective` (lax.psum, pmean, pmax) over the device axis; the identity on one device,
    where XLA:CPU would still run the all-reduce and wait for it: the gradients' one is a
    copy of every gradient, and the counts' one, right after masking, put masking's measured
    cost at 2.4-4.6% of BERT-base's CPU step (BENCHMARKS.md)."""
    return tree if lax.axis_size(AXIS) == 1 else collective(tree, AXIS)


def device_sum(tree):
    return _across_devices(lax.psum, tree)


def device_mean(tree):
    return _across_devices(lax.pmean, tree)


def apply_gradients(state: TrainState, grads, metrics: dict, batch, *, guard: str = "auto"):
    """The optimizer update from all-reduced `grads`, with the NaN/Inf guard (`guard`, one of
    UPDATE_GUARDS); adds grad_norm, learning_rate, nonfinite, skipped_steps (and stop) to the
    global `metrics`. Shared by every per-device train step (pretraining, fine-tuning)."""
    if guard not in UPDATE_GUARDS:
        raise ValueError(f"update_guard must be one of {UPDATE_GUARDS}, got {guard!r}")
    metrics = dict(metrics)
    metrics["grad_norm"] = optax.tree.norm(grads)
    metrics["learning_rate"] = jnp.asarray(
        state.opt_state.hyperparams["learning_rate"], jnp.float32)
    # NaN/Inf guard, decided on device from globally reduced values (so identical on every
    # device): a non-finite step leaves parameters and optimizer state as they were. The step
    # counter still advances, so data and masks move on; the loop decides to go on or stop.
    finite = jnp.isfinite(metrics["loss"]) & jnp.isfinite(metrics["grad_norm"])

    def update(params, opt_state, grads):
        updates, opt_state = state.tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    if guard == "auto":
        guard = "cond" if jax.default_backend() == "cpu" else "select"
    if guard == "cond":
        params, opt_state = lax.cond(finite, update, lambda p, o, g: (p, o),
                                     state.params, state.opt_state, grads)
    else:
        params, opt_state = update(state.params, state.opt_state, grads)
        keep = lambda new, old: jnp.where(finite, new, old)
        params = jax.tree.map(keep, params, state.params)
        opt_state = jax.tree.map(keep, opt_state, state.opt_state)
    skipped = state.skipped_steps + (~finite).astype(jnp.int32)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                              skipped_steps=skipped)
    metrics["nonfinite"] = (~finite).astype(jnp.float32)
    metrics["skipped_steps"] = skipped.astype(jnp.float32)
    if "stop" in batch:  # a stop request of any process, seen by all (loop.py); not logged
        metrics["stop"] = _across_devices(lax.pmax, jnp.max(batch["stop"])).astype(jnp.float32)
    return new_state, metrics


def eval_step(params, batch, base_key, cfg: StepConfig):
    """Sums of MLM/NSP losses and hits on this device's slice, reduced over devices.

    Eval masks use the fixed step EVAL_STEP, so every evaluation scores the same targets.
    """
    mask_key, _ = jax.random.split(base_key)
    masked = _masked_batch(batch, mask_key, EVAL_STEP, cfg, train=False)
    counts = {"mlm": jnp.float32(1.0), "sentence": jnp.float32(1.0),
              "coarse_mlm": jnp.float32(1.0)}
    _, sums = _losses(params, batch, masked, cfg, dropout_key=None, counts=counts)
    return device_sum(sums)


def eval_predictions(params, batch, base_key, cfg: StepConfig, top_k: int = 5):
    """Top-k MLM predictions at the eval masks (for the fill-in-the-blank printout)."""
    mask_key, _ = jax.random.split(base_key)
    masked = _masked_batch(batch, mask_key, EVAL_STEP, cfg, train=False)
    out = _forward(params, batch, masked, cfg)
    _, top_BxPxK = lax.top_k(out["mlm_logits"], top_k)
    return {**masked, "top_ids": top_BxPxK}
