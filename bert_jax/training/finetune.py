"""The fine-tuning loop: config -> workdir with metrics, checkpoints, the best model and
predictions. `finetune(config, workdir)` is the one library call behind
`python -m experiments.finetune`.

What lands in the workdir:
  config.json          the resolved config (the model as the checkpoint made it)
  metrics.jsonl        train rows (`loss`, `accuracy` where the kind has one, `grad_norm`,
                       `learning_rate`, ...) and eval rows (split "eval") with the task's
                       metric keys (data/tasks Task.metric_keys: accuracy, f1, matthews_corr,
                       pearson, spearman, exact_match, ...). A task with several eval splits
                       (MNLI) writes the first one's keys plain and the others' suffixed with
                       the split name less "validation_": `accuracy` (matched),
                       `accuracy_mismatched`.
  checkpoints/         orbax steps (train state; the data position is the step itself)
  best/, best.json     the parameters with the best `task.main_metric` on the first eval
                       split so far, and {step, metric, metrics}
  predictions/<split>/ at the end, from the best parameters: each eval split's and, where the
                       task has them, each test split's predictions (data/tasks'
                       write_predictions: GLUE leaderboard TSVs such as test/SST-2.tsv,
                       SQuAD's official JSON, conlleval lines)
  features/            cached feature arrays (finetune_data.py)
  summary.json         parameters, wall time (summed over resumed invocations) and
                       steady-state tokens/s (padded rows), as pretraining writes it
Running the same command again resumes from the newest checkpoint and continues exactly;
SIGTERM/SIGINT saves and exits 0. One process (any number of its devices).
"""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import traverse_util

from bert_jax import config as config_lib
from bert_jax.config import ConfigError, check_platform
from bert_jax.data import tasks as tasks_lib
from bert_jax.data.tokenizer import Tokenizer, load_tokenizer
from bert_jax.metrics.progress import ProgressBar
from bert_jax.metrics.writers import MetricsWriter, atomic_write, write_config
from bert_jax.modeling.models import init_params
from bert_jax.modeling.task_models import task_model, task_model_config
from bert_jax.training import finetune_config as fc
from bert_jax.training import finetune_data, report
from bert_jax.training.checkpoint import Checkpointer
from bert_jax.training.finetune_step import STEPS, FinetuneStepConfig
from bert_jax.training.loop import NonFiniteError, _StopRequest, check_resume_config, say
from bert_jax.training.optimizer import layerwise_lr_multipliers, make_optimizer
from bert_jax.training.parallel import Parallel
from bert_jax.training.step import TrainState


def metric_suffix(task, split: str) -> str:
    """"" for the task's first eval split, else "_" + the split name less "validation_"."""
    return "" if split == task.eval_splits[0] else "_" + split.removeprefix("validation_")


