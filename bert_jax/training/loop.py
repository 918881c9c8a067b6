"""The pretraining loop: config -> workdir with metrics, checkpoints, plots.

`train_and_evaluate(config, workdir)` is the one library call behind
`python -m experiments.pretrain`. It validates everything it can before compiling, resumes
by itself from the newest readable checkpoint in `workdir/checkpoints`, saves and exits
cleanly on SIGTERM/SIGINT, and fetches metrics from the device one step late so the host
never waits on the step it just dispatched.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import jax
import numpy as np
from flax import traverse_util

from bert_jax import config as config_lib
from bert_jax.data import DataError
from bert_jax.data.pipeline import make_eval_batches, make_train_iterator
from bert_jax.data.tokenizer import load_tokenizer
from bert_jax.data.instances import load_coarse_vocab
from bert_jax.masking import MaskingConfig, coarse_config, config_from as masking_config_from
from bert_jax.metrics.plots import plot_metrics
from bert_jax.metrics.progress import ProgressBar
from bert_jax.metrics.writers import MetricsWriter, write_config
from bert_jax.modeling.models import init_params, pretraining_model
from bert_jax.training import report
from bert_jax.training.checkpoint import CheckpointReadError, CheckpointSaveError, Checkpointer
from bert_jax.training.optimizer import make_optimizer
from bert_jax.training.parallel import Parallel
from bert_jax.training.step import StepConfig, TrainState, summarize


def say(*args) -> None:
    """User-facing message, printed once (by process 0)."""
    if jax.process_index() == 0:
        print(*args, flush=True)


class NonFiniteError(RuntimeError):
    """A NaN/Inf loss or gradient under train.nonfinite='stop'."""


# Errors caused by the user's input or environment, each with a message that says what, where
# and how to fix it: the CLI prints them as one line (no traceback) and exits 1.
USER_ERRORS = (config_lib.ConfigError, DataError, FileNotFoundError, NonFiniteError,
               CheckpointReadError, CheckpointSaveError)


class _StopRequest:
    """Turns SIGTERM/SIGINT into a flag checked between steps (save, then exit 0)."""

    def __init__(self):
        self.signal = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. a test runner thread)
                pass
        return self

    def _handle(self, signum, frame):
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.signal = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def masking_config(config, tokenizer) -> MaskingConfig:
    return masking_config_from(config.masking, vocab_size=tokenizer.vocab_size,
                               mask_id=tokenizer.mask_id, special_ids=tokenizer.special_ids)


class Evaluator:
    """Evaluates MLM (and NSP or SOP) on a fixed list of held-out batches with fixed masks."""

    def __init__(self, par: Parallel, batches: list[dict], base_key):
        self.par, self.batches, self.base_key = par, batches, base_key

    def __call__(self, params) -> dict[str, float]:
        totals = None
        for batch in self.batches:
            sums = self.par.evaluate(params, self.par.shard_batch(batch), self.base_key)
            totals = sums if totals is None else jax.tree.map(np.add, totals, sums)
        totals = jax.tree.map(lambda x: float(np.asarray(x)), jax.device_get(totals))
        return summarize(totals, maximum=max)


# Fields that may change when a run resumes: when and where things are written and how the
# run is mapped onto devices, plus num_steps (extending a run; its learning-rate schedule then
# decays to the new end). Any other change would silently continue one experiment as another.
RESUME_MAY_CHANGE = frozenset({
    "train.num_steps", "train.log_every", "train.eval_every", "train.eval_batches",
    "train.eval_batch_size", "train.checkpoint_every", "train.max_to_keep", "train.plots",
    "train.fill_in_examples", "train.nonfinite", "train.init_from", "train.parallel",
    "data.tfds_data_dir", "data.cache_dir", "data.worker_count", "model.remat",
    "train.grad_accum_steps", "model.attention_impl", "model.scan_unroll",
})


# Fields added after runs were saved whose default is not what those runs did: a saved config
# without the field reads as this value. (The last layer ran at every row before
# model.last_layer_subset; on, its dropout draws differ, so such a run resumes only with it off.)
BEFORE_FIELD_EXISTED = {"model.last_layer_subset": False}


def _flat(tree: dict) -> dict:
    return traverse_util.flatten_dict(tree, sep=".")


def check_resume_config(config, workdir: str, *, may_change=RESUME_MAY_CHANGE,
                        default_config=config_lib.default_pretrain_config) -> None:
    """Refuses to resume a workdir's checkpoint under a config that differs from the saved
    `config.json` in anything but `may_change`; the message lists every difference.
    `default_config()` gives the values of fields the saved config lacks."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return  # a workdir from elsewhere; the checkpoint's own model check still applies
    with open(path) as f:
        saved = _flat(json.load(f))
    current = _flat(json.loads(json.dumps(config.to_dict(), default=str)))
    # A field added to the code after the run started reads as its default (e.g. AMBERT's
    # data.coarse_vocab_path, model.coarse_vocab_size): that is what the run did.
    defaults = _flat(json.loads(json.dumps(default_config().to_dict(), default=str)))
    # BEFORE_FIELD_EXISTED overrides that for fields whose default changed what a step does.
    defaults.update(BEFORE_FIELD_EXISTED)
    saved = {**{k: defaults[k] for k in set(current) - set(saved) if k in defaults}, **saved}
    changed = sorted(k for k in set(saved) | set(current)
                     if k not in may_change and saved.get(k) != current.get(k))
    if not changed:
        return
    detail = "; ".join(f"{k}: saved {saved.get(k, '(absent)')!r}, now "
                       f"{current.get(k, '(absent)')!r}" for k in changed[:8])
    detail += f"; and {len(changed) - 8} more" if len(changed) > 8 else ""
    what = ("belongs to another model" if any(k.split(".", 1)[1] in config_lib.STATE_LAYOUT_FIELDS
                                               for k in changed if k.startswith("model."))
            else "was written under a different config")
    raise config_lib.ConfigError(
        f"the checkpoint in {workdir} {what} ({detail}). Resuming continues the saved run "
        f"exactly, so only {', '.join(sorted(may_change))} may change. Use a new "
        "--workdir for a new experiment, or set these fields back.")


