"""Model hyper-parameters, the default pretraining config, and validation.

`ModelConfig` is the one frozen description of an encoder; `SIZES` is the table of Google's
released BERT sizes. `default_pretrain_config()` is the ml_collections tree every pretraining
config file starts from: the field names there are the contract of DESIGN.md (`seed`,
`train.num_steps`, `train.batch_size` (global), `train.log_every`, `train.checkpoint_every`,
`model.hidden_dropout`, `model.attention_dropout`). `validate()` checks a config against the
devices and tokenizer *before* anything is compiled, and names the offending field.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections

from bert_jax import masking as masking_lib

# Google's released BERTs (github.com/google-research/bert): name -> (layers, hidden).
# Heads are hidden / 64 and the feed-forward width is 4 * hidden in all of them.
SIZES: dict[str, tuple[int, int]] = {
    "tiny": (2, 128),
    "mini": (4, 256),
    "small": (4, 512),
    "medium": (8, 512),
    "base": (12, 768),
    "large": (24, 1024),
}

_DTYPES = ("float32", "bfloat16", "float16")
_PARALLEL = ("pmap", "shard_map")
_REMAT = ("none", "full", "dots")
# Feed-forward activations (modeling/layers.py): "gelu" is the exact erf form (HF's "gelu");
# "gelu_tanh" the tanh approximation that Google's original BERT used (HF's "gelu_new").
ACTIVATIONS = ("gelu", "gelu_tanh", "relu", "silu")


class ConfigError(ValueError):
    """A config value that cannot work; the message names the field and how to fix it."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of a BERT encoder and its pretraining heads (hashable, static)."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    # Compute dtype of matmuls; parameters stay in param_dtype. LayerNorm, softmax and
    # losses always run in float32.
    dtype: str = "float32"
    param_dtype: str = "float32"
    # nn.scan over layers: compile time independent of depth; params stacked on axis 0.
    scan_layers: bool = True
    remat: str = "none"
    hidden_act: str = "gelu"  # one of ACTIVATIONS; feed-forward and MLM-head transform
    # Which modules exist. Published checkpoints may lack some (sentence-transformers'
    # MiniLM has no MLM or NSP head); pretraining needs mlm_head, NSP needs the pooler.
    pooler: bool = True  # tanh(Dense(h_[CLS])) -> pooled_output
    mlm_head: bool = True  # masked-LM head, decoder tied to the word embeddings
    next_sentence: bool = True  # NSP head on the pooled [CLS] vector

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def check(self) -> None:
        """Raises ConfigError for values that cannot build a model."""
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"model.hidden_size ({self.hidden_size}) is not divisible by model.num_heads "
                f"({self.num_heads}); pick num_heads that divides it (e.g. hidden_size // 64)")
        for name in ("hidden_dropout", "attention_dropout"):
            rate = getattr(self, name)
            if not 0.0 <= rate < 1.0:
                raise ConfigError(f"model.{name} must be in [0, 1), got {rate}")
        for name in ("dtype", "param_dtype"):
            if getattr(self, name) not in _DTYPES:
                raise ConfigError(f"model.{name} must be one of {_DTYPES}, got {getattr(self, name)!r}")
        if self.remat not in _REMAT:
            raise ConfigError(f"model.remat must be one of {_REMAT}, got {self.remat!r}")
        if self.hidden_act not in ACTIVATIONS:
            raise ConfigError(
                f"model.hidden_act must be one of {ACTIVATIONS}, got {self.hidden_act!r}")
        if self.next_sentence and not self.pooler:
            raise ConfigError("model.next_sentence needs model.pooler (NSP reads the pooled "
                              "[CLS] vector); turn next_sentence off or the pooler on")


def model_config_for(size: str, **overrides: Any) -> ModelConfig:
    """ModelConfig of a Google BERT size ('tiny' ... 'large') with field overrides."""
    if size not in SIZES:
        raise ConfigError(f"unknown model size {size!r}; choose one of {sorted(SIZES)}")
    layers, hidden = SIZES[size]
    fields = dict(num_layers=layers, hidden_size=hidden, num_heads=hidden // 64,
                  intermediate_size=4 * hidden)
    fields.update(overrides)
    return ModelConfig(**fields)


