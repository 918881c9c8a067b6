"""Time the feed-forward activation alone: forward + backward of bias + activation on one
[B, L, I] tensor, as a train step computes it (modeling/layers.DenseActivation).

    python -m experiments.activation_speed                             # BERT-base, 256 x 128
    python -m experiments.activation_speed --dtype bfloat16 --json out.json   # on a GPU

Rows: each of config.ACTIVATIONS as bert_jax computes it, and jax.nn.gelu(approximate=False)
(the erfc form `gelu` used before); each with autodiff's residuals kept ("none") and with
bias + activation recomputed in the backward pass (remat "activation"). Each case is timed
in alternating rounds in one process and reported as the median milliseconds of one call.
"""

if __name__ == "__main__":  # first, since it may restart the process: huge pages for XLA:CPU
    from bert_jax.training.host_memory import reexec_with_huge_pages

    reexec_with_huge_pages()

import json
import statistics
import time

from absl import app, flags, logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from bert_jax.config import ACTIVATIONS, ModelConfig
from bert_jax.modeling.layers import activation, bias_activation

_SHAPE = flags.DEFINE_list("shape", ["256", "128", "3072"], "B, L, I of the tensor.")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype.")
_CALLS = flags.DEFINE_integer("calls", 20, "Timed calls per case and round.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Alternating rounds.")
_JSON = flags.DEFINE_string("json", None, "Write the medians here.")


def _functions() -> dict:
    acts = {name: activation(ModelConfig(hidden_act=name)) for name in ACTIVATIONS}
    acts["jax.nn.gelu (erfc)"] = lambda x: nn.gelu(x, approximate=False)
    return acts


def _case(act, remat: bool):
    """(y, b, g) -> grads of sum(g * act(y + b)) wrt y and b: one forward + backward, as
    the model computes it (layers.bias_activation)."""
    bias_act = bias_activation(act, recompute=remat)

    def fwd_bwd(y, b, g):
        out, vjp = jax.vjp(bias_act, y, b)
        return out, vjp(g)

    return jax.jit(fwd_bwd)


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # JAX's INFO lines about absent backends
    shape = tuple(map(int, _SHAPE.value))
    dtype = jnp.dtype(_DTYPE.value)
    keys = jax.random.split(jax.random.key(0), 3)
    y = jax.random.normal(keys[0], shape, dtype)
    b = jax.random.normal(keys[1], shape[-1:], dtype)
    g = jax.random.normal(keys[2], shape, dtype)
    cases = {(name, remat): _case(act, remat == "activation")
             for name, act in _functions().items() for remat in ("none", "activation")}
    for fn in cases.values():
        jax.block_until_ready(fn(y, b, g))
    times = {case: [] for case in cases}
    for _ in range(_ROUNDS.value):
        for case, fn in cases.items():
            start = time.perf_counter()
            for _ in range(_CALLS.value):
                out = fn(y, b, g)
            jax.block_until_ready(out)
            times[case].append((time.perf_counter() - start) / _CALLS.value)
    device = jax.devices()[0].device_kind
    print(f"{device}, {_DTYPE.value} {list(shape)}: ms per forward + backward (median of "
          f"{_ROUNDS.value} rounds of {_CALLS.value} calls)")
    result = {"device": device, "dtype": _DTYPE.value, "shape": list(shape), "ms": {}}
    for (name, remat), t in times.items():
        ms = 1e3 * statistics.median(t)
        result["ms"][f"{name} / remat={remat}"] = ms
        print(f"  {name:20s} remat={remat:10s} {ms:8.3f}")
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    app.run(main)
