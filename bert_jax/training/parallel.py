"""Maps the per-device steps over devices: `jax.pmap` or `jax.jit(jax.shard_map(...))`.

Both backends take the same inputs and give the same numbers:
- the train state is one replicated jax.Array per leaf (NamedSharding over a 1-D mesh,
  PartitionSpec()), never a stacked per-device copy on the host; it is donated to the step;
- a batch is the process's rows of the global batch, split over the mesh's "batch" axis.
pmap takes the state with `in_axes=None`/`out_axes=None`, so the state format (and the
checkpoints) do not depend on the backend.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from bert_jax.training.step import AXIS, StepConfig, eval_predictions, eval_step, train_step

BACKENDS = ("pmap", "shard_map")


class Parallel:
    """Compiled, device-mapped train/eval/predict functions for one step config.

    Usage: `state = par.replicate(state)`, then per step
    `state, metrics = par.train(state, par.shard_batch(batch), base_key)`.
    """

    def __init__(self, backend: str, cfg: StepConfig, devices=None, *,
                 steps=(train_step, eval_step, eval_predictions)):
        """`steps`: the per-device (train, evaluate, predict) functions, each taking
        (state or params, batch, base_key, cfg); pretraining's by default (fine-tuning
        passes its own, training/finetune_step.py)."""
        if backend not in BACKENDS:
            raise ValueError(f"train.parallel must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        self.devices = list(devices if devices is not None else jax.devices())
        self.mesh = Mesh(np.array(self.devices), (AXIS,))
        self.num_devices = len(self.devices)
        self._replicated = NamedSharding(self.mesh, P())
        self._split = NamedSharding(self.mesh, P(AXIS))
        train, evaluate, predict = (functools.partial(fn, cfg=cfg) for fn in steps)
        if backend == "pmap":
            pmap = functools.partial(jax.pmap, axis_name=AXIS, devices=self.devices)
            self.train = pmap(train, in_axes=(None, 0, None), out_axes=(None, None),
                              donate_argnums=(0,))
            self.evaluate = pmap(evaluate, in_axes=(None, 0, None), out_axes=None)
            self.predict = pmap(predict, in_axes=(None, 0, None), out_axes=0)
        else:
            # check_vma=False: gradients stay per-device inside the step (as under pmap), so
            # the one explicit lax.pmean in train_step is the only all-reduce.
            smap = functools.partial(jax.shard_map, mesh=self.mesh, check_vma=False)
            self.train = jax.jit(smap(train, in_specs=(P(), P(AXIS), P()),
                                      out_specs=(P(), P())), donate_argnums=(0,))
            self.evaluate = jax.jit(smap(evaluate, in_specs=(P(), P(AXIS), P()),
                                         out_specs=P()))
            self.predict = jax.jit(smap(predict, in_specs=(P(), P(AXIS), P()),
                                        out_specs=P(AXIS)))

    def replicate(self, tree):
        """Places a host/device pytree on every device of the mesh (one logical copy).

        With several processes each passes the same values; arrays committed to one local
        device go through the host first, since they cannot be resharded across processes.
        """
        if jax.process_count() > 1:
            tree = jax.tree.map(np.asarray, tree)
        return jax.device_put(tree, self._replicated)

    def shard_batch(self, batch: dict) -> dict:
        """Host batch (this process's rows, [B_local, ...]) -> device-split global arrays.

        For pmap the leading axis is reshaped to [local devices, B_local / local devices, ...].
        Process p's rows land on its own devices, which hold mesh positions
        [p * local, (p + 1) * local): the global example order is the same for any layout.
        """
        local = self.num_devices // jax.process_count()

        def put(x):
            x = np.asarray(x)
            if self.backend == "pmap":
                x = x.reshape((local, x.shape[0] // local) + x.shape[1:])
            if jax.process_count() == 1:
                return jax.device_put(x, self._split)
            return jax.make_array_from_process_local_data(self._split, x)
        return {k: put(v) for k, v in batch.items()}

    def unshard(self, tree):
        """Device outputs of `predict` -> host numpy with the global batch axis first."""
        def get(x):
            x = np.asarray(jax.device_get(x))
            return x.reshape((-1,) + x.shape[2:]) if self.backend == "pmap" else x
        return jax.tree.map(get, tree)