def model_config_dict(size: str, **overrides: Any) -> ml_collections.ConfigDict:
    """The `model` section of a run config: a size name plus every ModelConfig field."""
    return ml_collections.ConfigDict(
        dict(size=size, **dataclasses.asdict(model_config_for(size, **overrides))))


def model_config_from(model_cfg: ml_collections.ConfigDict) -> ModelConfig:
    """Builds the frozen ModelConfig from the `model` section of a run config."""
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    values = dict(model_cfg.to_dict()) if hasattr(model_cfg, "to_dict") else dict(model_cfg)
    values.pop("size", None)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown model field(s) {unknown}; known: {sorted(known)}")
    config = ModelConfig(**values)
    config.check()
    return config


def default_pretrain_config() -> ml_collections.ConfigDict:
    """Every field of a pretraining run, commented. Config files start here and override."""
    from bert_jax.data.pipeline import default_data_config  # data owns its own fields

    c = ml_collections.ConfigDict()
    c.seed = 0  # the one seed: parameters, data order, masks and dropout all derive from it

    # Model: a Google size name plus every ModelConfig field (see bert_jax/config.py).
    c.model = model_config_dict("base")

    c.data = default_data_config()  # corpus, tokenizer and instance creation (data/pipeline.py)

    c.masking = ml_collections.ConfigDict()
    c.masking.mask_rate = 0.15            # fraction of non-special tokens predicted
    c.masking.max_predictions_per_seq = 20  # static number of prediction slots per sequence
    c.masking.mask_token_prob = 0.8       # a target becomes [MASK] ...
    c.masking.random_token_prob = 0.1     # ... or a random token; else it is kept
    # Which tokens are targets (bert_jax/masking.py states the rules exactly):
    # "token" (BERT), "whole_word" (all pieces of a word), "ngram" (ALBERT: 1..max_ngram
    # whole words, p(n) ~ 1/n), "span" (SpanBERT: geometric lengths in words), or "coarse"
    # (AMBERT: 15% of coarse tokens, all their pieces; batches must carry `coarse_start`).
    c.masking.strategy = "token"
    c.masking.max_ngram = 3               # ngram: longest n-gram, in words
    c.masking.span_p = 0.2                # span: lengths ~ Geometric(span_p) in words ...
    c.masking.max_span = 10               # ... truncated at max_span (mean 3.8 words)
    c.masking.replace_unit = "piece"      # 80/10/10 drawn per "piece", or per chosen "word"
                                          # (word, n-gram, span or coarse token)
    # False: new masks every step (dynamic, as RoBERTa). True: static masks, as
    # google-research/bert's pre-masked data: dataset row r in epoch e is masked with a key
    # of (r, e % dupe_factor) only. data.dupe_factor already makes that many differently
    # segmented copies of each document, each with its own mask, so masking.dupe_factor=1
    # is google-research/bert's setting; > 1 remasks a row every epoch for that many epochs.
    c.masking.static = False
    c.masking.dupe_factor = 1             # static: a row's mask repeats every dupe_factor epochs

    c.train = ml_collections.ConfigDict()
    c.train.num_steps = 1_000_000       # optimizer steps
    c.train.batch_size = 256            # global batch (all devices and hosts together)
    c.train.learning_rate = 1e-4        # peak learning rate
    c.train.warmup_steps = 10_000       # linear warm-up, then linear decay to end_learning_rate
    c.train.end_learning_rate = 0.0
    c.train.weight_decay = 0.01         # AdamW; not applied to biases and LayerNorm
    c.train.adam_b1 = 0.9
    c.train.adam_b2 = 0.999
    c.train.adam_eps = 1e-6
    c.train.max_grad_norm = 1.0         # global-norm clipping (0 = off)
    c.train.log_every = 100             # steps between train rows in metrics.jsonl
    c.train.eval_every = 10_000         # steps between evaluations (0 = only at the end)
    c.train.eval_batches = 20           # batches of the held-out split per evaluation
    c.train.eval_batch_size = 0         # 0 = train.batch_size
    c.train.checkpoint_every = 10_000   # steps between checkpoints (also saved at the end)
    c.train.max_to_keep = 3             # checkpoints kept in workdir/checkpoints
    c.train.parallel = "pmap"           # "pmap" or "shard_map" (jit over a 1-D mesh)
    c.train.nonfinite = "skip"          # NaN/Inf loss or gradient: "skip" the update (counted
                                        # in metrics' skipped_steps) or "stop" the run
    c.train.init_from = ""              # start from a checkpoint: HF dir, Google TF checkpoint
                                        # or bert_jax workdir/export ("" = random init)
    c.train.fill_in_examples = 0        # at the end, print N fill-in-the-blank examples
    c.train.plots = True                # write loss/accuracy PNGs under workdir/plots
    return c