class BestKeeper:
    """The best parameters so far by `task.main_metric` (higher is better), in `workdir/best`
    (orbax, atomic: params and their record together) and `workdir/best.json`."""

    def __init__(self, workdir: str, metric: str):
        self.workdir, self.metric = workdir, metric
        self._manager = ocp.CheckpointManager(
            os.path.join(workdir, "best"), item_names=("params", "meta"),
            options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True))
        step = self._manager.latest_step()
        self.record = None if step is None else self._manager.restore(
            step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def offer(self, step: int, metrics: dict, params) -> bool:
        """Keeps `params` when their metric beats the best so far; returns whether it did."""
        if self.record is not None and metrics[self.metric] <= self.record["metric"]:
            return False
        latest = self._manager.latest_step()
        if latest is not None and latest >= step:  # a rerun of a step after a resume
            self._manager.delete(latest)
        self.record = {"step": int(step), "metric_name": self.metric,
                       "metric": float(metrics[self.metric]), "metrics": metrics}
        self._manager.save(step, args=ocp.args.Composite(
            params=ocp.args.StandardSave(params), meta=ocp.args.JsonSave(self.record)))
        self._manager.wait_until_finished()
        atomic_write(os.path.join(self.workdir, "best.json"),
                     json.dumps(self.record, indent=2) + "\n")
        return True

    def params(self, like):
        """The kept parameters, placed like `like`; None when nothing was kept."""
        step = self._manager.latest_step()
        if step is None:
            return None
        target = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        return self._manager.restore(step, args=ocp.args.Composite(
            params=ocp.args.StandardRestore(target)))["params"]

    def close(self):
        self._manager.close()


def _tokenizer(config, pretrained) -> Tokenizer:
    """The run's tokenizer: data.vocab_path, else the one that came with init_from."""
    d = config.data
    if d.vocab_path:
        return load_tokenizer(os.path.expanduser(d.vocab_path), d.lowercase)
    if pretrained is None or not isinstance(pretrained.tokenizer, Tokenizer):
        raise ConfigError("data.vocab_path is empty and " + (
            "there is no init_from" if pretrained is None else
            f"the checkpoint at {config.init_from} has no WordPiece vocab.txt") +
            "; set data.vocab_path to the model's vocab.txt")
    return pretrained.tokenizer


def resolve_model(config):
    """(ModelConfig of the task model, Pretrained or None); the architecture comes from
    `init_from` when given, and config.model records the result."""
    task = tasks_lib.get_task(config.task)
    model = config_lib.model_config_from(config.model)
    pretrained = None
    if config.init_from:
        path = os.path.expanduser(config.init_from)
        if not os.path.exists(path):
            raise ConfigError(f"init_from={config.init_from!r} does not exist; give a Hugging "
                              "Face directory, a Google TF checkpoint prefix or a bert_jax "
                              "workdir/export.")
        from bert_jax.convert import load_pretrained  # safetensors/TF readers

        pretrained = load_pretrained(path)
        if model.coarse_vocab_size and not pretrained.config.coarse_vocab_size:
            raise ConfigError(
                f"the run's model is AMBERT but init_from={config.init_from!r} holds a "
                f"{pretrained.config.family} checkpoint without coarse (phrase) parameters; "
                "give an AMBERT pretraining workdir or export, or drop the AMBERT model fields")
        model = fc.model_from_checkpoint(model, pretrained.config)
    model = task_model_config(model, task.kind)
    fc.record_model(config, model)
    return task, model, pretrained


def warm_start(params, config, model, pretrained, rng):
    """`params` with every tensor the checkpoint has; returns (params, names of the new
    ones). Modules the checkpoint lacks (the task head, a pooler MiniLM-style checkpoints may
    not have) keep their random init from `rng`'s run seed."""
    if model.coarse_vocab_size:
        return _warm_start_ambert(params, pretrained, model)
    from bert_jax.convert import init_params_from

    loaded = traverse_util.flatten_dict(
        init_params_from(os.path.expanduser(config.init_from), model, rng=rng), sep="/")
    flat = traverse_util.flatten_dict(params, sep="/")
    new = sorted(set(flat) - set(loaded))
    if model.pooler and not pretrained.config.pooler:  # initialised by init_params_from
        new += sorted(k for k in loaded if k.startswith("pooler/"))
    flat.update({k: v for k, v in loaded.items() if k in flat})
    return traverse_util.unflatten_dict(flat, sep="/"), new


def _warm_start_ambert(params, pretrained, model):
    """AMBERT from a bert_jax AMBERT checkpoint (the only kind that holds one): the task
    model is the pretraining module plus classifiers, so tensors match by path once both
    encoders have the run's layer layout (scanned or not)."""
    from bert_jax.convert.names import relayout

    ckpt = relayout(pretrained.params, model.scan_layers)
    if "coarse_encoder" in ckpt:  # the "combo" variant's second encoder
        ckpt["coarse_encoder"] = relayout({"encoder": ckpt["coarse_encoder"]},
                                          model.scan_layers)["encoder"]
    loaded = traverse_util.flatten_dict(ckpt, sep="/")
    flat = traverse_util.flatten_dict(params, sep="/")
    for name in set(flat) & set(loaded):
        if np.shape(flat[name]) != np.shape(loaded[name]):
            raise ConfigError(f"init_from: {name} is {np.shape(loaded[name])} in the checkpoint "
                              f"but {np.shape(flat[name])} in the run's model")
        flat[name] = jax.numpy.asarray(loaded[name], flat[name].dtype)
    new = sorted(set(flat) - set(loaded))
    return traverse_util.unflatten_dict(flat, sep="/"), new


def _coarse_inputs(config, tokenizer):
    """AMBERT: a function features -> {coarse_ids, coarse_start}, else None."""
    if not config.data.coarse_vocab_path:
        return None
    from bert_jax.training.finetune_ambert import coarse_inputs_fn

    return coarse_inputs_fn(config.data.coarse_vocab_path, tokenizer)


def finetune(config, workdir: str) -> dict[str, float]:
    """Fine-tunes per `config` into `workdir`; returns the final eval metrics ({} when a
    signal stopped the run early)."""
    t_start = time.time()
    workdir = os.path.abspath(workdir)
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ConfigError(f"--workdir {workdir} is a file, not a directory; pass a directory "
                          "(it is created if missing).")
    if jax.process_count() > 1:
        raise ConfigError("fine-tuning runs in one process (with all its devices); start it "
                          "without --num_processes")
    task, model_cfg, pretrained = resolve_model(config)
    tokenizer = _tokenizer(config, pretrained)
    fc.validate(config, task, model_cfg, num_devices=jax.device_count(),
                tokenizer_vocab_size=tokenizer.vocab_size)
    check_platform(model_cfg, jax.default_backend())
    tc = config.train
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), max_to_keep=tc.max_to_keep)
    if checkpointer.latest_step() is not None:  # before config.json is overwritten
        check_resume_config(config, workdir, may_change=fc.RESUME_MAY_CHANGE,
                            default_config=fc.default_finetune_config)
    cache = os.path.join(workdir, "features")
    vocab_id = f"{tokenizer.identity}:{tokenizer.lowercase}"
    add_inputs = _coarse_inputs(config, tokenizer)
    load = lambda split: finetune_data.load_split(  # noqa: E731
        task, split, config.data, tokenizer, cache, vocab_id=vocab_id, add_inputs=add_inputs)
    train = load("train")
    evals = [load(split) for split in task.eval_splits]
    num_steps = fc.num_steps(tc, train.num_rows)
    schedule = fc.schedule_config(tc, num_steps)
    eval_bs = tc.eval_batch_size or tc.batch_size
    step_cfg = FinetuneStepConfig(model=model_cfg, kind=task.kind, num_labels=task.num_labels,
                                  agreement_weight=tc.ambert_agreement_weight)
    par = Parallel(tc.parallel, step_cfg, steps=STEPS)
    os.makedirs(workdir, exist_ok=True)
    write_config(workdir, config.to_dict())
    say(f"bert_jax fine-tuning {task.name} ({task.kind}, {task.num_labels} outputs): "
        f"{model_cfg.num_layers} layers, hidden {model_cfg.hidden_size}; {train.num_rows} "
        f"train rows, {num_steps} steps of {tc.batch_size}, warm-up {schedule.warmup_steps}; "
        f"{jax.device_count()} {jax.devices()[0].platform} device(s); workdir {workdir}")

    param_key, run_key = jax.random.split(jax.random.key(config.seed))
    model = task_model(model_cfg, task.kind, task.num_labels)
    params = init_params(model, param_key)
    if pretrained is not None and checkpointer.latest_step() is None:
        params, new = warm_start(params, config, model_cfg, pretrained, param_key)
        say(f"initialised from {config.init_from}; new (random, seed {config.seed}): "
            + ", ".join(f"{k} {list(np.shape(traverse_util.flatten_dict(params, sep='/')[k]))}"
                        for k in new))
    multipliers = None
    if tc.layerwise_lr_decay < 1.0:
        multipliers = layerwise_lr_multipliers(params, tc.layerwise_lr_decay,
                                               model_cfg.num_layers)
    state = par.replicate(TrainState.create(params, make_optimizer(schedule, multipliers),
                                            run_key))
    writer = MetricsWriter(workdir)
    start = 0
    restored = checkpointer.restore(state, model_cfg)
    if restored is not None:
        state, _, start = restored
        state = par.replicate(state)
        say(f"resumed from the checkpoint at step {start}")
    writer.truncate_after(start)
    best = BestKeeper(workdir, task.main_metric)
    base_key = jax.random.wrap_key_data(np.asarray(jax.device_get(state.key_data)))

    def predict(params, data):
        fn = lambda b: par.unshard(par.predict(params, par.shard_batch(b), base_key))  # noqa
        outputs = finetune_data.run_predictions(fn, data, eval_bs)
        d = config.decode
        return tasks_lib.postprocess(task, data.examples, data.features, outputs,
                                     n_best_size=d.n_best_size,
                                     max_answer_length=d.max_answer_length,
                                     null_score_diff_threshold=d.null_score_diff_threshold)

    best_predictions = {}  # split -> predictions of the best parameters, when made here
    timer = report.SteadyTimer()  # steady-state speed for summary.json

    def record(end_step):
        if jax.process_index() == 0:
            timer.record(workdir, num_params=sum(np.size(x) for x in jax.tree.leaves(params)),
                         num_steps=num_steps,
                         tokens_per_step=tc.batch_size * config.data.max_seq_len,
                         start_step=start, end_step=end_step, wall_s=time.time() - t_start)

    def run_eval(step):
        t0 = time.time()
        row, predictions = {}, {}
        for data in evals:
            predictions[data.name] = predict(state.params, data)
            scores = tasks_lib.evaluate(task, data.examples, predictions[data.name])
            row.update({k + metric_suffix(task, data.name): v for k, v in scores.items()})
        writer.write(step, "eval", row)
        kept = best.offer(step, row, state.params)
        if kept:
            best_predictions.update(predictions)
        say(f"\neval @ step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items())
            + (" (best so far)" if kept else ""))
        timer.evaluated(time.time() - t0)
        return row

    def save(step, force=False):
        checkpointer.save(step, state, {"step": step}, model_cfg, force=force)

    def finish(done_step, metrics):
        """Reads a step's metrics one step late (the next one is already queued)."""
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        timer.step_finished(done_step)
        if done_step % tc.log_every == 0 or done_step == num_steps or metrics["nonfinite"]:
            writer.write(done_step, "train", metrics)
        if metrics["nonfinite"] and tc.nonfinite == "stop":
            checkpointer.close()
            raise NonFiniteError(f"non-finite loss or gradient at step {done_step}; its update "
                                 "was not applied. Lower train.learning_rate (or set "
                                 "train.nonfinite=skip) and rerun to resume.")
        progress.update(done_step, loss=metrics["loss"])

    progress = ProgressBar(num_steps, start)
    eval_row, previous, step = None, None, start
    with _StopRequest() as stop:
        while step < num_steps:
            batch = finetune_data.train_batch(train, step, tc.batch_size, config.seed)
            state, metrics = par.train(state, par.shard_batch(batch), base_key)
            step += 1
            if previous is not None:
                finish(*previous)
            previous = (step, metrics)
            if step % tc.checkpoint_every == 0 or step == num_steps:
                save(step)
            if tc.eval_every and step % tc.eval_every == 0 and step != num_steps:
                eval_row = run_eval(step)
            if stop.signal is not None:
                break
        if previous is not None:
            finish(*previous)
        progress.close()
        if stop.signal is not None and step < num_steps:
            if step % tc.checkpoint_every:
                save(step, force=True)
            checkpointer.close()
            writer.close()
            best.close()
            record(step)
            say(f"{stop.signal} received: saved step {step}; run the same command again "
                "to resume")
            return {}
    if start < num_steps or best.record is None:
        eval_row = run_eval(step)
    checkpointer.close()
    writer.close()
    best_params = lambda: best.params(state.params)  # noqa: E731
    _write_predictions(task, load, evals, predict, best_params, best_predictions,
                       workdir)
    best.close()
    record(step)
    say(f"best {task.main_metric} {best.record['metric']:.4f} at step "
        f"{best.record['step']}; wall time {time.time() - t_start:.0f} s")
    return eval_row or {}


def _write_predictions(task, load, evals, predict, best_params, known: dict,
                       workdir: str) -> None:
    """Predictions of every eval split and every test split that loads, from the best
    parameters (`best_params()`, restored only when a split is not in `known` already)."""
    out_dir = os.path.join(workdir, "predictions")
    os.makedirs(out_dir, exist_ok=True)
    splits = list(evals)
    for split in task.test_splits:
        try:
            splits.append(load(split))
        except (ConfigError, FileNotFoundError) as err:  # no test file: nothing to predict
            say(f"no {split} predictions ({err})")
    written, params = [], None
    for data in splits:
        if data.name not in known and params is None:
            params = best_params()
        # One folder per split: GLUE names a task's dev and test files alike (SST-2.tsv).
        name = os.path.join(data.name, tasks_lib.predictions_file_name(task, data.name))
        os.makedirs(os.path.join(out_dir, data.name), exist_ok=True)
        predictions = known[data.name] if data.name in known else predict(params, data)
        tasks_lib.write_predictions(task, data.examples, predictions,
                                    os.path.join(out_dir, name))
        written.append(name)
    say(f"predictions in {out_dir}: {', '.join(written)}")
