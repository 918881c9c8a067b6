"""The layer stack: `num_layers` TransformerBlocks, scanned or unrolled, optionally remat'ed,
with ALBERT's cross-layer parameter sharing.

Without sharing and with `scan_layers` the block parameters are stacked on a leading layer
axis (`encoder/layers/block/...` with shape [num_layers, ...]) and XLA compiles one block,
so compile time does not grow with depth. Unrolled, they live under `encoder/layer_{i}`.

Sharing (`config.share_layers`) changes where parameters live, never the block code:
  "all"                one block's parameters, `encoder/shared/block/...` (no layer axis),
                       applied num_layers times: a scan that broadcasts them into every
                       step (no copies), or one module called num_layers times unrolled.
  "attention", "ffn"   that sub-layer (layers.SUBLAYERS) once under `encoder/shared/block`,
                       the rest per layer as without sharing. `make_encoder` wraps the
                       unshared stack in `nn.map_variables`, which hands each layer a view of
                       the shared parameters (broadcast along the layer axis when scanned);
                       the gradient of that broadcast sums over layers, as sharing needs.
"""

from __future__ import annotations

import functools

import jax
from jax import lax
import jax.numpy as jnp
import flax.linen as nn

from bert_jax.config import ModelConfig
from bert_jax.modeling.layers import SUBLAYERS, TransformerBlock

_REMAT_POLICIES = {
    "full": None,  # recompute everything in the backward pass
    "dots": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}


def shared_modules(config: ModelConfig) -> tuple[str, ...]:
    """Names of the block's modules whose parameters all layers share."""
    if config.share_layers == "all":
        return SUBLAYERS["attention"] + SUBLAYERS["ffn"]
    return SUBLAYERS.get(config.share_layers, ())


class _ScannedBlock(nn.Module):
    """(carry, mask) -> (carry, None) adapter that nn.scan needs."""

    config: ModelConfig
    deterministic: bool

    @nn.compact
    def __call__(self, x_BxLxH, attention_mask, query_positions=None):
        block = _maybe_remat(TransformerBlock, self.config, scanned=True)
        return block(self.config, name="block")(x_BxLxH, attention_mask,
                                                self.deterministic, query_positions), None


def _unroll(config: ModelConfig) -> int:
    """Layers per scan iteration on the backend JAX runs on (scan_unroll 0 is "auto")."""
    return config.layers_per_iteration(jax.default_backend())


def _maybe_remat(block_cls, config: ModelConfig, *, scanned: bool):
    if config.remat not in _REMAT_POLICIES:  # "none"; "activation" is the block's own
        return block_cls
    # Inside scan the loop body already stops CSE, so prevent_cse can be off (faster).
    return nn.remat(block_cls, policy=_REMAT_POLICIES[config.remat], prevent_cse=not scanned,
                    static_argnums=(3,))


class _LastLayerApart(nn.Module):
    """Layers 0..n-2 at every position (a scan), then layer n-1 at `positions` only.

    Sees its parameters as {"first": {"block": layers 0..n-2}, "last": layer n-1}: the
    Encoder maps the stored stack (or the shared block, `shared`) onto that view.
    """

    config: ModelConfig
    deterministic: bool
    shared: bool

    @nn.compact
    def __call__(self, x_BxLxH, attention_mask, positions_BxQ):
        c = self.config
        if c.num_layers > 1:
            length = c.num_layers - 1
            if self.shared:
                scan = functools.partial(nn.scan, variable_broadcast="params",
                                         split_rngs={"params": False, "dropout": True})
            else:
                scan = functools.partial(nn.scan, variable_axes={"params": 0},
                                         split_rngs={"params": True, "dropout": True})
            stack = scan(_ScannedBlock, in_axes=nn.broadcast, length=length,
                         unroll=min(_unroll(c), length))
            x_BxLxH, _ = stack(c, self.deterministic, name="first")(x_BxLxH, attention_mask)
        block = _maybe_remat(TransformerBlock, c, scanned=False)
        return block(c, name="last")(x_BxLxH, attention_mask, self.deterministic,
                                     positions_BxQ)


def _split_last(shared: bool):
    """Stored scan parameters {"block": P} -> _LastLayerApart's view of them.

    lax.split, not two slices: its gradient is one concatenation of the two parts', where
    slices' would be two zero-padded [n, ...] arrays added (two more passes over every
    layer's weight gradients: ~45 ms of a 3.4 s BERT-base CPU step)."""
    def split(variables):
        block = variables["params"]["block"]
        if shared:
            view = {"first": {"block": block}, "last": block}
        else:
            leaves, tree = jax.tree.flatten(block)
            parts = [lax.split(x, (x.shape[0] - 1, 1)) for x in leaves]
            view = {"first": {"block": tree.unflatten([first for first, _ in parts])},
                    "last": tree.unflatten([last[0] for _, last in parts])}
        return {**variables, "params": view}
    return split


