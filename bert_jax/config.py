"""Model hyper-parameters, the default pretraining config, and validation.

`ModelConfig` is the one frozen description of an encoder. BERT, RoBERTa and ALBERT are all
values of it (one model code, modeling/): `family_config(family, size)` builds them from
`FAMILY_SIZES` plus each family's fixed choices (`FAMILY_FIELDS`); `SIZES` is the table of
Google's released BERT sizes. `default_pretrain_config()` is the ml_collections tree every pretraining
config file starts from: the field names there are the contract of DESIGN.md (`seed`,
`train.num_steps`, `train.batch_size` (global), `train.log_every`, `train.checkpoint_every`,
`model.hidden_dropout`, `model.attention_dropout`). AMBERT is a value of it too
(`coarse_vocab_size` > 0 adds the coarse granularity; modeling/ambert.py). `validate()` checks a config against the
devices and tokenizer *before* anything is compiled, and names the offending field.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bert_jax import masking as masking_lib

# ml_collections is imported where a ConfigDict is built, not here: the model and the train
# step (which import this module) must also import where it is absent (the benchmark CLI on a
# bare accelerator image).

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
# What the backward pass recomputes (modeling/encoder.py, layers.DenseActivation): nothing;
# only the feed-forward's bias + activation (element-wise, so it costs memory traffic, not
# matmuls); everything but the matmul outputs; everything.
_REMAT = ("none", "activation", "dots", "full")
# How jax.nn.dot_product_attention computes attention (modeling/layers.py): "xla" (any
# device) or "cudnn" (NVIDIA GPUs, bfloat16/float16: the fused flash-attention kernel, given
# each row's length instead of a dense mask, so rows must be right-padded as ours are).
ATTENTION_IMPLS = ("xla", "cudnn")
DROPOUT_BITS = (16, 32)  # model.dropout_bits (modeling/layers.Dropout)
# Feed-forward activations (modeling/layers.py): "gelu" is the exact erf form (HF's "gelu");
# "gelu_tanh" the tanh approximation that Google's original BERT used (HF's "gelu_new").
ACTIVATIONS = ("gelu", "gelu_tanh", "relu", "silu")
FAMILIES = ("bert", "roberta", "albert", "ambert")
# AMBERT (Zhang & Li 2020): how the fine and coarse sequences are encoded (modeling/ambert.py).
# "shared": two encoders sharing every Transformer layer (the paper's AMBERT); "combo": two
# unshared encoders (AMBERT-Combo); "hybrid": one encoder over both sequences concatenated
# (AMBERT-Hybrid).
AMBERT_VARIANTS = ("shared", "combo", "hybrid")
# ALBERT's cross-layer parameter sharing (Lan et al. 2019, table 4): which sub-layers of the
# Transformer block have one set of parameters for all layers.
SHARE_MODES = ("none", "all", "attention", "ffn")

# Each family's choices that are not BERT's (ModelConfig's defaults are BERT's). Published
# checkpoints: RoBERTa (Liu et al. 2019; fairseq / HF `roberta-base`) has no NSP, one token
# type, LayerNorm eps 1e-5 and positions that start after the padding index (so 514 rows
# for 512 tokens). ALBERT v2 (HF `albert-base-v2`) factorizes the embedding (E = 128),
# shares all layers, uses the tanh GELU, sentence-order prediction, a 30k vocab, no dropout.
FAMILY_FIELDS: dict[str, dict[str, Any]] = {
    "bert": {},
    "roberta": dict(vocab_size=50265, max_position_embeddings=514, position_offset=2,
                    type_vocab_size=1, layer_norm_eps=1e-5, next_sentence=False),
    "albert": dict(vocab_size=30000, embedding_size=128, share_layers="all",
                   hidden_act="gelu_tanh", next_sentence=False, sentence_order=True,
                   hidden_dropout=0.0, attention_dropout=0.0),
    # AMBERT: BERT's encoder, MLM at both granularities and no sentence-level task (the
    # paper's pre-training objective is the sum of the fine and coarse MLM losses). The coarse
    # vocabulary size is the project's phrase vocab's (data/phrases.py); set it to yours.
    "ambert": dict(next_sentence=False, coarse_vocab_size=8192, ambert_variant="shared"),
}

# family -> size -> (layers, hidden, heads, feed-forward width[, embedding_size]).
# BERT's are Google's releases; RoBERTa's the two of the paper; ALBERT's table 1 of its paper
# (base 12M, large 18M, xlarge 60M, xxlarge 235M parameters). "tiny" (2 x 128) is for tests
# and CPU runs in every family; ALBERT-tiny keeps E < H so the factorization is exercised.
FAMILY_SIZES: dict[str, dict[str, tuple[int, ...]]] = {
    "bert": {name: (layers, hidden, hidden // 64, 4 * hidden)
             for name, (layers, hidden) in SIZES.items()},
    "roberta": {"tiny": (2, 128, 2, 512), "base": (12, 768, 12, 3072),
                "large": (24, 1024, 16, 4096)},
    "albert": {"tiny": (2, 128, 2, 512, 64), "base": (12, 768, 12, 3072),
               "large": (24, 1024, 16, 4096), "xlarge": (24, 2048, 16, 8192),
               "xxlarge": (12, 4096, 64, 16384)},
    "ambert": {"tiny": (2, 128, 2, 512), "base": (12, 768, 12, 3072)},
}


class ConfigError(ValueError):
    """A config value that cannot work; the message names the field and how to fix it."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of a BERT-family encoder and its pretraining heads (hashable, static).

    The defaults are BERT-base. RoBERTa and ALBERT differ only in field values (see
    FAMILY_FIELDS): the model code reads the fields, never the family name.
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    # Random bits per dropout decision. 16: two decisions per 32-bit word, the rate rounded
    # to a multiple of 2^-16 (0.1 -> 0.1000061); generating 32 bits was ~5% of the op time
    # of BERT-base's CPU step. 32: flax's nn.Dropout (jax.random.bernoulli). The same
    # distribution up to that rounding, different masks.
    dropout_bits: int = 16
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    # Compute dtype of matmuls; parameters stay in param_dtype. LayerNorm, softmax and
    # losses always run in float32.
    dtype: str = "float32"
    param_dtype: str = "float32"
    # The residual stream between LayerNorms (their outputs, and the sums they normalise).
    # LayerNorm statistics are float32 either way; "bfloat16" halves the bytes the
    # element-wise work moves, which is what bounds a GPU step after the matmuls.
    residual_dtype: str = "float32"
    # nn.scan over layers: compile time independent of depth; params stacked on axis 0.
    scan_layers: bool = True
    # Layers per iteration of that scan (lax.scan's unroll): the parameter layout stays
    # stacked, so it may change between runs of one checkpoint. 0 ("auto"): all layers on a
    # CPU, where XLA's loop copies every layer's weights and saved activations in and out
    # of the stacked buffers (all in one iteration: BERT-base's CPU step 1.09x, compiling
    # in 10 s instead of 6 s; BENCHMARKS.md), and 1 on accelerators, where compile time
    # matters more (on an H100 all layers in one iteration ran as fast as unrolled layers,
    # 4 per iteration barely faster than 1). See layers_per_iteration.
    scan_unroll: int = 0
    remat: str = "none"
    # Given the masked positions (a pretraining step), the last layer computes only the rows
    # the heads read, [CLS] and those positions, not all L: the same outputs there (up to
    # rounding) for ~3/4 of a layer's matmuls fewer (of 12 layers: 5.6% of BERT-base's step
    # FLOPs at L = 128). The parameters are the same either way; dropout in that layer draws
    # over fewer rows, so the draws differ. Off: every row, as transformers does. AMBERT:
    # both granularities, given both's masked positions. Fine-tuning classification and
    # regression read [CLS] alone, so there the last layer computes that one row (BENCHMARKS.md,
    # "Fine-tuning").
    last_layer_subset: bool = True
    attention_impl: str = "xla"  # one of ATTENTION_IMPLS; numerics equal up to rounding
    hidden_act: str = "gelu"  # one of ACTIVATIONS; feed-forward and MLM-head transform
    # Which modules exist. Published checkpoints may lack some (sentence-transformers'
    # MiniLM has no MLM or NSP head); pretraining needs mlm_head, NSP needs the pooler.
    pooler: bool = True  # tanh(Dense(h_[CLS])) -> pooled_output
    mlm_head: bool = True  # masked-LM head, decoder tied to the word embeddings
    next_sentence: bool = True  # NSP head on the pooled [CLS] vector -> `nsp_logits`
    # ALBERT's sentence-order head: the same 2-way classifier on the pooled vector, its own
    # parameters (`sop_head`) and output (`sop_logits`). At most one of the two is on.
    sentence_order: bool = False
    # Width E of the embedding tables. 0: no factorization, the tables are hidden_size wide.
    # > 0 (ALBERT): E-wide tables and LayerNorm, then a Dense E -> H (`embedding_projection`;
    # present even when E == H, as in ALBERT); the MLM head then transforms H -> E and decodes
    # against the tied E-wide word table.
    embedding_size: int = 0
    # Cross-layer parameter sharing, one of SHARE_MODES: "none" (BERT), "all" (ALBERT: one
    # block's parameters applied num_layers times), "attention" or "ffn" (only that sub-layer,
    # with its LayerNorm, is shared; ALBERT's ablations). Shared parameters live once under
    # `encoder/shared/block`, the others per layer as without sharing.
    share_layers: str = "none"
    # Index of the first real token's position embedding. 0 (BERT, ALBERT): positions are
    # 0..L-1 whatever the mask. > 0 (RoBERTa: 2 = padding_idx + 1, fairseq's convention):
    # real tokens count from the offset in the order they appear (cumsum of the attention
    # mask) and padded slots take row offset - 1, which is exactly what HF RoBERTa computes
    # from non-pad ids; max_position_embeddings must cover offset + max sequence length.
    position_offset: int = 0
    # Which published architecture this config follows, one of FAMILIES. The model ignores
    # it; converters use it for the checkpoint layout (HF model_type and tensor names).
    family: str = "bert"
    # AMBERT: size of the coarse (phrase) vocabulary; 0 = no coarse granularity (BERT,
    # RoBERTa, ALBERT). > 0: AmbertForPreTraining with its own coarse embeddings and MLM head.
    coarse_vocab_size: int = 0
    ambert_variant: str = "shared"  # one of AMBERT_VARIANTS; read only with coarse_vocab_size

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def last_layer_rows(self, seq_len: int, predictions: int) -> int:
        """Rows the last layer computes given `predictions` gathered positions: those and
        [CLS] (with a pooler) under last_layer_subset, when fewer than seq_len, else all
        seq_len. A pretraining step gathers its MLM positions; a sequence-classification
        step gathers none and reads [CLS] alone."""
        rows = predictions + int(self.pooler)
        return rows if self.last_layer_subset and 0 < rows < seq_len else seq_len

    def layers_per_iteration(self, platform: str) -> int:
        """scan_unroll with 0 ("auto") resolved for the backend ("cpu", "gpu", "tpu")."""
        if self.scan_unroll:
            return self.scan_unroll
        return max(self.num_layers, 1) if platform == "cpu" else 1

    @property
    def embedding_width(self) -> int:
        """Width of the embedding tables (E, or H without factorization)."""
        return self.embedding_size or self.hidden_size

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
        if self.dropout_bits not in DROPOUT_BITS:
            raise ConfigError(f"model.dropout_bits must be one of {DROPOUT_BITS}, got "
                              f"{self.dropout_bits!r}")
        for name in ("dtype", "param_dtype", "residual_dtype"):
            if getattr(self, name) not in _DTYPES:
                raise ConfigError(f"model.{name} must be one of {_DTYPES}, got {getattr(self, name)!r}")
        for name, choices in (("remat", _REMAT), ("hidden_act", ACTIVATIONS),
                              ("share_layers", SHARE_MODES), ("family", FAMILIES),
                              ("ambert_variant", AMBERT_VARIANTS),
                              ("attention_impl", ATTENTION_IMPLS)):
            if getattr(self, name) not in choices:
                raise ConfigError(f"model.{name} must be one of {choices}, got "
                                  f"{getattr(self, name)!r}")
        if self.next_sentence and not self.pooler:
            raise ConfigError("model.next_sentence needs model.pooler (NSP reads the pooled "
                              "[CLS] vector); turn next_sentence off or the pooler on")
        if self.sentence_order and not self.pooler:
            raise ConfigError("model.sentence_order needs model.pooler (SOP reads the pooled "
                              "[CLS] vector); turn sentence_order off or the pooler on")
        if self.next_sentence and self.sentence_order:
            raise ConfigError("model.next_sentence (BERT's NSP) and model.sentence_order "
                              "(ALBERT's SOP) are both on; keep one of them")
        if not 0 <= self.scan_unroll <= max(self.num_layers, 1):
            raise ConfigError(f"model.scan_unroll must be in [0, num_layers="
                              f"{self.num_layers}] (0: all layers on a CPU, 1 elsewhere), "
                              f"got {self.scan_unroll}")
        if self.embedding_size < 0:
            raise ConfigError(f"model.embedding_size must be >= 0 (0 = hidden_size, no "
                              f"factorization), got {self.embedding_size}")
        if self.position_offset < 0:
            raise ConfigError(f"model.position_offset must be >= 0, got {self.position_offset}")
        if self.max_position_embeddings <= self.position_offset:
            raise ConfigError(
                f"model.max_position_embeddings ({self.max_position_embeddings}) must exceed "
                f"model.position_offset ({self.position_offset}): positions run from the offset "
                "on (RoBERTa: offset 2 and 514 rows for 512 tokens)")
        if self.coarse_vocab_size < 0:
            raise ConfigError(f"model.coarse_vocab_size must be >= 0 (0 = no coarse "
                              f"granularity), got {self.coarse_vocab_size}")
        if self.coarse_vocab_size and (self.next_sentence or self.sentence_order):
            raise ConfigError("AMBERT (model.coarse_vocab_size > 0) pretrains with MLM only; "
                              "set model.next_sentence=False and model.sentence_order=False")
        if (self.family == "ambert") != (self.coarse_vocab_size > 0):
            raise ConfigError(f"model.family={self.family!r} with model.coarse_vocab_size="
                              f"{self.coarse_vocab_size}: AMBERT and only AMBERT has a coarse "
                              "vocabulary (family 'ambert' needs coarse_vocab_size > 0)")


