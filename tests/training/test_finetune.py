"""The fine-tuning loop end to end on the project's SST-2 samples: workdir, exact resume
after a crash and after SIGTERM, best-checkpoint selection, every example evaluated once,
warm start from a pretraining workdir, and config errors before anything compiles."""

import json
import os
import signal

import jax
import numpy as np
import pytest
from flax import traverse_util

from bert_jax.config import ConfigError, model_config_dict
from bert_jax.data import tasks as tasks_lib
from bert_jax.data.tokenizer import DEFAULT_VOCAB_PATH
from bert_jax.metrics.writers import read_metrics
from bert_jax.modeling.models import BertForPreTraining, init_params
from bert_jax.modeling.task_models import task_model
from bert_jax.training import finetune as finetune_lib
from bert_jax.training import finetune_data
from bert_jax.training.checkpoint import Checkpointer
from bert_jax.training.finetune_config import default_finetune_config
from bert_jax.training.optimizer import make_optimizer
from bert_jax.training.step import TrainState
from configs.finetune import glue
from tests import synthetic

NUM_STEPS = 8
TINY = dict(vocab_size=8192, hidden_size=32, num_heads=2, intermediate_size=64,
            max_position_embeddings=32)


def make_config(**overrides):
    c = glue.get_config()  # the demo: SST-2 samples, embedded vocab
    c.seed = 3
    c.model = model_config_dict("tiny", **TINY, hidden_dropout=0.1, attention_dropout=0.1)
    c.data.max_seq_len = 32
    c.train.update(dict(num_steps=NUM_STEPS, batch_size=8, log_every=1, checkpoint_every=4,
                        eval_every=4, warmup_steps=2, learning_rate=1e-3, max_to_keep=5))
    for path, value in overrides.items():
        section, field = path.split(".") if "." in path else (None, path)
        (c[section] if section else c)[field] = value
    return c


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("ft") / "w")
    return workdir, finetune_lib.finetune(make_config(), workdir)


def _rows(workdir, split="train"):
    return [r for r in read_metrics(os.path.join(workdir, "metrics.jsonl"))
            if r["split"] == split]


def test_workdir_rows_best_and_predictions(finished_run):
    workdir, final = finished_run
    for name in ("config.json", "metrics.jsonl", "checkpoints", "best", "best.json",
                 "predictions", "summary.json"):
        assert os.path.exists(os.path.join(workdir, name)), name
    summary = json.load(open(os.path.join(workdir, "summary.json")))
    assert (summary["step"], summary["num_steps"], summary["finished"]) == (8, 8, True)
    # Steps 2-8 timed (the first compiles), 8 rows of 32 tokens each.
    [run] = summary["invocations"]
    assert (run["start_step"], run["end_step"], run["timed_steps"]) == (0, 8, 7)
    assert summary["tokens_per_sec"] == pytest.approx(7 * 8 * 32 / run["train_s"], rel=1e-3)
    assert 0 < run["train_s"] < run["wall_s"]
    config = json.load(open(os.path.join(workdir, "config.json")))
    assert config["task"] == "sst2" and config["model"]["mlm_head"] is False
    train, evals = _rows(workdir), _rows(workdir, "eval")
    assert [r["step"] for r in train] == list(range(1, NUM_STEPS + 1))
    assert all({"loss", "accuracy", "learning_rate"} <= set(r) for r in train)
    assert [r["step"] for r in evals] == [4, 8] and set(evals[0]) == {"step", "split",
                                                                        "accuracy"}
    assert evals[-1]["accuracy"] == pytest.approx(final["accuracy"])
    best = json.load(open(os.path.join(workdir, "best.json")))
    top = max(evals, key=lambda r: r["accuracy"])  # the first of equals is kept
    assert (best["step"], best["metric"]) == (top["step"], top["accuracy"])
    task = tasks_lib.get_task("sst2")
    for split in ("validation", "test"):  # every example exactly once
        examples = tasks_lib.load_examples(task, split, sample=True)
        lines = open(os.path.join(workdir, "predictions", split, "SST-2.tsv")).read().split(
            "\n")[1:-1]
        assert sorted(int(line.split("\t")[0]) for line in lines) == sorted(
            e.id for e in examples)


@pytest.mark.parametrize("lost", [["8"], ["4", "8"]])  # the second: killed before step 4
def test_resume_after_crash_is_exact(finished_run, tmp_path, lost):
    """Killed after step 6 (rows logged, checkpoint 8 or both lost), restarted: the same
    rows, dropout included, with none duplicated."""
    reference, _ = finished_run
    workdir = str(tmp_path / "w")
    synthetic.crashed_copy(reference, workdir, lost, rows_through=6)
    finetune_lib.finetune(make_config(), workdir)
    assert _rows(workdir) == _rows(reference)
    assert _rows(workdir, "eval") == _rows(reference, "eval")