class Encoder(nn.Module):
    """[B, L, H] -> [B, L, H] (config.residual_dtype) through `num_layers` post-LN blocks.

    With `output_positions` (int [B, Q]) the last layer computes only those rows: the result
    is [B, Q, H], equal to the rows of the full output at those positions (a test), for a
    pretraining step that reads [CLS] and the masked positions only. The parameters are the
    same either way; dropout draws differ, the last layer's being over [B, Q, H].

    Handles share_layers "none" and "all"; partial sharing is `make_encoder`'s wrapper
    around this class.
    """

    config: ModelConfig

    @nn.compact
    def __call__(self, x_BxLxH, attention_mask, *, deterministic: bool,
                 output_positions=None):
        c = self.config
        shared = c.share_layers == "all"
        if output_positions is not None and c.scan_layers and not self.is_initializing():
            # The stored layout stays the scan's; the last layer reads its slice of it. (Init
            # takes the full path below, which creates that layout; its outputs go unused.)
            split = nn.map_variables(_LastLayerApart, "params", trans_in_fn=_split_last(shared))
            return split(c, deterministic, shared, name="shared" if shared else "layers")(
                x_BxLxH, attention_mask, output_positions)
        if shared:
            return self._all_shared(x_BxLxH, attention_mask, deterministic, output_positions)
        if c.scan_layers:
            stack = nn.scan(_ScannedBlock, variable_axes={"params": 0},
                            split_rngs={"params": True, "dropout": True},
                            in_axes=nn.broadcast, length=c.num_layers, unroll=_unroll(c))
            x_BxLxH, _ = stack(c, deterministic, name="layers")(x_BxLxH, attention_mask)
            return x_BxLxH
        block_cls = _maybe_remat(TransformerBlock, c, scanned=False)
        for i in range(c.num_layers):
            last = i == c.num_layers - 1
            x_BxLxH = block_cls(c, name=f"layer_{i}")(
                x_BxLxH, attention_mask, deterministic, output_positions if last else None)
        return x_BxLxH

    def _all_shared(self, x_BxLxH, attention_mask, deterministic, output_positions):
        c = self.config
        if c.scan_layers:  # (with output_positions, __call__'s _LastLayerApart)
            # Parameters are broadcast (closed over), not scanned; dropout differs per layer.
            stack = nn.scan(_ScannedBlock, variable_broadcast="params",
                            split_rngs={"params": False, "dropout": True},
                            in_axes=nn.broadcast, length=c.num_layers, unroll=_unroll(c))
            x_BxLxH, _ = stack(c, deterministic, name="shared")(x_BxLxH, attention_mask)
            return x_BxLxH
        # The same bound module called num_layers times: one set of parameters, and a fresh
        # dropout key at each call.
        block = _ScannedBlock(c, deterministic, name="shared")
        for i in range(c.num_layers):
            last = i == c.num_layers - 1
            x_BxLxH, _ = block(x_BxLxH, attention_mask, output_positions if last else None)
        return x_BxLxH


def make_encoder(config: ModelConfig, name: str | None = None) -> nn.Module:
    """The encoder module for `config`: `Encoder` itself, or for partial sharing Encoder
    seen through `nn.map_variables` (stored: shared + per-layer parameters; seen by the
    blocks: complete per-layer parameters)."""
    if config.share_layers in ("none", "all"):
        return Encoder(config, name=name)
    shared = shared_modules(config)

    def expand(variables):
        if "params" not in variables:
            return variables
        return {**variables, "params": _expand(variables["params"], shared, config)}

    def collapse(variables):
        if "params" not in variables:
            return variables
        return {**variables, "params": _collapse(variables["params"], shared, config)}

    wrapped = nn.map_variables(Encoder, "params", trans_in_fn=expand, trans_out_fn=collapse,
                               init=True)
    return wrapped(config, name=name)


def _expand(params, shared: tuple[str, ...], config: ModelConfig):
    """Stored {shared: {block: S}, layers/layer_i: N} -> complete per-layer params."""
    params = dict(params)
    common = params.pop("shared", {}).get("block", {})
    if not common:  # nothing stored yet (the first pass of init)
        return params
    if config.scan_layers:
        stacked = jax.tree.map(
            lambda x: jnp.broadcast_to(x, (config.num_layers, *x.shape)), common)
        return {"layers": {"block": {**params["layers"]["block"], **stacked}}}
    return {f"layer_{i}": {**params[f"layer_{i}"], **common} for i in range(config.num_layers)}


def _collapse(params, shared: tuple[str, ...], config: ModelConfig):
    """Complete per-layer params -> stored: layer 0's copy of the shared modules, the rest
    per layer (inverse of _expand on its image)."""
    if "shared" in params or not params:
        return params
    if config.scan_layers:
        block = params["layers"]["block"]
        common = {k: jax.tree.map(lambda x: x[0], v) for k, v in block.items() if k in shared}
        own = {k: v for k, v in block.items() if k not in shared}
        return {"shared": {"block": common}, "layers": {"block": own}}
    layers = [params[f"layer_{i}"] for i in range(config.num_layers)]
    return {"shared": {"block": {k: v for k, v in layers[0].items() if k in shared}},
            **{f"layer_{i}": {k: v for k, v in layer.items() if k not in shared}
               for i, layer in enumerate(layers)}}