# ModelConfig fields that change parameter shapes: a checkpoint with other values cannot load.
ARCHITECTURE_FIELDS = ("vocab_size", "hidden_size", "num_layers", "num_heads",
                       "intermediate_size", "max_position_embeddings", "type_vocab_size",
                       "embedding_size", "share_layers", "position_offset",
                       "coarse_vocab_size", "ambert_variant")
# ... plus those that change the tree of a saved train state (which heads exist, scanned or
# unrolled layers): a run's checkpoint resumes only under equal values of all of these.
STATE_LAYOUT_FIELDS = ARCHITECTURE_FIELDS + ("scan_layers", "next_sentence",
                                             "sentence_order", "pooler", "mlm_head")
# ... and those that only choose how the same parameters are computed with (dropout, dtypes,
# layer loop, remat, which rows the last layer computes, the attention kernel). Loading a
# checkpoint takes these from the run, not from the checkpoint.
COMPUTE_FIELDS = ("hidden_dropout", "attention_dropout", "dropout_bits", "dtype", "param_dtype",
                  "residual_dtype", "scan_layers", "scan_unroll", "remat", "last_layer_subset",
                  "attention_impl")


def family_config(family: str, size: str, **overrides: Any) -> ModelConfig:
    """ModelConfig of `family` ("bert", "roberta", "albert") at `size` (FAMILY_SIZES), with
    field overrides; e.g. family_config("albert", "base", share_layers="none")."""
    if family not in FAMILY_SIZES:
        raise ConfigError(f"unknown model family {family!r}; choose one of {FAMILIES}")
    sizes = FAMILY_SIZES[family]
    if size not in sizes:
        raise ConfigError(f"unknown {family} size {size!r}; choose one of {sorted(sizes)}")
    layers, hidden, heads, ffn, *embedding = sizes[size]
    fields = dict(FAMILY_FIELDS[family], family=family, num_layers=layers, hidden_size=hidden,
                  num_heads=heads, intermediate_size=ffn)
    if embedding:
        fields["embedding_size"] = embedding[0]
    fields.update(overrides)
    return ModelConfig(**fields)


