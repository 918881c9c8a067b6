"""The layer stack: `num_layers` TransformerBlocks, scanned or unrolled, optionally remat'ed.

With `scan_layers` the block parameters are stacked on a leading layer axis
(`encoder/layers/...` with shape [num_layers, ...]) and XLA compiles one block, so compile
time does not grow with depth. Unrolled, they live under `encoder/layer_{i}`.
"""

from __future__ import annotations

import jax
import flax.linen as nn

from bert_jax.config import ModelConfig
from bert_jax.modeling.layers import TransformerBlock

_REMAT_POLICIES = {
    "full": None,  # recompute everything in the backward pass
    "dots": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}


class _ScannedBlock(nn.Module):
    """(carry, mask) -> (carry, None) adapter that nn.scan needs."""

    config: ModelConfig
    deterministic: bool

    @nn.compact
    def __call__(self, x_BxLxH, attention_mask_BxL):
        block = _maybe_remat(TransformerBlock, self.config, scanned=True)
        return block(self.config, name="block")(x_BxLxH, attention_mask_BxL,
                                                self.deterministic), None


def _maybe_remat(block_cls, config: ModelConfig, *, scanned: bool):
    if config.remat == "none":
        return block_cls
    # Inside scan the loop body already stops CSE, so prevent_cse can be off (faster).
    return nn.remat(block_cls, policy=_REMAT_POLICIES[config.remat], prevent_cse=not scanned,
                    static_argnums=(3,))


class Encoder(nn.Module):
    """[B, L, H] float32 -> [B, L, H] float32 through `num_layers` post-LN blocks."""

    config: ModelConfig

    @nn.compact
    def __call__(self, x_BxLxH, attention_mask_BxL, *, deterministic: bool):
        c = self.config
        if c.scan_layers:
            stack = nn.scan(_ScannedBlock, variable_axes={"params": 0},
                            split_rngs={"params": True, "dropout": True},
                            in_axes=nn.broadcast, length=c.num_layers)
            x_BxLxH, _ = stack(c, deterministic, name="layers")(x_BxLxH, attention_mask_BxL)
            return x_BxLxH
        block_cls = _maybe_remat(TransformerBlock, c, scanned=False)
        for i in range(c.num_layers):
            x_BxLxH = block_cls(c, name=f"layer_{i}")(x_BxLxH, attention_mask_BxL, deterministic)
        return x_BxLxH
