"""Parameter names and layouts: the bert_jax Flax tree <-> Hugging Face's flat BERT names.

Every converter meets in one *canonical* form: a flat dict from HF `BertForPreTraining`
state-dict names (`bert.encoder.layer.0.attention.self.query.weight`, `cls.predictions.bias`,
...) to float numpy arrays in PyTorch's layout (a Linear weight is [out, in]). hf.py strips
checkpoint-specific prefixes to reach it, google.py renames TF variables into it; this module
alone knows how those tensors sit in the Flax tree:

  flax (DenseGeneral kernel)          HF weight       transform
  query/key/value kernel [H, N, D]    [N*D, H]        W.T.reshape(H, N, D)
  attention output kernel [N, D, H]   [H, N*D]        W.T.reshape(N, D, H)
  other kernels [in, out]             [out, in]       W.T
  query/key/value bias [N, D]         [N*D]           reshape
  embedding tables, other vectors     same            as is

With `scan_layers` the block tensors are stacked on a leading layer axis
(`encoder/layers/block/...` [num_layers, ...]); unrolled they live under `encoder/layer_{i}`.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import numpy as np
from flax import traverse_util

from bert_jax.config import ModelConfig
from bert_jax.modeling.models import BertForPreTraining, init_params

# Kinds of tensors, by how the layout changes (see the module docstring).
TABLE, VECTOR, KERNEL, KERNEL_IN2 = "table", "vector", "kernel", "kernel_in2"

# One encoder block: (path under the block, HF name under `bert.encoder.layer.{i}.`, kind).
_BLOCK = (
    ("attention/query/kernel", "attention.self.query.weight", KERNEL),
    ("attention/query/bias", "attention.self.query.bias", VECTOR),
    ("attention/key/kernel", "attention.self.key.weight", KERNEL),
    ("attention/key/bias", "attention.self.key.bias", VECTOR),
    ("attention/value/kernel", "attention.self.value.weight", KERNEL),
    ("attention/value/bias", "attention.self.value.bias", VECTOR),
    ("attention/output/kernel", "attention.output.dense.weight", KERNEL_IN2),
    ("attention/output/bias", "attention.output.dense.bias", VECTOR),
    ("attention_LayerNorm/scale", "attention.output.LayerNorm.weight", VECTOR),
    ("attention_LayerNorm/bias", "attention.output.LayerNorm.bias", VECTOR),
    ("intermediate/kernel", "intermediate.dense.weight", KERNEL),
    ("intermediate/bias", "intermediate.dense.bias", VECTOR),
    ("output/kernel", "output.dense.weight", KERNEL),
    ("output/bias", "output.dense.bias", VECTOR),
    ("output_LayerNorm/scale", "output.LayerNorm.weight", VECTOR),
    ("output_LayerNorm/bias", "output.LayerNorm.bias", VECTOR),
)

_EMBEDDINGS = (
    ("embeddings/word_embeddings/embedding", "bert.embeddings.word_embeddings.weight", TABLE),
    ("embeddings/position_embeddings/embedding", "bert.embeddings.position_embeddings.weight",
     TABLE),
    ("embeddings/token_type_embeddings/embedding",
     "bert.embeddings.token_type_embeddings.weight", TABLE),
    ("embeddings/LayerNorm/scale", "bert.embeddings.LayerNorm.weight", VECTOR),
    ("embeddings/LayerNorm/bias", "bert.embeddings.LayerNorm.bias", VECTOR),
)

# Optional modules, keyed by the ModelConfig flag that turns each on. The MLM decoder weight
# is the word-embedding table (tied), so it has no entry of its own.
HEADS = {
    "pooler": (
        ("pooler/dense/kernel", "bert.pooler.dense.weight", KERNEL),
        ("pooler/dense/bias", "bert.pooler.dense.bias", VECTOR),
    ),
    "mlm_head": (
        ("mlm_head/dense/kernel", "cls.predictions.transform.dense.weight", KERNEL),
        ("mlm_head/dense/bias", "cls.predictions.transform.dense.bias", VECTOR),
        ("mlm_head/LayerNorm/scale", "cls.predictions.transform.LayerNorm.weight", VECTOR),
        ("mlm_head/LayerNorm/bias", "cls.predictions.transform.LayerNorm.bias", VECTOR),
        ("mlm_head/bias", "cls.predictions.bias", VECTOR),
    ),
    "next_sentence": (
        ("nsp_head/dense/kernel", "cls.seq_relationship.weight", KERNEL),
        ("nsp_head/dense/bias", "cls.seq_relationship.bias", VECTOR),
    ),
}


class ConversionError(ValueError):
    """A checkpoint that does not fit the model; the message names the tensors."""


def _block_name(i: int, name: str) -> str:
    return f"bert.encoder.layer.{i}.{name}"


def table(config: ModelConfig) -> list[tuple[str, str, str]]:
    """(unrolled flax path, canonical HF name, kind) for every tensor of `config`'s model."""
    rows = list(_EMBEDDINGS)
    for i in range(config.num_layers):
        rows += [(f"encoder/layer_{i}/{path}", _block_name(i, name), kind)
                 for path, name, kind in _BLOCK]
    for flag, head_rows in HEADS.items():
        if getattr(config, flag):
            rows += head_rows
    return rows