def model_config_for(size: str, **overrides: Any) -> ModelConfig:
    """ModelConfig of a Google BERT size ('tiny' ... 'large') with field overrides."""
    return family_config("bert", size, **overrides)


def model_config_dict(size: str, family: str = "bert",
                      **overrides: Any) -> ml_collections.ConfigDict:
    """The `model` section of a run config: a size name plus every ModelConfig field
    (`family` among them)."""
    import ml_collections

    return ml_collections.ConfigDict(
        dict(size=size, **dataclasses.asdict(family_config(family, size, **overrides))))


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
    import ml_collections

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
    c.train.grad_accum_steps = 1        # micro-batches per device and step (same update,
                                        # less activation memory; see training/step.py)
    c.train.learning_rate = 1e-4        # peak learning rate
    c.train.warmup_steps = 10_000       # linear warm-up, then linear decay to end_learning_rate
    c.train.end_learning_rate = 0.0
    c.train.optimizer = "adamw"         # "adamw" (BERT, RoBERTa) or "lamb" (ALBERT): see
                                        # bert_jax/training/optimizer.py
    c.train.weight_decay = 0.01         # decoupled; not applied to biases and LayerNorm
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


# The model settings of the fastest GPU step measured (BENCHMARKS.md, H100, bf16): bf16
# matmuls and residual stream (LayerNorm statistics, softmax and losses stay float32),
# cuDNN's fused attention, which has no attention dropout (as MosaicBERT trains), and
# unrolled layers (1.3-1.4x the scanned step there, at 2-3.5x the compile time).
GPU_MODEL_SETTINGS = {"dtype": "bfloat16", "residual_dtype": "bfloat16",
                      "attention_impl": "cudnn", "attention_dropout": 0.0,
                      "scan_layers": False}