def train_and_evaluate(config, workdir: str) -> dict[str, float]:
    """Pretrains per `config`, writing everything under `workdir`; returns final eval metrics."""
    t_start = time.time()
    workdir = os.path.abspath(workdir)
    process_index, process_count = jax.process_index(), jax.process_count()
    tc = config.train
    # Everything that can be checked without compiling is checked first.
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise config_lib.ConfigError(f"--workdir {workdir} is a file, not a directory; "
                                     "pass a directory (it is created if missing).")
    if tc.init_from and not os.path.exists(os.path.expanduser(tc.init_from)):
        raise config_lib.ConfigError(
            f"train.init_from={tc.init_from!r} does not exist; give a Hugging Face directory, "
            "a Google TF checkpoint prefix (model.ckpt-N) or a bert_jax workdir/export.")
    config_lib.check_platform(config_lib.model_config_from(config.model), jax.default_backend())
    tokenizer = load_tokenizer(config.data.vocab_path, config.data.lowercase)
    coarse_vocab = load_coarse_vocab(config.data, tokenizer)  # AMBERT's phrases, or None
    model_cfg = config_lib.validate(
        config, num_devices=jax.device_count(), process_count=process_count,
        tokenizer_vocab_size=tokenizer.vocab_size,
        coarse_vocab_size=coarse_vocab.vocab_size if coarse_vocab else None)
    if tc.init_from and model_cfg.coarse_vocab_size:
        raise config_lib.ConfigError("train.init_from does not load AMBERT checkpoints yet "
                                     "(its converters know BERT's layout); leave it empty")
    fine_masking = masking_config(config, tokenizer)
    coarse_masking = None
    if model_cfg.coarse_vocab_size:
        coarse_masking = coarse_config(fine_masking, vocab_size=coarse_vocab.vocab_size,
                                       mask_id=coarse_vocab.mask_id,
                                       special_ids=coarse_vocab.special_ids)
    step_cfg = StepConfig(model=model_cfg, masking=fine_masking, coarse_masking=coarse_masking,
                          grad_accum=tc.get("grad_accum_steps", 1))
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), max_to_keep=tc.max_to_keep)
    if checkpointer.latest_step() is not None:  # before config.json is overwritten
        check_resume_config(config, workdir)
    say(f"bert_jax: {model_cfg.num_layers} layers, hidden {model_cfg.hidden_size}, vocab "
        f"{model_cfg.vocab_size}; {jax.device_count()} {jax.devices()[0].platform} device(s), "
        f"backend {tc.parallel}; workdir {workdir}")
    data_it = make_train_iterator(config.data, seed=config.seed, global_batch_size=tc.batch_size,
                                  process_index=process_index, process_count=process_count)
    eval_bs = tc.eval_batch_size or tc.batch_size
    eval_batches = make_eval_batches(config.data, seed=config.seed, batch_size=eval_bs,
                                     num_batches=tc.eval_batches,
                                     process_index=process_index, process_count=process_count)
    # The inputs are good: from here on the run builds, compiles and writes.
    par = Parallel(tc.parallel, step_cfg)
    os.makedirs(workdir, exist_ok=True)
    if process_index == 0:
        write_config(workdir, config.to_dict())
        for sub in ("tensorboard", "plots"):
            os.makedirs(os.path.join(workdir, sub), exist_ok=True)

    root = jax.random.key(config.seed)
    param_key, run_key = jax.random.split(root)
    model = pretraining_model(model_cfg)
    params = init_params(model, param_key)
    if tc.init_from and checkpointer.latest_step() is None:  # resuming beats init_from
        from bert_jax.convert import init_params_from  # pulls in safetensors/TF readers

        params = init_params_from(tc.init_from, model_cfg, rng=param_key)
        say(f"initialised from {tc.init_from}")
    state = par.replicate(TrainState.create(params, make_optimizer(tc), run_key))
    num_params = sum(x.size for x in jax.tree.leaves(state.params))
    writer = MetricsWriter(workdir, enabled=process_index == 0)
    restored = checkpointer.restore(state, model_cfg)
    start = 0
    if restored is not None:
        state, data_state, start = restored
        state = par.replicate(state)
        data_it.set_state(data_state)
        say(f"resumed from the checkpoint at step {start}")
    # Rows past the restored step (or any row, when a run killed before its first checkpoint
    # starts over) belong to steps about to be run again.
    writer.truncate_after(start)
    # A separate buffer from state.key_data, which is donated every step.
    base_key = jax.random.wrap_key_data(np.asarray(jax.device_get(state.key_data)))
    evaluator = Evaluator(par, eval_batches, base_key)
    tokens_per_step = tc.batch_size * config.data.max_seq_len
    say(f"{num_params / 1e6:.2f}M parameters; {tc.num_steps - start} steps to go, "
        f"global batch {tc.batch_size} x {config.data.max_seq_len} tokens")

    def log_train(step, metrics):
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        writer.write(step, "train", metrics)
        return metrics

    timer = report.SteadyTimer()  # steady-state speed for summary.json

    def run_eval(step):
        t0 = time.time()
        metrics = evaluator(state.params)
        timer.evaluated(time.time() - t0)
        writer.write(step, "eval", metrics)
        say(f"\neval @ step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        return metrics

    saved = {start}  # steps already in (or on their way to) workdir/checkpoints

    def save(step, force=False):
        if step not in saved:  # a stop right after a periodic save must not save it twice
            checkpointer.save(step, state, data_it.get_state(), model_cfg, force=force)
            saved.add(step)

    def record(end_step):
        if process_index == 0:
            timer.record(workdir, num_params=num_params, num_steps=tc.num_steps,
                         tokens_per_step=tokens_per_step, start_step=start, end_step=end_step,
                         wall_s=time.time() - t_start)

    progress = ProgressBar(tc.num_steps, start, tokens_per_step=tokens_per_step,
                           enabled=process_index == 0)
    previous = None  # (step, device metrics) of the step dispatched before this one
    scalars = {}  # the latest logged values, shown on the progress line
    eval_metrics = None
    step = start

    def finish(done_step, done_metrics):
        """Waits for an earlier step (the device already has the next one queued), so the
        host stays one step ahead: no per-step stall, no unbounded run-ahead. Reads its
        NaN/Inf flag: the device skipped that update; the policy says go on or stop."""
        nonlocal scalars, stop_all
        timer.step_finished(done_step)
        done_metrics = dict(done_metrics)
        # One device->host read for the two per-step flags (stop is control, not a metric).
        requested, nonfinite = (float(x) for x in jax.device_get(
            (done_metrics.pop("stop"), done_metrics["nonfinite"])))
        stop_all = stop_all or requested > 0
        logged = done_step % tc.log_every == 0 or done_step == tc.num_steps
        if logged:
            shown = log_train(done_step, done_metrics)
            scalars = {"loss": shown["loss"], "mlm_acc": shown["mlm_accuracy"]}
        if nonfinite:
            detail = {k: float(done_metrics[k]) for k in ("loss", "grad_norm", "skipped_steps")}
            if tc.nonfinite == "stop":
                if not logged:  # the row that explains the stop
                    log_train(done_step, done_metrics)
                checkpointer.close()  # finish saves in flight: they hold finite parameters
                writer.close()
                raise NonFiniteError(
                    f"non-finite loss or gradient at step {done_step} ({detail}). Its update "
                    f"was not applied, so the checkpoints in {checkpointer.directory} hold "
                    "finite parameters; lower train.learning_rate (or set "
                    "train.nonfinite=skip) and rerun to resume from the newest one.")
            say(f"\nwarning: non-finite loss or gradient at step {done_step} ({detail}); "
                "update skipped (train.nonfinite=skip)")
        progress.update(done_step, **scalars)

    # A SIGTERM/SIGINT reaches the processes of a multi-host run at different moments, so
    # each sends its flag through the next step (a max over all devices) and all of them stop
    # after the step whose result says so: the same step everywhere, then one collective save.
    stop_all = False
    with _StopRequest() as stop:
        while step < tc.num_steps:
            batch = next(data_it)
            batch["stop"] = np.full(len(batch["input_ids"]), stop.signal is not None, np.int32)
            state, metrics = par.train(state, par.shard_batch(batch), base_key)
            step += 1
            if previous is not None:
                finish(*previous)
            previous = (step, metrics)
            if step % tc.checkpoint_every == 0 or step == tc.num_steps:
                save(step)
            if tc.eval_every and step % tc.eval_every == 0 and step != tc.num_steps:
                eval_metrics = run_eval(step)
            if stop_all:
                break
        if previous is not None:
            finish(*previous)
        progress.close()
        if stop_all and step < tc.num_steps:
            save(step, force=True)
            checkpointer.close()
            writer.close()
            record(step)
            why = f"{stop.signal} received" if stop.signal else "another process was stopped"
            say(f"{why}: saved step {step} to {checkpointer.directory}; "
                "run the same command again to resume")
            return {}
    if start < tc.num_steps or eval_metrics is None:
        eval_metrics = run_eval(step)
    checkpointer.close()
    writer.close()
    record(step)
    if process_index == 0:
        if tc.plots:
            paths = plot_metrics(os.path.join(workdir, "metrics.jsonl"),
                                 os.path.join(workdir, "plots"))
            if paths:
                say("plots: " + ", ".join(paths))
        baseline = report.unigram_baseline(eval_batches, tokenizer.special_ids)
        say(f"eval MLM accuracy {eval_metrics['mlm_accuracy']:.4f} (unigram baseline, always "
            f"the most frequent token: {baseline:.4f}); wall time {time.time() - t_start:.0f} s")
        if tc.fill_in_examples and process_count == 1:  # predictions span all processes
            report.print_fill_in_examples(par, state.params, eval_batches[0], base_key,
                                          tokenizer, tc.fill_in_examples, file=sys.stdout)
    return eval_metrics
