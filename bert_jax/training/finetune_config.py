"""Fine-tuning configs: every field (commented), validation, and what a run derives.

`default_finetune_config()` is the tree every configs/finetune/*.py starts from. A run's
model comes from `init_from` when given: the architecture (every config.ARCHITECTURE_FIELDS
value, activation, LayerNorm eps) is read from the checkpoint and replaces the config's, so a
mismatch cannot happen; dropout, dtypes, the layer loop, remat, last_layer_subset and
attention_impl (config.COMPUTE_FIELDS) stay the config's. The
resolved model is what config.json records. Without `init_from` the model is the config's,
randomly initialised.
"""

from __future__ import annotations

import dataclasses
import math

import ml_collections

from bert_jax import config as config_lib
from bert_jax.config import ConfigError, ModelConfig
from bert_jax.training.parallel import BACKENDS

# ModelConfig fields a run keeps from its config when the rest comes from a checkpoint.
RUNTIME_FIELDS = config_lib.COMPUTE_FIELDS
_OPTIMIZERS, _NONFINITE = ("adamw", "lamb"), ("skip", "stop")


def default_finetune_config() -> ml_collections.ConfigDict:
    """Every field of a fine-tuning run. Config files start here and override."""
    c = ml_collections.ConfigDict()
    c.seed = 0  # the one seed: new heads' init, data order and dropout derive from it
    c.task = "sst2"  # data/tasks TASKS: cola sst2 mrpc stsb qqp mnli qnli rte wnli
                     # squad_v1 squad_v2 conll2003
    # Start from a checkpoint: HF directory, Google TF checkpoint or bert_jax export/workdir
    # ("" = random init of the model below). The architecture is then the checkpoint's.
    c.init_from = ""
    # A size name plus every ModelConfig field (bert_jax/config.py). Fine-tuning turns the
    # pretraining heads off and the pooler on where the head reads it (modeling/task_models).
    c.model = config_lib.model_config_dict("base")

    c.data = ml_collections.ConfigDict()
    c.data.local_dir = ""      # folder of the task's original files ("" = TFDS, internet)
    c.data.sample = False      # True: the project's tiny samples (data/tasks/samples; demo)
    c.data.tfds_data_dir = ""  # where TFDS prepares the task ("" = TFDS's default)
    c.data.train_limit = 0     # train on the first N training examples only (0 = all)
    # WordPiece vocab.txt (or tokenizer.json); "" = the one that came with init_from.
    c.data.vocab_path = ""
    c.data.lowercase = True    # uncased; ignored when the vocab comes with init_from
    c.data.max_seq_len = 128   # tokens per row incl. [CLS]/[SEP]
    c.data.doc_stride = 128    # SQuAD: stride between windows of a long context, in tokens
    c.data.max_query_length = 64  # SQuAD: question tokens kept
    c.data.coarse_vocab_path = ""  # AMBERT: the phrase vocab (data/phrases.py)

    c.train = ml_collections.ConfigDict()
    c.train.num_steps = 0        # optimizer steps; 0 = ceil(num_epochs * train rows / batch)
    c.train.num_epochs = 3.0     # used when num_steps == 0
    c.train.batch_size = 32      # global batch (all devices)
    c.train.learning_rate = 2e-5  # peak learning rate
    c.train.warmup_steps = -1    # linear warm-up steps; -1 = warmup_ratio * num_steps
    c.train.warmup_ratio = 0.1
    c.train.end_learning_rate = 0.0  # linear decay to this at num_steps
    c.train.optimizer = "adamw"  # training/optimizer.py
    c.train.weight_decay = 0.01  # decoupled; not on biases and LayerNorm
    c.train.adam_b1 = 0.9
    c.train.adam_b2 = 0.999
    c.train.adam_eps = 1e-6
    c.train.max_grad_norm = 1.0  # global-norm clipping (0 = off)
    # Layer-wise learning-rate decay (optimizer.layerwise_lr_multipliers): the top layer and
    # the head train at the full rate, each layer below at `decay` times the one above,
    # embeddings lowest. 1.0 = off.
    c.train.layerwise_lr_decay = 1.0
    c.train.ambert_agreement_weight = 1.0  # AMBERT: lambda of ||p_fine - p_coarse||^2
    c.train.log_every = 10        # steps between train rows in metrics.jsonl
    c.train.eval_every = 0        # steps between evaluations (0 = only at the end)
    c.train.eval_batch_size = 0   # 0 = batch_size
    c.train.checkpoint_every = 500  # steps between checkpoints (also saved at the end)
    c.train.max_to_keep = 2
    c.train.parallel = "pmap"     # "pmap" or "shard_map"
    c.train.nonfinite = "skip"    # NaN/Inf loss or gradient: "skip" the update, or "stop"

    c.decode = ml_collections.ConfigDict()  # SQuAD answer decoding (data/tasks/squad.py)
    c.decode.n_best_size = 20
    c.decode.max_answer_length = 30         # tokens
    c.decode.null_score_diff_threshold = 0.0  # v2.0: predict "no answer" above this margin
    return c


# Fields that may change when a run resumes (see training/loop.py's RESUME_MAY_CHANGE).
RESUME_MAY_CHANGE = frozenset({
    "train.log_every", "train.eval_every", "train.eval_batch_size", "train.checkpoint_every",
    "train.max_to_keep", "train.parallel", "train.nonfinite", "init_from",
    "data.tfds_data_dir", "model.remat", "model.scan_unroll", "model.attention_impl",
    "decode.n_best_size", "decode.max_answer_length",
    "decode.null_score_diff_threshold",
})