def test_sigterm_saves_then_resume_is_exact(finished_run, tmp_path, monkeypatch):
    reference, _ = finished_run
    workdir = str(tmp_path / "w")
    real = finetune_data.train_batch

    def signalling(data, step, *args):
        if step == 2:  # the batch of step 3
            os.kill(os.getpid(), signal.SIGTERM)
        return real(data, step, *args)

    monkeypatch.setattr(finetune_data, "train_batch", signalling)
    assert finetune_lib.finetune(make_config(), workdir) == {}
    assert os.listdir(os.path.join(workdir, "checkpoints")) == ["3"]
    monkeypatch.setattr(finetune_data, "train_batch", real)
    finetune_lib.finetune(make_config(), workdir)
    assert _rows(workdir) == _rows(reference)
    summary = json.load(open(os.path.join(workdir, "summary.json")))
    assert [(i["start_step"], i["end_step"]) for i in summary["invocations"]] == [(0, 3), (3, 8)]
    assert summary["wall_time_s"] == pytest.approx(
        sum(i["wall_s"] for i in summary["invocations"]), abs=1e-2)


def test_best_keeper_keeps_the_highest_and_survives_reopening(tmp_path):
    keeper = finetune_lib.BestKeeper(str(tmp_path), "f1")
    params = lambda v: {"w": jax.numpy.full((2, 3), v)}  # noqa: E731
    assert [keeper.offer(s, {"f1": f}, params(s)) for s, f in ((1, .5), (2, .7), (3, .6))] == [
        True, True, False]
    keeper.close()
    again = finetune_lib.BestKeeper(str(tmp_path), "f1")
    assert again.record["step"] == 2 and again.record["metric"] == .7
    np.testing.assert_array_equal(again.params(params(0.0))["w"], np.full((2, 3), 2.0))
    assert json.load(open(tmp_path / "best.json"))["step"] == 2
    again.close()


def test_eval_batches_count_every_row_once():
    features = {"input_ids": np.arange(13)[:, None] * np.ones((1, 4), np.int32),
                "attention_mask": np.ones((13, 4), np.int32),
                "token_type_ids": np.zeros((13, 4), np.int32), "label": np.arange(13)}
    data = finetune_data.SplitData("validation", list(range(13)), features)
    batches = list(finetune_data.eval_batches(data, 8))
    assert [real for _, real in batches] == [8, 5]
    assert batches[1][0]["weight"].tolist() == [1] * 5 + [0] * 3
    out = finetune_data.run_predictions(lambda b: {"x": b["input_ids"][:, 0]}, data, 8)
    assert out["x"].tolist() == list(range(13))


def test_train_batches_are_a_function_of_seed_and_step():
    """Epochs are permutations (every row once per epoch), batches straddle epochs."""
    rows = np.concatenate([finetune_data.train_rows(s, 5, 12, seed=7) for s in range(12)])
    for epoch in range(5):
        assert sorted(rows[epoch * 12:(epoch + 1) * 12]) == list(range(12))
    np.testing.assert_array_equal(finetune_data.train_rows(4, 5, 12, seed=7), rows[20:25])
    assert not np.array_equal(finetune_data.train_rows(0, 5, 12, seed=8), rows[:5])


def _pretraining_workdir(workdir, model, params):
    """A pretraining workdir holding one checkpoint (step 5) of `params`."""
    ckpt = Checkpointer(str(workdir / "checkpoints"), max_to_keep=1)
    tx = make_optimizer(synthetic.train_config())
    ckpt.save(5, TrainState.create(params, tx, jax.random.key(0)), {}, model)
    ckpt.close()
    return workdir