CONFIG_VARIANTS = ("gpu",)


def apply_variant(config: ml_collections.ConfigDict, variant: str) -> ml_collections.ConfigDict:
    """A pretraining config file's `:variant` (configs/pretrain/bert_base.py:gpu): "" leaves
    the config as the paper gives it; "gpu" takes GPU_MODEL_SETTINGS."""
    if variant and variant not in CONFIG_VARIANTS:
        raise ConfigError(f"unknown config variant {variant!r}: this config file takes "
                          f"{', '.join(':' + v for v in CONFIG_VARIANTS)} or nothing")
    if variant == "gpu":
        for name, value in GPU_MODEL_SETTINGS.items():
            config.model[name] = value
    return config


def check_platform(model: ModelConfig, platform: str) -> None:
    """Refuses settings the backend JAX runs on ("cpu", "gpu", "tpu") cannot run, before
    anything compiles."""
    if model.attention_impl == "cudnn" and platform != "gpu":
        raise ConfigError(f"model.attention_impl=cudnn needs an NVIDIA GPU, and JAX runs on "
                          f"{platform} here; set model.attention_impl=xla")


def validate(config: ml_collections.ConfigDict, *, num_devices: int, process_count: int = 1,
             tokenizer_vocab_size: int | None = None,
             coarse_vocab_size: int | None = None) -> ModelConfig:
    """Checks a run config before any compilation; returns its ModelConfig.

    `tokenizer_vocab_size` / `coarse_vocab_size`: sizes of the fine and coarse (AMBERT)
    vocabularies when known. Raises ConfigError whose message names the field and the fix.
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
    accum = t.get("grad_accum_steps", 1)
    if accum < 1 or (t.batch_size // num_devices) % accum:
        raise ConfigError(
            f"train.grad_accum_steps ({accum}) must be >= 1 and divide the per-device batch "
            f"(train.batch_size {t.batch_size} / {num_devices} devices = "
            f"{t.batch_size // num_devices})")
    eval_bs = t.eval_batch_size or t.batch_size
    if eval_bs % num_devices:
        raise ConfigError(f"train.eval_batch_size ({eval_bs}) must be divisible by the number "
                          f"of devices ({num_devices})")
    if t.optimizer not in ("adamw", "lamb"):
        raise ConfigError(f"train.optimizer must be 'adamw' or 'lamb', got {t.optimizer!r}")
    if t.nonfinite not in ("skip", "stop"):
        raise ConfigError(f"train.nonfinite must be 'skip' or 'stop', got {t.nonfinite!r}")
    if t.parallel not in _PARALLEL:
        raise ConfigError(f"train.parallel must be one of {_PARALLEL}, got {t.parallel!r}")
    if t.warmup_steps < 0 or t.learning_rate <= 0:
        raise ConfigError("train.learning_rate must be > 0 and train.warmup_steps >= 0")
    if d.max_seq_len + model.position_offset > model.max_position_embeddings:
        offset = (f" + model.position_offset ({model.position_offset})"
                  if model.position_offset else "")
        raise ConfigError(
            f"data.max_seq_len ({d.max_seq_len}){offset} is longer than "
            f"model.max_position_embeddings ({model.max_position_embeddings}); shorten the "
            "sequences or add positions")
    if d.max_seq_len < 8:
        raise ConfigError(f"data.max_seq_len must be >= 8, got {d.max_seq_len}")
    if not 1 <= m.max_predictions_per_seq <= d.max_seq_len:
        raise ConfigError(f"masking.max_predictions_per_seq must be in [1, data.max_seq_len], "
                          f"got {m.max_predictions_per_seq}")
    try:  # The masking fields; the tokenizer's ids are not needed to check them.
        masking_lib.config_from(m, vocab_size=model.vocab_size, mask_id=0, special_ids=())
    except ValueError as err:
        raise ConfigError(f"masking.{err}") from None
    coarse_path = d.get("coarse_vocab_path", "")
    if m.strategy == "coarse" and not coarse_path:
        raise ConfigError("masking.strategy='coarse' masks AMBERT's coarse tokens (phrases): set "
                          "data.coarse_vocab_path (the embedded corpus's is "
                          "bert_jax/data/vocab/embedded_uncased_phrases_8k.txt) or pick another "
                          "masking.strategy")
    if model.coarse_vocab_size:
        if not coarse_path:
            raise ConfigError("AMBERT (model.coarse_vocab_size > 0) needs coarse tokens: set "
                              "data.coarse_vocab_path to a phrase vocab")
        if m.strategy != "coarse":
            raise ConfigError(f"AMBERT masks coarse tokens and all their pieces: set "
                              f"masking.strategy='coarse' (got {m.strategy!r})")
    if coarse_path and d.tokenizer != "wordpiece":
        raise ConfigError(f"data.coarse_vocab_path needs data.tokenizer='wordpiece' (coarse "
                          f"tokens are whole WordPiece words), got {d.tokenizer!r}")
    if coarse_vocab_size is not None and model.coarse_vocab_size and (
            model.coarse_vocab_size < coarse_vocab_size):
        raise ConfigError(
            f"model.coarse_vocab_size ({model.coarse_vocab_size}) is smaller than the coarse "
            f"vocabulary ({coarse_vocab_size}, from data.coarse_vocab_path); set "
            f"model.coarse_vocab_size >= {coarse_vocab_size}")
    if not model.mlm_head:
        raise ConfigError("pretraining needs the MLM head; set model.mlm_head=True")
    from bert_jax.data.instances import sentence_task  # data owns its own fields

    data_task = sentence_task(d)
    model_task = "nsp" if model.next_sentence else "sop" if model.sentence_order else "none"
    if data_task != model_task:
        raise ConfigError(
            f"data.sentence_task is {data_task!r} but the model's sentence head is "
            f"{model_task!r} (model.next_sentence={model.next_sentence}, "
            f"model.sentence_order={model.sentence_order}); set them alike: nsp = "
            "next_sentence (BERT), sop = sentence_order (ALBERT), none = neither (RoBERTa)")
    if d.packing == "packed_documents":
        if data_task != "none":
            raise ConfigError(
                f"data.packing='packed_documents' packs single-segment rows; it needs "
                f"data.sentence_task='none' (got {data_task!r}), or pick another packing")
        if model.coarse_vocab_size:
            raise ConfigError("data.packing='packed_documents' is not supported with AMBERT's "
                              "coarse tokens; use packing 'doc_sentences' or 'full_sentences'")
    check_vocab_fits(model, tokenizer_vocab_size)
    return model


def check_vocab_fits(model: ModelConfig, tokenizer_vocab_size: int | None) -> None:
    """ConfigError when the tokenizer has ids beyond the model's embedding table."""
    if tokenizer_vocab_size is not None and model.vocab_size < tokenizer_vocab_size:
        raise ConfigError(
            f"model.vocab_size ({model.vocab_size}) is smaller than the tokenizer's vocabulary "
            f"({tokenizer_vocab_size}, from data.vocab_path); set model.vocab_size >= "
            f"{tokenizer_vocab_size}")
