"""AdamW with BERT's recipe: linear warm-up, linear decay, global-norm clipping, and no
weight decay on biases or LayerNorm parameters."""

from __future__ import annotations

import jax
import optax


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


def _adamw_chain(learning_rate, *, b1, b2, eps, weight_decay, max_grad_norm):
    parts = []
    if max_grad_norm > 0:
        parts.append(optax.clip_by_global_norm(max_grad_norm))
    parts.append(optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay,
                             mask=decay_mask))
    return optax.chain(*parts)


def make_optimizer(train_cfg) -> optax.GradientTransformation:
    """The optimizer of a run; the learning rate in use is kept in
    `opt_state.hyperparams["learning_rate"]` (inject_hyperparams) so the step can log it."""
    return optax.inject_hyperparams(_adamw_chain, static_args=(
        "b1", "b2", "eps", "weight_decay", "max_grad_norm"))(
            learning_rate=learning_rate_schedule(train_cfg), b1=train_cfg.adam_b1,
            b2=train_cfg.adam_b2, eps=train_cfg.adam_eps, weight_decay=train_cfg.weight_decay,
            max_grad_norm=train_cfg.max_grad_norm)
