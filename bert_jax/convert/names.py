"""Parameter names and layouts: the bert_jax Flax tree <-> Hugging Face's flat names.

Every converter meets in one *canonical* form: a flat dict from the HF state-dict names of
the config's family, in its pretraining layout, to float numpy arrays in PyTorch's layout
(a Linear weight is [out, in]):

  bert     `bert.encoder.layer.0.attention.self.query.weight`, `cls.predictions.bias`, ...
           (BertForPreTraining)
  roberta  `roberta.encoder.layer.0.attention.self.query.weight`, `lm_head.bias`, ...
           (RobertaForMaskedLM, plus `roberta.pooler.*` as the released checkpoints have)
  albert   `albert.encoder.albert_layer_groups.0.albert_layers.0.attention.query.weight`,
           `predictions.bias`, `sop_classifier.classifier.weight`, ... (AlbertForPreTraining)

hf.py strips checkpoint-specific prefixes to reach it, google.py renames TF variables into
it; this module alone knows how those tensors sit in the Flax tree:

  flax (DenseGeneral kernel)          HF weight       transform
  query/key/value kernel [H, N, D]    [N*D, H]        W.T.reshape(H, N, D)
  attention output kernel [N, D, H]   [H, N*D]        W.T.reshape(N, D, H)
  other kernels [in, out]             [out, in]       W.T
  query/key/value bias [N, D]         [N*D]           reshape
  embedding tables, other vectors     same            as is

With `scan_layers` the block tensors are stacked on a leading layer axis
(`encoder/layers/block/...` [num_layers, ...]); unrolled they live under `encoder/layer_{i}`.
Modules shared across layers (config.share_layers) live once under `encoder/shared/block`
and take layer index 0 in the canonical names: for ALBERT's "all" that is exactly HF's one
layer group; for "none" ALBERT's group i is layer i. Other combinations (a BERT with shared
layers, ALBERT sharing only the attention) get canonical names in the same scheme, so
warm-starting and bert_jax exports work, but have no HF class: hf.save_hf refuses them.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import numpy as np
from flax import traverse_util

from bert_jax.config import ModelConfig
from bert_jax.modeling.encoder import shared_modules
from bert_jax.modeling.models import BertForPreTraining, init_params

# Kinds of tensors, by how the layout changes (see the module docstring).
TABLE, VECTOR, KERNEL, KERNEL_IN2 = "table", "vector", "kernel", "kernel_in2"


def _dense(path: str, name: str, kind: str = KERNEL):
    """Kernel and bias rows of one Dense: flax `path/{kernel,bias}`, HF `name.{weight,bias}`."""
    return ((f"{path}/kernel", f"{name}.weight", kind), (f"{path}/bias", f"{name}.bias", VECTOR))


def _norm(path: str, name: str):
    return ((f"{path}/scale", f"{name}.weight", VECTOR), (f"{path}/bias", f"{name}.bias", VECTOR))


# One encoder block: (path under the block, HF name under the layer prefix, kind).
_BERT_BLOCK = (
    *_dense("attention/query", "attention.self.query"),
    *_dense("attention/key", "attention.self.key"),
    *_dense("attention/value", "attention.self.value"),
    *_dense("attention/output", "attention.output.dense", KERNEL_IN2),
    *_norm("attention_LayerNorm", "attention.output.LayerNorm"),
    *_dense("intermediate", "intermediate.dense"),
    *_dense("output", "output.dense"),
    *_norm("output_LayerNorm", "output.LayerNorm"),
)
_ALBERT_BLOCK = (
    *_dense("attention/query", "attention.query"),
    *_dense("attention/key", "attention.key"),
    *_dense("attention/value", "attention.value"),
    *_dense("attention/output", "attention.dense", KERNEL_IN2),
    *_norm("attention_LayerNorm", "attention.LayerNorm"),
    *_dense("intermediate", "ffn"),
    *_dense("output", "ffn_output"),
    *_norm("output_LayerNorm", "full_layer_layer_norm"),
)


@dataclasses.dataclass(frozen=True)
class Layout:
    """How one family names its tensors in HF checkpoints."""

    base: str            # prefix of the encoder: "bert", "roberta", "albert"
    layer: str           # prefix of layer (or ALBERT group) i's tensors, a format with {i}
    block: tuple         # (path under the block, name under the layer prefix, kind)
    heads: dict          # ModelConfig flag -> rows (flax path, canonical name, kind)
    decoder: str         # the MLM decoder (tied to the word table; saved by some versions)
    projection: str      # embedding_size's E -> H Dense
    head_prefixes: tuple  # top-level names of the pretraining heads


def _layout(base: str, layer: str, block: tuple, pooler: str, mlm: tuple[str, str, str],
            decoder: str, projection: str, head_prefixes: tuple) -> Layout:
    """A Layout from the names that differ between families. `mlm` names the MLM head's
    transform Dense, its LayerNorm and its output bias. NSP and SOP rows are the same in all
    (only BERT has NSP and only ALBERT SOP in HF; the others keep these names in bert_jax)."""
    heads = {
        "pooler": _dense("pooler/dense", pooler),
        "mlm_head": (*_dense("mlm_head/dense", mlm[0]), *_norm("mlm_head/LayerNorm", mlm[1]),
                     ("mlm_head/bias", mlm[2], VECTOR)),
        "next_sentence": _dense("nsp_head/dense", "cls.seq_relationship"),
        "sentence_order": _dense("sop_head/dense", "sop_classifier.classifier"),
    }
    return Layout(base, layer, block, heads, decoder, projection,
                  head_prefixes + ("cls.", "sop_classifier."))


LAYOUTS = {
    "bert": _layout("bert", "bert.encoder.layer.{i}.", _BERT_BLOCK, "bert.pooler.dense",
                    ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm",
                     "cls.predictions.bias"),
                    "cls.predictions.decoder", "bert.embeddings.embedding_projection", ()),
    "roberta": _layout("roberta", "roberta.encoder.layer.{i}.", _BERT_BLOCK,
                       "roberta.pooler.dense", ("lm_head.dense", "lm_head.layer_norm",
                                                "lm_head.bias"),
                       "lm_head.decoder", "roberta.embeddings.embedding_projection",
                       ("lm_head.",)),
    "albert": _layout("albert", "albert.encoder.albert_layer_groups.{i}.albert_layers.0.",
                      _ALBERT_BLOCK, "albert.pooler",
                      ("predictions.dense", "predictions.LayerNorm", "predictions.bias"),
                      "predictions.decoder", "albert.encoder.embedding_hidden_mapping_in",
                      ("predictions.",)),
}
# The optional modules, by the ModelConfig flag that turns each on.
HEAD_FLAGS = ("pooler", "mlm_head", "next_sentence", "sentence_order")


class ConversionError(ValueError):
    """A checkpoint that does not fit the model; the message names the tensors."""


def head_rows(family: str, flag: str) -> tuple:
    """(flax path, canonical name, kind) of the optional module `flag` in `family`."""
    return LAYOUTS[family].heads[flag]


def table(config: ModelConfig) -> list[tuple[str, str, str]]:
    """(unrolled flax path, canonical HF name, kind) for every tensor of `config`'s model."""
    layout = LAYOUTS[config.family]
    rows = [(f"embeddings/{t}/embedding", f"{layout.base}.embeddings.{t}.weight", TABLE)
            for t in ("word_embeddings", "position_embeddings", "token_type_embeddings")]
    rows += _norm("embeddings/LayerNorm", f"{layout.base}.embeddings.LayerNorm")
    if config.embedding_size:
        rows += _dense("embeddings/embedding_projection", layout.projection)
    shared = shared_modules(config)
    for i in range(config.num_layers):
        for path, name, kind in layout.block:
            if path.split("/")[0] not in shared:
                rows.append((f"encoder/layer_{i}/{path}", layout.layer.format(i=i) + name, kind))
            elif i == 0:
                rows.append((f"encoder/shared/block/{path}", layout.layer.format(i=0) + name,
                             kind))
    for flag in HEAD_FLAGS:
        if getattr(config, flag):
            rows += layout.heads[flag]
    return rows