def validate(config: ml_collections.ConfigDict, *, num_devices: int, process_count: int = 1,
             tokenizer_vocab_size: int | None = None) -> ModelConfig:
    """Checks a run config before any compilation; returns its ModelConfig.

    Raises ConfigError whose message names the field and the fix.
    """
    model = model_config_from(config.model)
    t, d, m = config.train, config.data, config.masking
    for name in ("num_steps", "batch_size", "log_every", "checkpoint_every", "max_to_keep"):
        if t[name] < 1:
            raise ConfigError(f"train.{name} must be >= 1, got {t[name]}")
    if t.batch_size % num_devices:
        raise ConfigError(
            f"train.batch_size ({t.batch_size}) is the global batch and must be divisible by the "
            f"number of devices ({num_devices}); use a multiple of {num_devices}")
    if t.batch_size % process_count:
        raise ConfigError(f"train.batch_size ({t.batch_size}) must be divisible by the number "
                          f"of processes ({process_count})")
    eval_bs = t.eval_batch_size or t.batch_size
    if eval_bs % num_devices:
        raise ConfigError(f"train.eval_batch_size ({eval_bs}) must be divisible by the number "
                          f"of devices ({num_devices})")
    if t.nonfinite not in ("skip", "stop"):
        raise ConfigError(f"train.nonfinite must be 'skip' or 'stop', got {t.nonfinite!r}")
    if t.parallel not in _PARALLEL:
        raise ConfigError(f"train.parallel must be one of {_PARALLEL}, got {t.parallel!r}")
    if t.warmup_steps < 0 or t.learning_rate <= 0:
        raise ConfigError("train.learning_rate must be > 0 and train.warmup_steps >= 0")
    if d.max_seq_len > model.max_position_embeddings:
        raise ConfigError(
            f"data.max_seq_len ({d.max_seq_len}) is longer than model.max_position_embeddings "
            f"({model.max_position_embeddings}); shorten the sequences or add positions")
    if d.max_seq_len < 8:
        raise ConfigError(f"data.max_seq_len must be >= 8, got {d.max_seq_len}")
    if not 1 <= m.max_predictions_per_seq <= d.max_seq_len:
        raise ConfigError(f"masking.max_predictions_per_seq must be in [1, data.max_seq_len], "
                          f"got {m.max_predictions_per_seq}")
    try:  # The masking fields; the tokenizer's ids are not needed to check them.
        masking_lib.config_from(m, vocab_size=model.vocab_size, mask_id=0, special_ids=())
    except ValueError as err:
        raise ConfigError(f"masking.{err}") from None
    if m.strategy == "coarse":
        raise ConfigError("masking.strategy='coarse' needs batches with coarse_start (AMBERT's "
                          "phrase boundaries), which data/pipeline.py does not make yet; "
                          "pick another masking.strategy")
    if not model.mlm_head:
        raise ConfigError("pretraining needs the MLM head; set model.mlm_head=True")
    if d.nsp and not model.next_sentence:
        raise ConfigError("data.nsp is on but model.next_sentence is off; set both alike")
    if tokenizer_vocab_size is not None and model.vocab_size < tokenizer_vocab_size:
        raise ConfigError(
            f"model.vocab_size ({model.vocab_size}) is smaller than the tokenizer's vocabulary "
            f"({tokenizer_vocab_size}, from data.vocab_path); set model.vocab_size >= "
            f"{tokenizer_vocab_size}")
    return model