def heads_in(names) -> dict[str, bool]:
    """Which optional modules a canonical checkpoint holds: {"pooler": bool, ...}."""
    names = set(names)
    return {flag: rows[0][1] in names for flag, rows in HEADS.items()}


@functools.lru_cache(maxsize=16)
def _unrolled_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Flat 'a/b/c' -> shape of the unrolled model's parameters (no arrays are made)."""
    unrolled = dataclasses.replace(config, scan_layers=False)
    shapes = jax.eval_shape(functools.partial(init_params, BertForPreTraining(unrolled)),
                            jax.random.key(0))
    return {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(shapes, sep="/").items()}


def _hf_shape(kind: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    if kind == TABLE:
        return shape
    if kind == VECTOR:
        return (math.prod(shape),)
    n_in = 2 if kind == KERNEL_IN2 else 1  # flax input axes, e.g. [N, D] of the attn output
    return (math.prod(shape[n_in:]), math.prod(shape[:n_in]))


def _to_hf(x: np.ndarray, kind: str) -> np.ndarray:
    if kind == TABLE:
        return x
    if kind == VECTOR:
        return x.reshape(-1)
    n_in = 2 if kind == KERNEL_IN2 else 1
    return x.reshape(math.prod(x.shape[:n_in]), -1).T


def from_hf(tensors: dict[str, np.ndarray], config: ModelConfig):
    """Canonical HF tensors -> the nested Flax params of `BertForPreTraining(config)`.

    Every tensor the config's model needs must be present with the HF shape that `config`
    implies; anything else in `tensors` is an error too, so that a checkpoint of another
    architecture is never half-loaded. Arrays come back as numpy in `config.param_dtype`.
    """
    shapes = _unrolled_shapes(config)
    rows = table(config)
    wanted = {name for _, name, _ in rows}
    missing = sorted(wanted - set(tensors))
    unexpected = sorted(set(tensors) - wanted)
    if missing or unexpected:
        raise ConversionError(
            f"checkpoint does not match the model: missing {_abbrev(missing)}, unexpected "
            f"{_abbrev(unexpected)}")
    dtype = jax.numpy.dtype(config.param_dtype)  # knows "bfloat16" too
    flat, wrong = {}, []
    for path, name, kind in rows:
        x, shape = np.asarray(tensors[name]), shapes[path]
        if x.shape != _hf_shape(kind, shape):
            wrong.append(f"{name} {x.shape} (model needs {_hf_shape(kind, shape)})")
            continue
        x = x.T if kind in (KERNEL, KERNEL_IN2) else x
        flat[path] = np.ascontiguousarray(x.reshape(shape)).astype(dtype)
    if wrong:
        raise ConversionError("checkpoint tensor shapes do not fit the model config: "
                              + "; ".join(wrong))
    return relayout(traverse_util.unflatten_dict(flat, sep="/"), config.scan_layers)


def to_hf(params, config: ModelConfig) -> dict[str, np.ndarray]:
    """Flax params (scanned or unrolled, as `config` says) -> canonical HF float tensors."""
    flat = traverse_util.flatten_dict(relayout(params, False), sep="/")
    return {name: np.ascontiguousarray(_to_hf(np.asarray(flat[path]), kind))
            for path, name, kind in table(config)}


def relayout(params, scan_layers: bool):
    """The same parameters with the encoder stacked ([num_layers, ...] under
    `encoder/layers/block`) when `scan_layers`, else split into `encoder/layer_{i}`."""
    encoder = params["encoder"]
    if scan_layers and "layers" not in encoder:
        blocks = [encoder[f"layer_{i}"] for i in range(len(encoder))]
        encoder = {"layers": {"block": jax.tree.map(lambda *xs: np.stack(xs), *blocks)}}
    elif not scan_layers and "layers" in encoder:
        stacked = encoder["layers"]["block"]
        num_layers = jax.tree.leaves(stacked)[0].shape[0]
        encoder = {f"layer_{i}": jax.tree.map(lambda x, i=i: x[i], stacked)
                   for i in range(num_layers)}
    return {**params, "encoder": encoder}


def _abbrev(names: list[str], limit: int = 6) -> str:
    if not names:
        return "none"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
