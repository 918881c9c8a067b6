"""Hugging Face BERT, RoBERTa and ALBERT checkpoints in and out.

Reading: `config.json` plus `model.safetensors` (or its sharded `.index.json`), else
`pytorch_model.bin` (or shards) through `torch.load(..., weights_only=True)`: a checkpoint is
data, never code, and torch is imported only for .bin files. `model_type` in config.json picks
the family; names are brought to that family's canonical form of names.py whatever the class
that saved them (`BertModel` has no prefix, `BertForPreTraining` has `bert.`; old files say
gamma/beta).

Writing: `config.json`, `model.safetensors` and the tokenizer files, in the layout the
family's pretraining class (`BertForPreTraining`, `RobertaForMaskedLM`,
`AlbertForPreTraining`, or the bare encoder without heads) loads without missing keys.
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np

from bert_jax.config import ModelConfig
from bert_jax.convert import names
from bert_jax.convert.names import ConversionError
from bert_jax.convert.pretrained import (Pretrained, check_overrides, load_tokenizer_from,
                                         save_tokenizer)

CONFIG = "config.json"
# Looked for in this order: safetensors first, the pickle-based format only as a fallback.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")

# HF `hidden_act` -> ModelConfig.hidden_act. The tanh-approximate variants are one formula.
_ACT_IN = {"gelu": "gelu", "gelu_python": "gelu", "gelu_new": "gelu_tanh",
           "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh", "relu": "relu",
           "silu": "silu", "swish": "silu"}
_ACT_OUT = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu", "silu": "silu"}
_WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"
# Buffers some versions save next to the weights; they are arange/zeros, not parameters.
_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")


def is_hf_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, CONFIG)) and any(
        os.path.isfile(os.path.join(path, f)) for f in WEIGHT_FILES)


def family_of(hf: dict) -> str:
    """The bert_jax family of an HF `config.json` dict (by `model_type`; none means BERT, as
    in Google's bert_config.json)."""
    model_type = hf.get("model_type", "bert")
    if model_type not in names.LAYOUTS:
        raise ConversionError(f"model_type {model_type!r} is not supported; this package "
                              f"converts {sorted(names.LAYOUTS)}")
    return model_type


def model_config_from_hf(hf: dict, heads: dict[str, bool], **overrides) -> ModelConfig:
    """ModelConfig of an HF BERT / RoBERTa / ALBERT `config.json` dict; `heads` says which
    modules exist."""
    family = family_of(hf)
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise ConversionError("only absolute position embeddings are supported, not "
                              f"{hf['position_embedding_type']!r}")
    act = hf.get("hidden_act", "gelu")
    if act not in _ACT_IN:
        raise ConversionError(f"hidden_act {act!r} is not supported; known: {sorted(_ACT_IN)}")
    fields = dict(
        family=family, vocab_size=hf["vocab_size"], hidden_size=hf["hidden_size"],
        num_layers=hf["num_hidden_layers"], num_heads=hf["num_attention_heads"],
        intermediate_size=hf["intermediate_size"],
        max_position_embeddings=hf.get("max_position_embeddings", 512),
        type_vocab_size=hf.get("type_vocab_size", 2),
        hidden_dropout=hf.get("hidden_dropout_prob", 0.1),
        attention_dropout=hf.get("attention_probs_dropout_prob", 0.1),
        initializer_range=hf.get("initializer_range", 0.02),
        layer_norm_eps=hf.get("layer_norm_eps", 1e-12), hidden_act=_ACT_IN[act], **heads)
    if family == "roberta":
        # HF numbers positions from padding_idx + 1 = pad_token_id + 1 (fairseq).
        fields["position_offset"] = hf.get("pad_token_id", 1) + 1
    elif family == "albert":
        fields["embedding_size"] = hf.get("embedding_size", 128)
        fields["share_layers"] = _albert_sharing(hf)
    fields.update(overrides)
    config = ModelConfig(**fields)
    config.check()
    check_hf_layout(config)
    return config


def _albert_sharing(hf: dict) -> str:
    """HF ALBERT's layer groups as share_layers: one group is "all", a group per layer is
    "none"; anything in between (and inner groups) has no bert_jax equivalent."""
    groups, inner = hf.get("num_hidden_groups", 1), hf.get("inner_group_num", 1)
    if inner != 1:
        raise ConversionError(f"ALBERT inner_group_num={inner} is not supported (only 1)")
    if groups == 1:
        return "all"
    if groups == hf["num_hidden_layers"]:
        return "none"
    raise ConversionError(f"ALBERT num_hidden_groups={groups} is not supported; only 1 "
                          f"(all layers shared) or num_hidden_layers ({hf['num_hidden_layers']},"
                          " nothing shared)")


def check_hf_layout(config: ModelConfig) -> None:
    """ConversionError unless transformers has a model for `config` in its family."""
    family, problems = config.family, []
    if config.coarse_vocab_size:
        raise ConversionError("AMBERT (model.coarse_vocab_size > 0) has no Hugging Face "
                              "equivalent; export it with --to bert_jax")
    if family != "albert" and config.embedding_size:
        problems.append("embedding_size > 0 (factorized embeddings are ALBERT's)")
    if family == "albert" and not config.embedding_size:
        problems.append("embedding_size 0 (HF ALBERT always projects E -> H; set "
                        "embedding_size, = hidden_size for no factorization)")
    allowed = ("none", "all") if family == "albert" else ("none",)
    if config.share_layers not in allowed:
        problems.append(f"share_layers={config.share_layers!r} (HF {family} has "
                        f"{' or '.join(allowed)})")
    if (config.position_offset > 0) != (family == "roberta"):
        problems.append(f"position_offset={config.position_offset} (HF RoBERTa needs >= 1, "
                        "BERT and ALBERT 0)")
    if config.next_sentence and family != "bert":
        problems.append("next_sentence (NSP is BERT's)")
    if config.sentence_order and family != "albert":
        problems.append("sentence_order (SOP is ALBERT's)")
    if config.sentence_order and not config.mlm_head:
        problems.append("sentence_order without mlm_head (HF has no ALBERT with SOP alone)")
    if family == "roberta" and config.mlm_head and config.hidden_act != "gelu":
        problems.append(f"hidden_act={config.hidden_act!r} with the MLM head (HF RoBERTa's "
                        "LM head always uses the erf GELU)")
    if problems:
        raise ConversionError(f"this {family} config has no Hugging Face equivalent: "
                              + "; ".join(problems))


def hf_config_from(config: ModelConfig, *, pad_token_id: int = 0) -> dict:
    """The `config.json` dict transformers reads for `config`'s model."""
    check_hf_layout(config)
    out = {
        "architectures": [_architecture(config)], "model_type": config.family,
        "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_layers, "num_attention_heads": config.num_heads,
        "intermediate_size": config.intermediate_size,
        "hidden_act": _ACT_OUT[config.hidden_act],
        "hidden_dropout_prob": config.hidden_dropout,
        "attention_probs_dropout_prob": config.attention_dropout,
        "max_position_embeddings": config.max_position_embeddings,
        "type_vocab_size": config.type_vocab_size,
        "initializer_range": config.initializer_range,
        "layer_norm_eps": config.layer_norm_eps, "pad_token_id": pad_token_id,
        "position_embedding_type": "absolute", "tie_word_embeddings": True,
    }
    if config.family == "roberta":
        # The padding index is what makes HF's positions start at the offset.
        out.update(pad_token_id=config.position_offset - 1, bos_token_id=0, eos_token_id=2)
    elif config.family == "albert":
        out.update(embedding_size=config.embedding_size, inner_group_num=1,
                   num_hidden_groups=1 if config.share_layers == "all" else config.num_layers,
                   classifier_dropout_prob=0.1, bos_token_id=2, eos_token_id=3)
    return out


# (family, mlm_head, sentence head) -> HF class; no entry: the bare encoder (+ pooler).
_ARCHITECTURES = {
    ("bert", True, True): "BertForPreTraining", ("bert", True, False): "BertForMaskedLM",
    ("bert", False, True): "BertForNextSentencePrediction",
    ("roberta", True, False): "RobertaForMaskedLM",
    ("albert", True, True): "AlbertForPreTraining", ("albert", True, False): "AlbertForMaskedLM",
}
_ENCODERS = {"bert": "BertModel", "roberta": "RobertaModel", "albert": "AlbertModel"}


def _architecture(config: ModelConfig) -> str:
    sentence = config.next_sentence or config.sentence_order
    return _ARCHITECTURES.get((config.family, config.mlm_head, sentence),
                              _ENCODERS[config.family])


def read_tensors(path: str) -> dict[str, np.ndarray]:
    """Every tensor of the HF checkpoint in directory `path`, by its saved name."""
    for name in WEIGHT_FILES:
        file = os.path.join(path, name)
        if not os.path.isfile(file):
            continue
        if name.endswith(".index.json"):
            with open(file) as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
            files = [os.path.join(path, s) for s in shards]
        else:
            files = [file]
        read = _read_safetensors if ".safetensors" in name else _read_torch
        tensors = {}
        for shard in files:
            tensors.update(read(shard))
        return tensors
    raise FileNotFoundError(f"{path} has none of {WEIGHT_FILES}")


def _read_safetensors(file: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file  # bfloat16 arrives as ml_dtypes.bfloat16

    return load_file(file)


def _read_torch(file: str) -> dict[str, np.ndarray]:
    # Imported here: only the pickle-based format needs torch. weights_only=True refuses any
    # pickle that would construct objects other than tensors and plain containers.
    import torch

    state = torch.load(file, map_location="cpu", weights_only=True)
    return {k: (v.float() if v.is_floating_point() else v).numpy() for k, v in state.items()}


def canonicalize(raw: dict[str, np.ndarray], family: str = "bert") -> dict[str, np.ndarray]:
    """Saved names -> canonical names of `family` (names.py); drops buffers and tied copies.

    Task heads of fine-tuned models (`classifier.*`, `qa_outputs.*`, ...) are dropped with a
    warning. A decoder that is not the word-embedding table cannot be represented by the
    tied MLM head and is an error.
    """
    layout = names.LAYOUTS[family]
    prefixes = [k[:-len(_WORD_EMBEDDINGS)] for k in raw if k.endswith(_WORD_EMBEDDINGS)]
    if len(prefixes) != 1:
        raise ConversionError(f"expected one '*{_WORD_EMBEDDINGS}' tensor, found "
                              f"{len(prefixes)}; is this a {family} checkpoint?")
    prefix = prefixes[0]
    out, ignored = {}, []
    for key, value in raw.items():
        key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace(
            "LayerNorm.beta", "LayerNorm.bias")
        rest = key[len(prefix):] if key.startswith(prefix) else None
        if key.startswith(layout.head_prefixes):
            out[key] = value
        elif rest is not None and rest.startswith(("embeddings.", "encoder.", "pooler.")):
            if rest not in _BUFFERS:
                out[f"{layout.base}.{rest}"] = value
        else:
            ignored.append(key)
    if ignored:
        logging.warning("ignoring tensors that are not part of %s pretraining: %s", family,
                        ", ".join(sorted(ignored)))
    mlm_bias = names.head_rows(family, "mlm_head")[-1][1]
    _untie(out, f"{layout.decoder}.weight", f"{layout.base}.{_WORD_EMBEDDINGS}")
    _untie(out, f"{layout.decoder}.bias", mlm_bias)
    return out


def _untie(tensors: dict, copy: str, source: str) -> None:
    """Drops `copy` when it equals `source` (a tied weight saved twice); takes it as the
    source when only it was saved."""
    if copy not in tensors:
        return
    value = tensors.pop(copy)
    if source not in tensors:
        tensors[source] = value
    elif not np.array_equal(value, tensors[source]):
        raise ConversionError(f"{copy} differs from {source}; bert_jax ties the MLM decoder "
                              "to the word embeddings and cannot hold an untied one")


def load_hf(path: str, **overrides) -> Pretrained:
    """A Hugging Face BERT, RoBERTa or ALBERT directory -> Pretrained (config, model,
    params, tokenizer).

    The family comes from `model_type` in config.json. Any of the family's classes loads
    (BertModel/BertForPreTraining/..., RobertaModel/RobertaForMaskedLM,
    AlbertModel/AlbertForMaskedLM/AlbertForPreTraining): the heads present decide the
    config's pooler / mlm_head / next_sentence / sentence_order.

    `overrides` are ModelConfig fields that do not change the parameters (RUNTIME_FIELDS:
    `scan_layers`, `dtype`, `remat`, dropout rates, ...).

    Tokenizer: BERT's WordPiece from vocab.txt (or a WordPiece tokenizer.json). RoBERTa's
    byte-level BPE and ALBERT's Unigram are read only from a `tokenizer.json` (as an HF
    `tokenizers.Tokenizer`); vocab.json + merges.txt or spiece.model alone give no tokenizer
    (None) here.
    """
    check_overrides(overrides)
    if not is_hf_dir(path):
        raise FileNotFoundError(f"{path} is not a Hugging Face checkpoint directory (needs "
                                f"{CONFIG} and one of {WEIGHT_FILES})")
    with open(os.path.join(path, CONFIG)) as f:
        hf = json.load(f)
    family = family_of(hf)
    tensors = canonicalize(read_tensors(path), family)
    config = model_config_from_hf(hf, names.heads_in(tensors, family), **overrides)
    return Pretrained(config, names.from_hf(tensors, config), load_tokenizer_from(path))


def save_hf(pretrained: Pretrained, out_dir: str) -> str:
    """Writes `pretrained` as an HF directory of its family; returns `out_dir`.

    config.json names the class (`architectures`) and `model_type`, so
    `transformers.AutoModelForPreTraining` / `AutoModelForMaskedLM` / `AutoModel` load it.
    Tied tensors (the MLM decoder) are stored once, as transformers itself saves them. An
    encoder without MLM/sentence heads is written as the family's bare model (`BertModel`,
    `RobertaModel`, `AlbertModel`: names without the `bert.` / ... prefix). Configs that no
    transformers class can hold (check_hf_layout: e.g. ALBERT sharing only the attention,
    a BERT with shared layers) are a ConversionError before anything is written.
    """
    from safetensors.numpy import save_file

    config = pretrained.config
    check_hf_layout(config)
    tensors = names.to_hf(pretrained.params, config)
    if _architecture(config) == _ENCODERS[config.family]:
        base = names.LAYOUTS[config.family].base + "."
        tensors = {k.removeprefix(base): v for k, v in tensors.items()}
    os.makedirs(out_dir, exist_ok=True)
    save_file(tensors, os.path.join(out_dir, WEIGHT_FILES[0]), metadata={"format": "pt"})
    tokenizer = pretrained.tokenizer
    hf = hf_config_from(config, pad_token_id=getattr(tokenizer, "pad_id", 0))
    with open(os.path.join(out_dir, CONFIG), "w") as f:
        json.dump(hf, f, indent=2)
    if tokenizer is not None:
        save_tokenizer(tokenizer, out_dir, model_max_length=config.max_position_embeddings)
    return out_dir