def test_init_from_a_pretraining_workdir(tmp_path, capsys):
    """A pretraining workdir's encoder (and pooler) fill the task model with equal values;
    the classifier is new (from the run's seed) and named; the architecture is the
    checkpoint's even when the config says otherwise."""
    pre_cfg = make_config().model
    from bert_jax.config import model_config_from

    model = model_config_from(pre_cfg)
    pre_params = init_params(BertForPreTraining(model), jax.random.key(42))
    pre_dir = _pretraining_workdir(tmp_path / "pre", model, pre_params)
    (pre_dir / "config.json").write_text(json.dumps(
        {"data": {"vocab_path": DEFAULT_VOCAB_PATH, "lowercase": True}}))

    config = make_config(init_from=str(pre_dir))
    config.model.hidden_size = 64  # overridden by the checkpoint's 32
    config.data.vocab_path = ""  # the checkpoint's
    # How the parameters are computed with is the run's, not the checkpoint's.
    runtime = dict(residual_dtype="bfloat16", scan_unroll=2, last_layer_subset=False,
                   attention_dropout=0.0)
    assert all(getattr(model, k) != v for k, v in runtime.items())
    config.model.update(runtime)
    task, run_model, pretrained = finetune_lib.resolve_model(config)
    assert run_model.hidden_size == 32 and config.model.hidden_size == 32
    assert {k: getattr(run_model, k) for k in runtime} == runtime
    assert not run_model.mlm_head and run_model.pooler
    fresh = init_params(task_model(run_model, task.kind, task.num_labels), jax.random.key(1))
    params, new = finetune_lib.warm_start(fresh, config, run_model, pretrained,
                                          jax.random.key(1))
    assert new == ["classifier/bias", "classifier/kernel"]
    flat, pre = (traverse_util.flatten_dict(p, sep="/") for p in (params, pre_params))
    assert set(flat) - set(pre) == set(new)
    for name, value in flat.items():
        if name in pre:
            np.testing.assert_array_equal(np.asarray(value), np.asarray(pre[name]), name)
        else:
            np.testing.assert_array_equal(
                value, traverse_util.flatten_dict(fresh, sep="/")[name])
    assert finetune_lib._tokenizer(config, pretrained).vocab_size == 8192


@pytest.mark.parametrize("overrides,message", [
    ({"task": "sst3"}, r"unknown task 'sst3'; the tasks are cola, sst2"),
    ({"train.batch_size": 12}, r"train\.batch_size \(12\)"),
    ({"train.layerwise_lr_decay": 0.0}, r"train\.layerwise_lr_decay"),
    ({"data.local_dir": "/tmp"}, r"data\.sample=True"),
    ({"data.max_seq_len": 64}, r"data\.max_seq_len \(64\)"),
    ({"init_from": "/no/such/dir"}, r"init_from='/no/such/dir' does not exist"),
    ({"train.num_epochs": 0.0, "train.num_steps": 0}, r"train\.num_epochs"),
])
def test_bad_config_stops_before_compiling(tmp_path, monkeypatch, overrides, message):
    def no_compile(*args, **kwargs):
        raise AssertionError("compiled before validating")

    monkeypatch.setattr(finetune_lib, "Parallel", no_compile)
    with pytest.raises(ConfigError, match=message):
        finetune_lib.finetune(make_config(**overrides), str(tmp_path / "w"))
    assert not os.path.exists(tmp_path / "w")


def test_default_config_fields_are_commented_defaults():
    c = default_finetune_config()
    for field in ("seed", "init_from", "task", "model.hidden_dropout", "model.attention_dropout",
                  "data.local_dir", "data.sample", "data.vocab_path", "data.lowercase",
                  "data.max_seq_len", "data.doc_stride", "data.max_query_length",
                  "train.num_steps", "train.batch_size", "train.learning_rate",
                  "train.warmup_steps", "train.weight_decay", "train.layerwise_lr_decay",
                  "train.log_every", "train.checkpoint_every", "train.eval_every",
                  "train.eval_batch_size", "train.parallel", "decode.n_best_size",
                  "decode.max_answer_length", "decode.null_score_diff_threshold"):
        node = c
        for part in field.split("."):
            node = node[part]


def test_ambert_run_on_samples(tmp_path):
    """A tiny AMBERT fine-tuned end to end: coarse inputs from the committed phrase vocab,
    eval rows and predictions as for BERT."""
    from bert_jax.data.phrases import DEFAULT_PATH

    config = make_config(**{"train.num_steps": 2, "train.eval_every": 0,
                            "data.coarse_vocab_path": DEFAULT_PATH})
    config.model = model_config_dict("tiny", family="ambert", **TINY, coarse_vocab_size=8192,
                                     hidden_dropout=0.0, attention_dropout=0.0)
    workdir = str(tmp_path / "w")
    final = finetune_lib.finetune(config, workdir)
    assert set(final) == {"accuracy"} and [r["step"] for r in _rows(workdir)] == [1, 2]
    features = [f for f in os.listdir(os.path.join(workdir, "features")) if "train" in f]
    with np.load(os.path.join(workdir, "features", features[0])) as f:
        assert f["coarse_start"].shape == f["input_ids"].shape
        assert (f["coarse_start"][:, 0] == 1).all() and (f["coarse_ids"][:, 0] == 2).all()