def model_from_checkpoint(config_model: ModelConfig, ckpt: ModelConfig) -> ModelConfig:
    """The checkpoint's architecture with the run's RUNTIME_FIELDS."""
    return dataclasses.replace(ckpt, **{f: getattr(config_model, f) for f in RUNTIME_FIELDS})


def record_model(config, model: ModelConfig) -> None:
    """Writes the resolved model into `config.model` (so config.json shows what ran)."""
    with config.unlocked():
        for field, value in dataclasses.asdict(model).items():
            config.model[field] = value
        if init_from_size(model) != config.model.get("size"):
            config.model.size = init_from_size(model)


def init_from_size(model: ModelConfig) -> str:
    """The size name of a model's (family, layers, hidden) in the tables, else "custom"."""
    for name, row in config_lib.FAMILY_SIZES.get(model.family, {}).items():
        if row[:2] == (model.num_layers, model.hidden_size):
            return name
    return "custom"


def num_steps(train_cfg, num_train_rows: int) -> int:
    """train.num_steps, or the steps of train.num_epochs epochs over the feature rows."""
    if train_cfg.num_steps:
        return int(train_cfg.num_steps)
    return max(1, math.ceil(train_cfg.num_epochs * num_train_rows / train_cfg.batch_size))


def schedule_config(train_cfg, steps: int) -> ml_collections.ConfigDict:
    """The train section with num_steps and warmup_steps resolved (optimizer.py reads it)."""
    resolved = ml_collections.ConfigDict(train_cfg.to_dict())
    resolved.num_steps = steps
    if train_cfg.warmup_steps < 0:
        resolved.warmup_steps = int(round(train_cfg.warmup_ratio * steps))
    return resolved


def validate(config, task, model: ModelConfig, *, num_devices: int,
             tokenizer_vocab_size: int | None = None) -> None:
    """Checks a fine-tuning config (its model already resolved) before anything compiles;
    raises ConfigError naming the field."""
    t, d, dec = config.train, config.data, config.decode
    for name in ("batch_size", "log_every", "checkpoint_every", "max_to_keep"):
        if t[name] < 1:
            raise ConfigError(f"train.{name} must be >= 1, got {t[name]}")
    for name in ("num_steps", "eval_every", "eval_batch_size"):
        if t[name] < 0:
            raise ConfigError(f"train.{name} must be >= 0, got {t[name]}")
    if not t.num_steps and not t.num_epochs > 0:
        raise ConfigError(f"train.num_epochs must be > 0 when train.num_steps is 0, got "
                          f"{t.num_epochs}")
    for name, value in (("batch_size", t.batch_size),
                        ("eval_batch_size", t.eval_batch_size or t.batch_size)):
        if value % num_devices:
            raise ConfigError(
                f"train.{name} ({value}) is global and must be divisible by the number of "
                f"devices ({num_devices}); use a multiple of {num_devices}")
    if t.learning_rate <= 0:
        raise ConfigError(f"train.learning_rate must be > 0, got {t.learning_rate}")
    if t.warmup_steps < 0 and not 0.0 <= t.warmup_ratio <= 1.0:
        raise ConfigError(f"train.warmup_ratio must be in [0, 1], got {t.warmup_ratio}")
    if not 0.0 < t.layerwise_lr_decay <= 1.0:
        raise ConfigError(f"train.layerwise_lr_decay must be in (0, 1] (1.0 = off), got "
                          f"{t.layerwise_lr_decay}")
    for name, value, choices in (("optimizer", t.optimizer, _OPTIMIZERS),
                                 ("nonfinite", t.nonfinite, _NONFINITE),
                                 ("parallel", t.parallel, BACKENDS)):
        if value not in choices:
            raise ConfigError(f"train.{name} must be one of {choices}, got {value!r}")
    if d.sample and d.local_dir:
        raise ConfigError("data.sample=True reads the project's samples; leave data.local_dir "
                          f"empty (got {d.local_dir!r}) or set data.sample=False")
    if d.train_limit < 0:
        raise ConfigError(f"data.train_limit must be >= 0, got {d.train_limit}")
    if d.max_seq_len < 8:
        raise ConfigError(f"data.max_seq_len must be >= 8, got {d.max_seq_len}")
    if d.max_seq_len + model.position_offset > model.max_position_embeddings:
        raise ConfigError(
            f"data.max_seq_len ({d.max_seq_len}) is longer than the model's "
            f"{model.max_position_embeddings - model.position_offset} positions "
            "(model.max_position_embeddings); shorten data.max_seq_len")
    if task.kind == "span":
        if not 0 < d.max_query_length <= d.max_seq_len - 4:
            raise ConfigError(f"data.max_query_length must be in [1, data.max_seq_len - 4], "
                              f"got {d.max_query_length}")
        if d.doc_stride < 1:
            raise ConfigError(f"data.doc_stride must be >= 1, got {d.doc_stride}")
        if dec.n_best_size < 1 or dec.max_answer_length < 1:
            raise ConfigError("decode.n_best_size and decode.max_answer_length must be >= 1")
    if model.coarse_vocab_size:
        if task.kind not in ("classification", "regression"):
            raise ConfigError(f"AMBERT fine-tuning supports classification and regression "
                              f"tasks; {task.name} is a {task.kind} task")
        if not d.coarse_vocab_path:
            raise ConfigError("AMBERT (model.coarse_vocab_size > 0) needs its phrase vocab: "
                              "set data.coarse_vocab_path")
    config_lib.check_vocab_fits(model, tokenizer_vocab_size)
