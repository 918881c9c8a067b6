"""Hugging Face BERT checkpoints in and out.

Reading: `config.json` plus `model.safetensors` (or its sharded `.index.json`), else
`pytorch_model.bin` (or shards) through `torch.load(..., weights_only=True)`: a checkpoint is
data, never code, and torch is imported only for .bin files. Names are brought to the
canonical `bert.` / `cls.` form of names.py whatever the class that saved them
(`BertModel` has no prefix, `BertForPreTraining` has `bert.`; old files say gamma/beta).

Writing: `config.json`, `model.safetensors` and the tokenizer files, in the layout
`transformers.BertForPreTraining` (or `BertModel`, for an encoder without MLM/NSP heads)
loads without missing keys.
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


def model_config_from_hf(hf: dict, heads: dict[str, bool], **overrides) -> ModelConfig:
    """ModelConfig of an HF BERT `config.json` dict; `heads` says which modules exist."""
    if hf.get("model_type", "bert") != "bert":
        raise ConversionError(f"model_type {hf.get('model_type')!r} is not BERT; only "
                              "model_type 'bert' converts here")
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise ConversionError("only absolute position embeddings are supported, not "
                              f"{hf['position_embedding_type']!r}")
    act = hf.get("hidden_act", "gelu")
    if act not in _ACT_IN:
        raise ConversionError(f"hidden_act {act!r} is not supported; known: {sorted(_ACT_IN)}")
    fields = dict(
        vocab_size=hf["vocab_size"], hidden_size=hf["hidden_size"],
        num_layers=hf["num_hidden_layers"], num_heads=hf["num_attention_heads"],
        intermediate_size=hf["intermediate_size"],
        max_position_embeddings=hf.get("max_position_embeddings", 512),
        type_vocab_size=hf.get("type_vocab_size", 2),
        hidden_dropout=hf.get("hidden_dropout_prob", 0.1),
        attention_dropout=hf.get("attention_probs_dropout_prob", 0.1),
        initializer_range=hf.get("initializer_range", 0.02),
        layer_norm_eps=hf.get("layer_norm_eps", 1e-12), hidden_act=_ACT_IN[act], **heads)
    fields.update(overrides)
    config = ModelConfig(**fields)
    config.check()
    return config


def hf_config_from(config: ModelConfig, *, pad_token_id: int = 0) -> dict:
    """The `config.json` dict transformers reads for `config`'s model."""
    if config.mlm_head or config.next_sentence:
        arch = {(True, True): "BertForPreTraining", (True, False): "BertForMaskedLM",
                (False, True): "BertForNextSentencePrediction"}
        architectures = [arch[config.mlm_head, config.next_sentence]]
    else:
        architectures = ["BertModel"]
    return {
        "architectures": architectures, "model_type": "bert",
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


def canonicalize(raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Saved names -> canonical names (names.py); drops buffers and tied copies.

    Task heads of fine-tuned models (`classifier.*`, `qa_outputs.*`, ...) are dropped with a
    warning. A decoder that is not the word-embedding table cannot be represented by the
    tied MLM head and is an error.
    """
    prefixes = [k[:-len(_WORD_EMBEDDINGS)] for k in raw if k.endswith(_WORD_EMBEDDINGS)]
    if len(prefixes) != 1:
        raise ConversionError(f"expected one '*{_WORD_EMBEDDINGS}' tensor, found "
                              f"{len(prefixes)}; is this a BERT checkpoint?")
    prefix = prefixes[0]
    out, ignored = {}, []
    for key, value in raw.items():
        key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace(
            "LayerNorm.beta", "LayerNorm.bias")
        rest = key[len(prefix):] if key.startswith(prefix) else None
        if key.startswith("cls."):
            out[key] = value
        elif rest is not None and rest.startswith(("embeddings.", "encoder.", "pooler.")):
            if rest not in _BUFFERS:
                out["bert." + rest] = value
        else:
            ignored.append(key)
    if ignored:
        logging.warning("ignoring tensors that are not part of BERT pretraining: %s",
                        ", ".join(sorted(ignored)))
    _untie(out, "cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight")
    _untie(out, "cls.predictions.decoder.bias", "cls.predictions.bias")
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
    """A Hugging Face BERT directory -> Pretrained (config, model, params, tokenizer).

    `overrides` are ModelConfig fields that do not change the parameters (RUNTIME_FIELDS:
    `scan_layers`, `dtype`, `remat`, dropout rates, ...). The tokenizer is None when the
    directory has no vocab.txt / tokenizer.json.
    """
    check_overrides(overrides)
    if not is_hf_dir(path):
        raise FileNotFoundError(f"{path} is not a Hugging Face checkpoint directory (needs "
                                f"{CONFIG} and one of {WEIGHT_FILES})")
    with open(os.path.join(path, CONFIG)) as f:
        hf = json.load(f)
    tensors = canonicalize(read_tensors(path))
    config = model_config_from_hf(hf, names.heads_in(tensors), **overrides)
    return Pretrained(config, names.from_hf(tensors, config), load_tokenizer_from(path))


def save_hf(pretrained: Pretrained, out_dir: str) -> str:
    """Writes `pretrained` as an HF BERT directory; returns `out_dir`.

    Tied tensors (the MLM decoder) are stored once, as transformers itself saves them. An
    encoder without MLM/NSP heads is written as a `BertModel` (names without `bert.`).
    """
    from safetensors.numpy import save_file

    config = pretrained.config
    tensors = names.to_hf(pretrained.params, config)
    if not (config.mlm_head or config.next_sentence):
        tensors = {k.removeprefix("bert."): v for k, v in tensors.items()}
    os.makedirs(out_dir, exist_ok=True)
    save_file(tensors, os.path.join(out_dir, WEIGHT_FILES[0]), metadata={"format": "pt"})
    tokenizer = pretrained.tokenizer
    hf = hf_config_from(config, pad_token_id=tokenizer.pad_id if tokenizer else 0)
    with open(os.path.join(out_dir, CONFIG), "w") as f:
        json.dump(hf, f, indent=2)
    if tokenizer is not None:
        save_tokenizer(tokenizer, out_dir, model_max_length=config.max_position_embeddings)
    return out_dir