def test_ambert_init_from_its_pretraining_workdir(tmp_path):
    """An AMBERT pretraining workdir warm-starts AMBERT fine-tuning: every tensor of both
    embeddings, the encoder and the poolers equals the checkpoint's; only the three
    classifiers are new. A BERT checkpoint under an AMBERT config is refused."""
    from bert_jax.config import model_config_from
    from bert_jax.data.phrases import DEFAULT_PATH
    from bert_jax.modeling.models import pretraining_model

    model = model_config_from(model_config_dict("tiny", family="ambert", **TINY,
                                                coarse_vocab_size=8192))
    pre_params = init_params(pretraining_model(model), jax.random.key(42))
    pre_dir = _pretraining_workdir(tmp_path / "pre", model, pre_params)
    config = make_config(init_from=str(pre_dir),
                         **{"data.coarse_vocab_path": DEFAULT_PATH})
    task, run_model, pretrained = finetune_lib.resolve_model(config)
    assert run_model.coarse_vocab_size == 8192 and config.model.family == "ambert"
    fresh = init_params(task_model(run_model, task.kind, task.num_labels), jax.random.key(1))
    params, new = finetune_lib.warm_start(fresh, config, run_model, pretrained,
                                          jax.random.key(1))
    assert new == [f"{head}/{p}" for head in ("classifier", "classifier_coarse",
                                              "classifier_fine") for p in ("bias", "kernel")]
    flat, pre = (traverse_util.flatten_dict(p, sep="/") for p in (params, pre_params))
    shared = set(flat) - set(new)
    assert any(k.startswith("coarse_embeddings/") for k in shared) and len(shared) > 20
    for name in shared:
        np.testing.assert_array_equal(np.asarray(flat[name]), np.asarray(pre[name]), name)

    bert = model_config_from(make_config().model)
    bert_dir = _pretraining_workdir(tmp_path / "bert", bert,
                                    init_params(BertForPreTraining(bert), jax.random.key(0)))
    config = make_config(init_from=str(bert_dir), **{"data.coarse_vocab_path": DEFAULT_PATH})
    config.model = model_config_dict("tiny", family="ambert", **TINY, coarse_vocab_size=8192)
    with pytest.raises(ConfigError, match=r"run's model is AMBERT but init_from"):
        finetune_lib.resolve_model(config)


def test_cli_demo_and_one_line_errors(tmp_path):
    """`python -m experiments.finetune` (the demo, shortened) runs to predictions; an unknown
    task is one `error:` line and exit status 1."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    run = lambda *flags: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "experiments.finetune", *flags], cwd=root, text=True,
        capture_output=True, timeout=600)
    workdir = tmp_path / "demo"
    done = run(f"--workdir={workdir}", "--config.train.num_steps=3",
               "--config.train.eval_every=0", "--config.model.num_layers=1")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "best accuracy" in done.stdout
    assert os.path.exists(workdir / "predictions" / "validation" / "SST-2.tsv")
    bad = run("--config=configs/finetune/glue.py:sst3", f"--workdir={tmp_path / 'bad'}")
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines()[-1].startswith("error: unknown task 'sst3'")


@pytest.mark.slow
def test_finetune_ab_alternates_processes_with_and_without_the_override(tmp_path):
    """experiments/finetune_ab.py: process a runs with the override, b without; the summary
    is the ratio of their summary.json speeds; a second run into the same OUT is refused."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args = [sys.executable, "-m", "experiments.finetune_ab", str(tmp_path), "1",
            "--config.model.last_layer_subset=false", "--config.train.num_steps=4",
            "--config.train.eval_every=0", "--config.model.num_layers=1"]
    run = subprocess.run(args, cwd=root, text=True, capture_output=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    subset = {side: json.load(open(tmp_path / f"{side}_1" / "config.json"))["model"]
              ["last_layer_subset"] for side in "ab"}
    assert subset == {"a": False, "b": True}
    speed = {side: json.load(open(tmp_path / f"{side}_1" / "summary.json"))["tokens_per_sec"]
             for side in "ab"}
    last = run.stdout.strip().splitlines()[-1]
    assert last.startswith("a (--config.model.last_layer_subset=false): ")
    assert f"b is {speed['b'] / speed['a']:.3f}x the speed of a" in last
    again = subprocess.run(args, cwd=root, text=True, capture_output=True, timeout=600)
    assert again.returncode == 2 and "exists: give a new OUT" in again.stderr
