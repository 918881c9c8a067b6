"""Checkpoints of a run: train state + data iterator state + metadata, one orbax step each.

Each step directory is written by orbax's CheckpointManager (atomic: a step appears only
once fully written; async, with `wait()` before exit) and holds three items:
- `state`: the TrainState arrays (step, params, optimizer state, base PRNG key data);
- `data`: the input pipeline's iterator state (JSON), so a resumed run reads the exact next
  batch;
- `meta`: JSON facts used to refuse a checkpoint from another model (the ModelConfig).
An unreadable newest step (e.g. a half-deleted directory) falls back to the previous one,
with a warning naming both. A save that fails (disk full, quota, permissions) raises
`CheckpointSaveError` when orbax reports it -- at the next save or at `wait`/`close`, since
writes are asynchronous -- and orbax's atomic commit leaves the steps saved before untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os

import jax
import orbax.checkpoint as ocp

from bert_jax.config import STATE_LAYOUT_FIELDS, ConfigError, ModelConfig

_ITEMS = ("state", "data", "meta")


class CheckpointReadError(RuntimeError):
    """The workdir has checkpoints but none of them can be read."""


class CheckpointSaveError(RuntimeError):
    """A checkpoint could not be written; the message says which steps are still intact."""


class Checkpointer:
    """Saves and restores steps under `workdir/checkpoints`."""

    def __init__(self, directory: str, *, max_to_keep: int, async_save: bool = True):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                               enable_async_checkpointing=async_save)
        self._manager = ocp.CheckpointManager(self.directory, options=options,
                                              item_names=_ITEMS)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(self, step: int, state, data_state: dict, model: ModelConfig, *,
             force: bool = False) -> bool:
        """Starts saving `step` (async); returns whether a save was started."""
        meta = {"step": int(step), "model": dataclasses.asdict(model)}
        args = ocp.args.Composite(state=ocp.args.StandardSave(_arrays(state)),
                                  data=ocp.args.JsonSave(data_state),
                                  meta=ocp.args.JsonSave(meta))
        with self._reporting_failures():  # also reports an earlier async save's failure
            return self._manager.save(int(step), args=args, force=force)

    def restore(self, state_like, model: ModelConfig):
        """Restores the newest readable step into the structure/shardings of `state_like`.

        Returns (state, data_state, step), or None when the directory has no steps. Raises
        ConfigError when the checkpoint was written for another model architecture, and
        CheckpointReadError when there are steps but none can be read (see
        `restore_newest_readable`).
        """
        def read(step):
            meta = self._manager.restore(step, args=ocp.args.Composite(
                meta=ocp.args.JsonRestore()))["meta"]
            _check_same_model(meta, model, self.directory, step)
            target = jax.tree.map(ocp.utils.to_shape_dtype_struct, _arrays(state_like))
            restored = self._manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(target), data=ocp.args.JsonRestore()))
            return state_like.replace(**restored["state"]), restored["data"], step

        return restore_newest_readable(self.all_steps(), self.directory, read)

    def wait(self):
        with self._reporting_failures():
            self._manager.wait_until_finished()

    def close(self):
        try:
            self.wait()
        finally:
            self._manager.close()

    @contextlib.contextmanager
    def _reporting_failures(self):
        try:
            yield
        except Exception as err:  # noqa: BLE001 - whatever the storage layer raised
            # Orbax writes each step to a temporary directory and renames it when complete,
            # so the failed step never shows up as a step and the earlier ones are untouched.
            steps = self.all_steps()
            kept = (f"the steps saved before ({', '.join(map(str, steps))}) are intact"
                    if steps else "no earlier step was saved")
            resume = (f"to resume from step {steps[-1]}" if steps else "to start again")
            raise CheckpointSaveError(
                f"could not save a checkpoint in {self.directory} ({type(err).__name__}: "
                f"{str(err)[:300]}); {kept}. Free disk space (or move the workdir) and run the "
                f"same command again {resume}.") from err



def restore_newest_readable(steps: list[int], directory: str, read):
    """`read(step)` for the newest step it succeeds on; an unreadable step falls back to the
    previous one with a warning naming both. A ConfigError (the step is readable but belongs
    to another model) is raised as is. Returns None when there are no steps, and raises
    CheckpointReadError when none can be read: starting from scratch would let later saves
    delete them, and an unreadable step is often a storage hiccup (an unmounted network
    disk), not a lost one."""
    failures = []
    for i, step in enumerate(reversed(steps)):
        try:
            return read(step)
        except ConfigError:
            raise
        except Exception as err:  # noqa: BLE001 - any unreadable step falls back
            failures.append((step, err))
            earlier = steps[:len(steps) - 1 - i]
            logging.warning("checkpoint step %d in %s is unreadable (%s: %s); %s", step,
                            directory, type(err).__name__, str(err)[:200],
                            f"falling back to step {earlier[-1]}" if earlier else
                            "no earlier step")
    if not failures:
        return None
    detail = "; ".join(f"step {s}: {type(e).__name__}: {str(e)[:150]}" for s, e in failures[:3])
    raise CheckpointReadError(
        f"none of the checkpoints in {directory} (steps {', '.join(map(str, steps))}) can be "
        f"read ({detail}). Nothing was changed. If their storage is reachable and they are "
        "damaged for good, move that directory away to start from scratch, or use a new "
        "--workdir.")


def _arrays(state) -> dict:
    """The saved part of a TrainState (everything but the static optimizer object)."""
    tree = {"step": state.step, "params": state.params, "opt_state": state.opt_state,
            "key_data": state.key_data, "skipped_steps": state.skipped_steps}
    if jax.process_count() > 1:
        tree = jax.tree.map(_global, tree)
    return tree


def _global(x):
    """pmap's replicated outputs live on this process's devices only; orbax saves global
    arrays, so such an array becomes the global replicated array it stands for."""
    if isinstance(x, jax.Array) and len(x.sharding.device_set) < jax.device_count():
        return ocp.utils.fully_replicated_host_local_array_to_global_array(x)
    return x


def _check_same_model(meta: dict, model: ModelConfig, directory: str, step: int) -> None:
    saved = meta.get("model", {})
    current = dataclasses.asdict(model)
    # Only fields that change the saved tree make a checkpoint unusable; dropout, dtypes and
    # remat may differ between runs of one model.
    shape_fields = STATE_LAYOUT_FIELDS
    # Fields added after a checkpoint was written read as their default.
    defaults = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
    diff = {k: (saved.get(k, defaults[k]), current[k]) for k in shape_fields
            if saved.get(k, defaults[k]) != current[k]}
    if diff:
        detail = ", ".join(f"model.{k}: checkpoint {a!r} vs config {b!r}"
                           for k, (a, b) in diff.items())
        raise ConfigError(
            f"the workdir's checkpoint (step {step} in {directory}) belongs to another model "
            f"({detail}). Use a new --workdir, or set the config back to match.")
