"""Google's original TF BERT checkpoints (github.com/google-research/bert) in.

A released model is a directory with `bert_config.json`, `vocab.txt` and a name-based TF1
checkpoint (`bert_model.ckpt.{index,data-*}`; pretraining runs write `model.ckpt-<step>`).
Variables are read by name with `tf.train.load_checkpoint` (no graph is built, no code from
the checkpoint runs) and renamed into the canonical HF names of names.py:

  bert/encoder/layer_3/attention/self/query/kernel [in, out]
                        -> bert.encoder.layer.3.attention.self.query.weight [out, in]
  bert/embeddings/LayerNorm/gamma       -> bert.embeddings.LayerNorm.weight
  bert/embeddings/word_embeddings       -> bert.embeddings.word_embeddings.weight
  cls/predictions/output_bias           -> cls.predictions.bias
  cls/seq_relationship/output_weights   -> cls.seq_relationship.weight ([2, H] as is)

Optimizer slots (`.../adam_m`, `.../adam_v`) and `global_step` are skipped.

Activation: Google's code computes "gelu" with the tanh approximation, so a Google
checkpoint loads with `hidden_act="gelu_tanh"` (exported to HF as "gelu_new"): the numbers
are those of the original TF model. HF's own converter keeps "gelu", the erf form; pass
`hidden_act="gelu"` to `load_google` to match models converted that way.
"""

from __future__ import annotations

import glob
import json
import os
import re

import numpy as np

from bert_jax.convert import names
from bert_jax.convert.hf import model_config_from_hf
from bert_jax.convert.pretrained import Pretrained, check_overrides, load_tokenizer_from

CONFIG = "bert_config.json"
# TF variable name -> canonical name, where the generic renaming does not apply.
_SPECIAL = {
    "cls/predictions/output_bias": "cls.predictions.bias",
    "cls/seq_relationship/output_weights": "cls.seq_relationship.weight",
    "cls/seq_relationship/output_bias": "cls.seq_relationship.bias",
}
# Last name component -> canonical leaf. Anything else (adam_m, adam_v, ...) is not a weight.
_LEAVES = {"kernel": "weight", "gamma": "weight", "beta": "bias", "bias": "bias"}
_TABLES = ("word_embeddings", "position_embeddings", "token_type_embeddings")


def checkpoint_prefix(path: str) -> str | None:
    """The checkpoint prefix `path` names (a prefix, one of its files, or a directory whose
    newest `*.ckpt*` it picks), or None when there is none."""
    path = re.sub(r"\.(index|meta|data-\d+-of-\d+)$", "", path)
    if os.path.isfile(path + ".index"):
        return path
    if not os.path.isdir(path):
        return None
    prefixes = [f[:-len(".index")] for f in glob.glob(os.path.join(path, "*.ckpt*.index"))]
    if not prefixes:
        return None
    # model.ckpt-900 < model.ckpt-1000: by step number, not by string.
    return max(prefixes, key=lambda p: (int(m.group(1)) if (m := re.search(r"-(\d+)$", p))
                                        else -1, p))


def is_google_checkpoint(path: str) -> bool:
    prefix = checkpoint_prefix(path)
    return prefix is not None and os.path.isfile(os.path.join(os.path.dirname(prefix), CONFIG))


def canonical_name(tf_name: str) -> tuple[str, bool] | None:
    """(canonical name, transpose?) of a TF variable, or None when it is not a weight."""
    if tf_name in _SPECIAL:
        return _SPECIAL[tf_name], False
    parts = tf_name.split("/")
    if parts[0] not in ("bert", "cls"):
        return None
    leaf = parts[-1]
    if leaf in _TABLES:
        parts.append("weight")
    elif leaf in _LEAVES:
        parts[-1] = _LEAVES[leaf]
    else:
        return None
    parts = [re.sub(r"^layer_(\d+)$", r"layer.\1", p) for p in parts]
    # TF dense kernels are [in, out]; the canonical (PyTorch) layout is [out, in].
    return ".".join(parts), leaf == "kernel"


def read_google_tensors(prefix: str) -> dict[str, np.ndarray]:
    """Canonical tensors of the TF checkpoint at `prefix`."""
    import tensorflow as tf  # heavy; only this format needs it

    reader = tf.train.load_checkpoint(prefix)
    tensors = {}
    for tf_name in sorted(reader.get_variable_to_shape_map()):
        target = canonical_name(tf_name)
        if target is None:
            continue
        name, transpose = target
        value = np.asarray(reader.get_tensor(tf_name))
        tensors[name] = value.T if transpose else value
    return tensors


def load_google(path: str, **overrides) -> Pretrained:
    """A Google BERT checkpoint (directory or prefix) -> Pretrained.

    `bert_config.json` and `vocab.txt` are read from the checkpoint's directory; the
    tokenizer is None without a vocab.txt. `overrides` as for `load_hf`.
    """
    check_overrides(overrides)
    prefix = checkpoint_prefix(path)
    if prefix is None:
        raise FileNotFoundError(f"no TF checkpoint at {path} (expected a prefix with a "
                                ".index file, or a directory holding *.ckpt*.index)")
    directory = os.path.dirname(prefix)
    config_file = os.path.join(directory, CONFIG)
    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"{config_file} is missing; Google checkpoints need it "
                                "beside the checkpoint files")
    with open(config_file) as f:
        hf = json.load(f)
    if hf.get("hidden_act", "gelu") == "gelu":
        hf["hidden_act"] = "gelu_new"  # Google's "gelu" is the tanh form (module docstring)
    tensors = read_google_tensors(prefix)
    config = model_config_from_hf(hf, names.heads_in(tensors), **overrides)
    return Pretrained(config, names.from_hf(tensors, config), load_tokenizer_from(directory))
