"""Any checkpoint in, by what the path holds: loading, warm-starting a run, converting.

Kinds, tried in this order:
  "bert_jax"  an export (model_config.json + params.safetensors) or a pretraining workdir
  "hf"        a Hugging Face directory (config.json + model.safetensors / pytorch_model.bin)
  "google"    a Google TF checkpoint: directory with bert_config.json, or a checkpoint prefix
"""

from __future__ import annotations

import dataclasses
import logging

import jax

from bert_jax.config import ARCHITECTURE_FIELDS, ConfigError, ModelConfig
from bert_jax.convert import google, hf, names, native
from bert_jax.convert.pretrained import Pretrained
from bert_jax.modeling.models import BertForPreTraining, init_params

# A checkpoint fits a run only if all config.ARCHITECTURE_FIELDS agree (shapes, where
# positions start, which modules share parameters).
# Fields that change the function but not the shapes: a difference is worth a warning.
_FUNCTION_FIELDS = ("hidden_act", "layer_norm_eps")
_LOADERS = {"bert_jax": native.load_bert_jax, "hf": hf.load_hf, "google": google.load_google}
TARGETS = ("bert_jax", "hf")


def checkpoint_kind(path: str) -> str:
    """"bert_jax", "hf" or "google"; FileNotFoundError saying what was looked for."""
    if native.is_export(path) or native.is_workdir(path):
        return "bert_jax"
    if hf.is_hf_dir(path):
        return "hf"
    if google.is_google_checkpoint(path):
        return "google"
    raise FileNotFoundError(
        f"{path} is not a checkpoint this package reads: expected a bert_jax export "
        f"({native.MODEL_CONFIG}) or workdir (checkpoints/), a Hugging Face directory "
        f"({hf.CONFIG} + one of {hf.WEIGHT_FILES}), or a Google TF checkpoint "
        f"({google.CONFIG} beside *.ckpt*.index)")


def load_pretrained(path: str, **overrides) -> Pretrained:
    """Loads any supported checkpoint; `overrides` as for `load_hf` (e.g. scan_layers)."""
    return _LOADERS[checkpoint_kind(path)](path, **overrides)


def init_params_from(path: str, model_cfg: ModelConfig, *, rng=None):
    """Parameters for `BertForPreTraining(model_cfg)` taken from the checkpoint at `path`.

    The checkpoint must agree with `model_cfg` on every field of ARCHITECTURE_FIELDS, else a
    ConfigError names each mismatch. The result has `model_cfg`'s layout (scan_layers) and
    param_dtype. Heads the checkpoint has but the run does not use are dropped. Heads the
    run uses but the checkpoint lacks (MiniLM has no MLM head) are freshly initialised from
    the PRNG key `rng`; without one that is a ConfigError.
    """
    pretrained = load_pretrained(path)
    ckpt = pretrained.config
    diff = [f"model.{f}: checkpoint {getattr(ckpt, f)!r} vs config {getattr(model_cfg, f)!r}"
            for f in ARCHITECTURE_FIELDS if getattr(ckpt, f) != getattr(model_cfg, f)]
    if diff:
        fix = " ".join(f"--config.model.{f}={getattr(ckpt, f)}" for f in ARCHITECTURE_FIELDS
                       if getattr(ckpt, f) != getattr(model_cfg, f))
        raise ConfigError(f"the checkpoint at {path} does not fit the run's model ("
                          f"{'; '.join(diff)}). Set the model to match, e.g. {fix}")
    for f in _FUNCTION_FIELDS:
        if getattr(ckpt, f) != getattr(model_cfg, f):
            logging.warning("model.%s is %r in the checkpoint at %s but %r in the config; "
                            "the config's value is used", f, getattr(ckpt, f), path,
                            getattr(model_cfg, f))
    # Canonical names are the checkpoint's family's; the run reads them the same way (the
    # family only names tensors, the Flax layout does not depend on it).
    run = dataclasses.replace(model_cfg, family=ckpt.family)
    tensors = names.to_hf(pretrained.params, ckpt)
    missing = [flag for flag in names.HEAD_FLAGS
               if getattr(model_cfg, flag) and not getattr(ckpt, flag)]
    if missing:
        if rng is None:
            raise ConfigError(
                f"the checkpoint at {path} has no {', '.join(missing)} parameters; turn "
                f"{'/'.join('model.' + m for m in missing)} off or initialise them fresh "
                "(init_params_from(..., rng=key))")
        logging.warning("the checkpoint at %s has no %s; initialising it fresh", path,
                        ", ".join(missing))
        fresh = names.to_hf(init_params(BertForPreTraining(model_cfg), rng), run)
        tensors.update({name: fresh[name] for flag in missing
                        for _, name, _ in names.head_rows(run.family, flag)})
    wanted = {name for _, name, _ in names.table(run)}
    return names.from_hf({k: v for k, v in tensors.items() if k in wanted}, run)


def convert(src: str, dst: str, to: str) -> str:
    """Reads the checkpoint at `src` and writes it to `dst` as `to` ("bert_jax" or "hf")."""
    if to not in TARGETS:
        raise ValueError(f"--to must be one of {TARGETS}, got {to!r}")
    pretrained = load_pretrained(src)
    save = native.save_bert_jax if to == "bert_jax" else hf.save_hf
    return save(pretrained, dst)
