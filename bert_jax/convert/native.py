"""bert_jax's own checkpoints: exports (`--to bert_jax`) and pretraining workdirs.

An export directory holds
  model_config.json   {"format": "bert_jax", "model": {every ModelConfig field}}
  params.safetensors  the Flax params, flat names such as `encoder/layers/block/output/kernel`,
                      in the model's own layout (stacked on a layer axis when scan_layers)
  vocab.txt, tokenizer_config.json, special_tokens_map.json   when there is a tokenizer.

A workdir of `experiments.pretrain` holds orbax steps under `checkpoints/` (see
training/checkpoint.py): the newest readable step's `state` item gives the params (restored
alone, without the optimizer state) and its `meta` item the ModelConfig; the tokenizer is
the run's `data.vocab_path` from `config.json`.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import numpy as np
from flax import traverse_util

from bert_jax.config import ModelConfig
from bert_jax.convert import names
from bert_jax.convert.pretrained import (Pretrained, check_overrides, load_tokenizer_from,
                                         save_tokenizer)
from bert_jax.data.tokenizer import load_tokenizer

MODEL_CONFIG = "model_config.json"
PARAMS = "params.safetensors"
FORMAT = "bert_jax"


def is_export(path: str) -> bool:
    return os.path.isfile(os.path.join(path, MODEL_CONFIG))


def _steps_dir(path: str) -> str | None:
    """The orbax directory of a workdir (or `path` itself when it is one), else None."""
    for candidate in (os.path.join(path, "checkpoints"), path):
        if os.path.isdir(candidate) and any(
                d.isdigit() and os.path.isdir(os.path.join(candidate, d, "state"))
                for d in os.listdir(candidate)):
            return candidate
    return None


def is_workdir(path: str) -> bool:
    return os.path.isdir(path) and _steps_dir(path) is not None


def save_bert_jax(pretrained: Pretrained, out_dir: str) -> str:
    """Writes `pretrained` as a bert_jax export directory; returns `out_dir`."""
    from safetensors.numpy import save_file

    os.makedirs(out_dir, exist_ok=True)
    flat = traverse_util.flatten_dict(pretrained.params, sep="/")
    save_file({k: np.ascontiguousarray(np.asarray(v)) for k, v in flat.items()},
              os.path.join(out_dir, PARAMS), metadata={"format": FORMAT})
    with open(os.path.join(out_dir, MODEL_CONFIG), "w") as f:
        json.dump({"format": FORMAT, "model": dataclasses.asdict(pretrained.config)}, f,
                  indent=2)
    if pretrained.tokenizer is not None:
        save_tokenizer(pretrained.tokenizer, out_dir,
                       model_max_length=pretrained.config.max_position_embeddings)
    return out_dir


def load_bert_jax(path: str, **overrides) -> Pretrained:
    """A bert_jax export directory or pretraining workdir -> Pretrained.

    `overrides` as for `load_hf`; e.g. `scan_layers=False` re-lays the encoder out.
    """
    check_overrides(overrides)
    if is_export(path):
        with open(os.path.join(path, MODEL_CONFIG)) as f:
            spec = json.load(f)
        if spec.get("format") != FORMAT:
            raise ValueError(f"{path}/{MODEL_CONFIG} is not a bert_jax export")
        from safetensors.numpy import load_file

        params = traverse_util.unflatten_dict(load_file(os.path.join(path, PARAMS)), sep="/")
        fields, tokenizer = spec["model"], load_tokenizer_from(path)
    elif is_workdir(path):
        fields, params = _restore_newest(_steps_dir(path))
        tokenizer = _workdir_tokenizer(path)
    else:
        raise FileNotFoundError(f"{path} is neither a bert_jax export ({MODEL_CONFIG} + "
                                f"{PARAMS}) nor a workdir with orbax steps in checkpoints/")
    # Fields unknown to this version are dropped; ones added since take their defaults
    # (a checkpoint from before `pooler`/`mlm_head` existed had both).
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    config = ModelConfig(**{**{k: v for k, v in fields.items() if k in known}, **overrides})
    config.check()
    dtype = jax.numpy.dtype(config.param_dtype)
    params = jax.tree.map(lambda x: np.asarray(x).astype(dtype),
                          names.relayout(params, config.scan_layers))
    return Pretrained(config, params, tokenizer)


def _restore_newest(steps_dir: str) -> tuple[dict, dict]:
    """(ModelConfig fields, params) of the newest readable step, with the training loop's
    fallback rule (training/checkpoint.py)."""
    import orbax.checkpoint as ocp

    from bert_jax.training.checkpoint import restore_newest_readable

    handlers = {"state": ocp.PyTreeCheckpointHandler(), "meta": ocp.JsonCheckpointHandler(),
                "data": ocp.JsonCheckpointHandler()}
    manager = ocp.CheckpointManager(os.path.abspath(steps_dir), item_handlers=handlers)

    def read(step):
        tree = manager.item_metadata(step)["state"].tree
        # Only the params: a numpy target with partial_restore skips the optimizer state
        # (twice the params again for Adam) and the device placement.
        target = {"params": jax.tree.map(lambda m: np.zeros(m.shape, m.dtype),
                                         tree["params"])}
        restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target)
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.PyTreeRestore(item=target, restore_args=restore_args,
                                         partial_restore=True),
            meta=ocp.args.JsonRestore()))
        return restored["meta"]["model"], restored["state"]["params"]

    try:
        found = restore_newest_readable(sorted(manager.all_steps()), steps_dir, read)
    finally:
        manager.close()
    if found is None:
        raise FileNotFoundError(f"no checkpoint step in {steps_dir}")
    return found


def _workdir_tokenizer(workdir: str):
    """The run's tokenizer, when its config.json names a vocab file that still exists."""
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        data = json.load(f).get("data", {})
    vocab = data.get("vocab_path")
    if not vocab or not os.path.isfile(vocab):
        return None
    return load_tokenizer(vocab, lowercase=data.get("lowercase", True))