def heads_in(names, family: str = "bert") -> dict[str, bool]:
    """Which optional modules a canonical checkpoint holds: {"pooler": bool, ...}."""
    names = set(names)
    return {flag: rows[0][1] in names for flag, rows in LAYOUTS[family].heads.items()}


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
    """Canonical HF tensors (of `config.family`) -> the nested Flax params of
    `BertForPreTraining(config)`.

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
    """The same parameters with the encoder's per-layer modules stacked ([num_layers, ...]
    under `encoder/layers/block`) when `scan_layers`, else split into `encoder/layer_{i}`.
    Shared modules (`encoder/shared`) have one copy either way and stay as they are."""
    encoder = dict(params["encoder"])
    unrolled = sorted((k for k in encoder if k.startswith("layer_")),
                      key=lambda k: int(k.removeprefix("layer_")))
    if scan_layers and unrolled:
        blocks = [encoder.pop(k) for k in unrolled]
        encoder["layers"] = {"block": jax.tree.map(lambda *xs: np.stack(xs), *blocks)}
    elif not scan_layers and "layers" in encoder:
        stacked = encoder.pop("layers")["block"]
        num_layers = jax.tree.leaves(stacked)[0].shape[0]
        encoder.update({f"layer_{i}": jax.tree.map(lambda x, i=i: x[i], stacked)
                        for i in range(num_layers)})
    return {**params, "encoder": encoder}


def _abbrev(names: list[str], limit: int = 6) -> str:
    if not names:
        return "none"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
