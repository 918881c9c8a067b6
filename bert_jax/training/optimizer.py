"""Optimizers of the BERT family, with BERT's schedule: linear warm-up, linear decay,
global-norm clipping, and no weight decay on biases or LayerNorm parameters.

`train.optimizer`:
* "adamw" (BERT, RoBERTa): optax.adamw.
* "lamb" (ALBERT; You et al. 2019): Adam moments, decoupled weight decay, then each
  weight's update is rescaled by the trust ratio ||w|| / ||update|| (1 when either is 0), and
  only then multiplied by the learning rate. As in google-research/bert's and albert's LAMB,
  biases and LayerNorm parameters get neither weight decay nor the trust ratio. With scanned
  layers (`encoder/layers/...` stacked on a leading layer axis) the ratio is computed per
  layer slice, so it is the same number as for the unrolled model's separate weights.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

OPTIMIZERS = ("adamw", "lamb")
# Parameters under this path prefix are stacked over layers (nn.scan in modeling/encoder.py).
_STACKED_PREFIX = ("encoder", "layers")


def learning_rate_schedule(train_cfg) -> optax.Schedule:
    """Linear 0 -> peak over `warmup_steps`, then linear peak -> end at `num_steps`."""
    peak, warmup = train_cfg.learning_rate, train_cfg.warmup_steps
    decay_steps = max(train_cfg.num_steps - warmup, 1)
    decay = optax.linear_schedule(peak, train_cfg.end_learning_rate, decay_steps)
    if warmup == 0:
        return decay
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), decay], [warmup])


def decay_mask(params):
    """True for weight matrices and embeddings; False for biases and LayerNorm scale/bias."""
    def keep(path, leaf):
        names = [getattr(k, "key", str(k)) for k in path]
        return not (names[-1] == "bias" or any("LayerNorm" in n for n in names))
    return jax.tree_util.tree_map_with_path(keep, params)


def stacked_mask(params):
    """True for parameters stacked on a leading layer axis (scanned layers)."""
    def stacked(path, leaf):
        names = tuple(getattr(k, "key", str(k)) for k in path)
        return names[:len(_STACKED_PREFIX)] == _STACKED_PREFIX
    return jax.tree_util.tree_map_with_path(stacked, params)


def scale_by_layerwise_trust_ratio() -> optax.GradientTransformation:
    """u -> u * ||w|| / ||u|| per weight; for stacked parameters per slice of axis 0."""
    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params):
        def scale(u, w, stacked):
            axes = tuple(range(1, u.ndim)) if stacked else None
            w_norm = jnp.sqrt(jnp.sum(jnp.square(w.astype(jnp.float32)), axes, keepdims=True))
            u_norm = jnp.sqrt(jnp.sum(jnp.square(u.astype(jnp.float32)), axes, keepdims=True))
            ratio = jnp.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, 1.0)
            return (u * ratio).astype(u.dtype)
        return jax.tree.map(scale, updates, params, stacked_mask(params)), state

    return optax.GradientTransformation(init_fn, update_fn)


def _chain(learning_rate, *, name, b1, b2, eps, weight_decay, max_grad_norm):
    parts = []
    if max_grad_norm > 0:
        parts.append(optax.clip_by_global_norm(max_grad_norm))
    if name == "adamw":
        parts.append(optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps,
                                 weight_decay=weight_decay, mask=decay_mask))
    elif name == "lamb":
        parts += [optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
                  optax.add_decayed_weights(weight_decay, mask=decay_mask),
                  optax.masked(scale_by_layerwise_trust_ratio(), decay_mask),
                  optax.scale_by_learning_rate(learning_rate)]
    else:
        raise ValueError(f"train.optimizer must be one of {OPTIMIZERS}, got {name!r}")
    return optax.chain(*parts)


def layerwise_lr_multipliers(params, decay: float, num_layers: int):
    """Learning-rate multipliers for layer-wise decay (fine-tuning; Clark et al. 2020,
    ELECTRA): a tree like `params` of floats, or for layers stacked on axis 0 (nn.scan)
    arrays [num_layers, 1, ...] that broadcast against the parameter.

    Counting depth from the bottom, the embeddings (`embeddings`, AMBERT's
    `coarse_embeddings`, ALBERT's projection among them) are depth 0, layer i (0-based,
    `layer_{i}` or slice i of `layers`) depth i + 1, and everything else (pooler, task head)
    depth num_layers; a parameter at depth d gets decay ** (num_layers - d). So with L
    layers the embeddings get decay^L, the bottom layer decay^(L-1), the top layer and the
    head 1. Modules shared by all layers (ALBERT's `shared`) belong to every depth and keep 1.
    """
    def multiplier(path, leaf):
        names = [getattr(k, "key", str(k)) for k in path]
        if names[0].endswith("embeddings"):
            return decay ** num_layers
        if names[0].endswith("encoder") and names[1] == "layers":
            depth_L = np.arange(1, num_layers + 1, dtype=np.float32)
            return (decay ** (num_layers - depth_L)).reshape((-1,) + (1,) * (leaf.ndim - 1))
        if names[0].endswith("encoder") and names[1].startswith("layer_"):
            return decay ** (num_layers - 1 - int(names[1].removeprefix("layer_")))
        return 1.0
    return jax.tree_util.tree_map_with_path(multiplier, params)


def scale_updates(tx: optax.GradientTransformation,
                  multipliers) -> optax.GradientTransformation:
    """`tx` with its final updates (learning rate and weight decay included) multiplied per
    parameter by `multipliers`; the state is `tx`'s own, so `opt_state.hyperparams` stays."""
    def update_fn(updates, state, params=None):
        updates, state = tx.update(updates, state, params)
        return jax.tree.map(lambda u, m: (u * m).astype(u.dtype), updates, multipliers), state
    return optax.GradientTransformation(tx.init, update_fn)


def make_optimizer(train_cfg, lr_multipliers=None) -> optax.GradientTransformation:
    """The optimizer of a run; the learning rate in use is kept in
    `opt_state.hyperparams["learning_rate"]` (inject_hyperparams) so the step can log it.
    `lr_multipliers`: per-parameter learning-rate factors (layerwise_lr_multipliers)."""
    tx = optax.inject_hyperparams(_chain, static_args=(
        "name", "b1", "b2", "eps", "weight_decay", "max_grad_norm"))(
            learning_rate=learning_rate_schedule(train_cfg), name=train_cfg.optimizer,
            b1=train_cfg.adam_b1, b2=train_cfg.adam_b2, eps=train_cfg.adam_eps,
            weight_decay=train_cfg.weight_decay, max_grad_norm=train_cfg.max_grad_norm)
    return tx if lr_multipliers is None else scale_updates(tx, lr_multipliers)
