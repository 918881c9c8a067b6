"""The pretraining loop end to end on a small text corpus: workdir contract, exact resume
after a crash and after SIGTERM, and config errors raised before anything compiles."""

import json
import os
import shutil
import signal

import pytest

from bert_jax.config import ConfigError, default_pretrain_config, model_config_dict
from bert_jax.metrics.writers import read_metrics
from bert_jax.training import loop
from tests import synthetic
from tests.data.conftest import write_google_corpus

NUM_STEPS = 8


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("loop_data")
    return root, [str(write_google_corpus(root / "corpus.txt", 400, seed=3))]


def make_config(corpus, **overrides):
    root, files = corpus
    c = default_pretrain_config()
    c.seed = 5
    c.model = model_config_dict("tiny", vocab_size=8192, hidden_size=32, num_heads=2,
                                intermediate_size=64, max_position_embeddings=32,
                                hidden_dropout=0.0, attention_dropout=0.0)
    c.data.update(dict(corpus="text_files", text_files=files, tfds_data_dir=str(root / "tfds"),
                       cache_dir=str(root / "cache"), max_seq_len=32, dupe_factor=1))
    c.masking.max_predictions_per_seq = 5
    c.train.update(dict(num_steps=NUM_STEPS, batch_size=8, log_every=1, checkpoint_every=4,
                        eval_every=4, eval_batches=2, warmup_steps=2, learning_rate=1e-3,
                        max_to_keep=5, plots=False))
    for path, value in overrides.items():
        section, field = path.split(".") if "." in path else (None, path)
        (c[section] if section else c)[field] = value
    return c


@pytest.fixture(scope="module")
def finished_run(corpus, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("run") / "w")
    final = loop.train_and_evaluate(make_config(corpus, **{"train.plots": True}), workdir)
    return workdir, final


def _rows(workdir, split="train"):
    return [r for r in read_metrics(os.path.join(workdir, "metrics.jsonl"))
            if r["split"] == split]


def test_workdir_contract(finished_run):
    workdir, final = finished_run
    for name in ("config.json", "metrics.jsonl", "checkpoints", "tensorboard", "plots"):
        assert os.path.exists(os.path.join(workdir, name)), name
    config = json.load(open(os.path.join(workdir, "config.json")))
    assert config["seed"] == 5 and config["train"]["num_steps"] == NUM_STEPS
    train = _rows(workdir)
    assert [r["step"] for r in train] == list(range(1, NUM_STEPS + 1))
    for key in ("loss", "mlm_loss", "mlm_accuracy", "nsp_accuracy"):
        assert all(key in r for r in train), key
    assert [r["step"] for r in _rows(workdir, "eval")] == [4, 8]
    assert _rows(workdir, "eval")[-1]["mlm_loss"] == pytest.approx(final["mlm_loss"])
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["4", "8"]
    assert os.path.exists(os.path.join(workdir, "plots", "loss.png"))
    summary = json.load(open(os.path.join(workdir, "summary.json")))  # what sweeps tabulate
    assert (summary["num_params"], summary["step"], summary["finished"]) == (
        290818, NUM_STEPS, True)
    (run,) = summary["invocations"]
    assert (run["start_step"], run["end_step"], run["timed_steps"]) == (0, NUM_STEPS,
                                                                       NUM_STEPS - 1)
    assert summary["tokens_per_sec"] > 0 and summary["wall_time_s"] >= run["train_s"] > 0


@pytest.mark.parametrize("lost", [["8"], ["4", "8"]])  # the second: killed before step 4
def test_resume_after_crash_is_exact(corpus, finished_run, tmp_path, lost):
    """A run killed after its step-4 checkpoint, or before its first one (rows up to step 6
    already logged either way), and restarted continues with the very same losses, without
    duplicate rows."""
    reference, _ = finished_run
    workdir = str(tmp_path / "w")
    synthetic.crashed_copy(reference, workdir, lost, rows_through=6)
    loop.train_and_evaluate(make_config(corpus), workdir)
    assert _rows(workdir) == _rows(reference)
    assert _rows(workdir, "eval") == _rows(reference, "eval")


@pytest.mark.parametrize("signal_at", [3, 4])  # 4 is a periodic checkpoint step
def test_sigterm_saves_then_resume_is_exact(corpus, finished_run, tmp_path, monkeypatch,
                                            signal_at):
    reference, _ = finished_run
    workdir = str(tmp_path / "w")
    real = loop.make_train_iterator

    class SignalOnThirdBatch:
        def __init__(self, it):
            self.it, self.calls = it, 0

        def __next__(self):
            self.calls += 1
            if self.calls == signal_at:
                os.kill(os.getpid(), signal.SIGTERM)
            return next(self.it)

        def get_state(self):
            return self.it.get_state()

        def set_state(self, state):
            self.it.set_state(state)

    monkeypatch.setattr(loop, "make_train_iterator",
                        lambda *a, **k: SignalOnThirdBatch(real(*a, **k)))
    assert loop.train_and_evaluate(make_config(corpus), workdir) == {}
    # The request rides on the batch of step signal_at; its all-device max is read one step
    # late (the host runs a step ahead), so every process stops after step signal_at + 1.
    saved = sorted(int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")))
    periodic = [4] if signal_at + 1 > 4 else []  # checkpoint_every=4
    assert saved == periodic + [signal_at + 1]
    monkeypatch.setattr(loop, "make_train_iterator", real)
    loop.train_and_evaluate(make_config(corpus), workdir)
    assert _rows(workdir) == _rows(reference)


@pytest.mark.parametrize("overrides,field", [
    ({"model.hidden_size": 30, "model.num_heads": 4}, "model.hidden_size"),
    ({"train.batch_size": 12}, "train.batch_size"),  # 8 devices in the tests
    ({"data.max_seq_len": 64}, "data.max_seq_len"),  # longer than 32 positions
    ({"model.vocab_size": 1000}, "model.vocab_size"),  # the tokenizer has 8192
])
def test_bad_config_stops_before_compiling(corpus, tmp_path, monkeypatch, overrides, field):
    def no_compile(*args, **kwargs):
        raise AssertionError("validation must happen before building the step")
    monkeypatch.setattr(loop, "Parallel", no_compile)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        loop.train_and_evaluate(make_config(corpus, **overrides), str(tmp_path / "w"))
    assert not os.path.exists(tmp_path / "w" / "checkpoints")


def test_checkpoint_of_another_model_is_refused(corpus, finished_run, tmp_path):
    workdir = str(tmp_path / "w")
    shutil.copytree(finished_run[0], workdir)
    before = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
    with pytest.raises(ConfigError, match="belongs to another model"):
        loop.train_and_evaluate(make_config(corpus, **{"model.intermediate_size": 128}),
                                workdir)
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == before


def test_resume_check_reads_fields_added_since_as_their_defaults(corpus, tmp_path):
    """A config.json written before AMBERT's fields existed resumes under a config that has
    them at their defaults, and is refused when one of them differs."""
    config = make_config(corpus)
    saved = json.loads(json.dumps(config.to_dict(), default=str))
    del saved["data"]["coarse_vocab_path"], saved["model"]["coarse_vocab_size"]
    os.makedirs(tmp_path / "w")
    with open(tmp_path / "w" / "config.json", "w") as f:
        json.dump(saved, f)
    loop.check_resume_config(config, str(tmp_path / "w"))
    config.data.coarse_vocab_path = "phrases.txt"
    with pytest.raises(ConfigError, match="data.coarse_vocab_path: saved '', now"):
        loop.check_resume_config(config, str(tmp_path / "w"))


def test_resume_check_reads_a_run_from_before_last_layer_subset_as_off(corpus, tmp_path):
    """A run saved before model.last_layer_subset existed computed the whole last layer: it
    resumes with the field off, and is refused under the new default (whose dropout draws
    in that layer differ), naming the field."""
    config = make_config(corpus)
    saved = json.loads(json.dumps(config.to_dict(), default=str))
    del saved["model"]["last_layer_subset"]
    os.makedirs(tmp_path / "w")
    with open(tmp_path / "w" / "config.json", "w") as f:
        json.dump(saved, f)
    assert config.model.last_layer_subset
    with pytest.raises(ConfigError, match="model.last_layer_subset: saved False, now True"):
        loop.check_resume_config(config, str(tmp_path / "w"))
    config.model.last_layer_subset = False
    loop.check_resume_config(config, str(tmp_path / "w"))


def test_nonfinite_policy(corpus, tmp_path):
    """A learning rate of 1e30 blows the parameters up after one step: 'stop' ends the run
    with a clear error and finite checkpoints; 'skip' runs on, counting skipped updates."""
    blowup = {"train.learning_rate": 1e30, "train.warmup_steps": 0, "train.max_grad_norm": 0.0,
              "train.checkpoint_every": 1, "train.num_steps": 4}
    workdir = str(tmp_path / "stop")
    with pytest.raises(loop.NonFiniteError, match="non-finite loss or gradient at step"):
        loop.train_and_evaluate(make_config(corpus, **blowup, **{"train.nonfinite": "stop"}),
                                workdir)
    rows = _rows(workdir)
    assert rows[-1]["nonfinite"] == 1.0 and rows[0]["nonfinite"] == 0.0
    assert len({r["step"] for r in rows}) == len(rows)  # the stopping step logged once
    final = loop.train_and_evaluate(
        make_config(corpus, **blowup, **{"train.nonfinite": "skip"}), str(tmp_path / "skip"))
    rows = _rows(str(tmp_path / "skip"))
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["skipped_steps"] >= 1
    assert set(final) >= {"mlm_loss", "mlm_accuracy"}


@pytest.mark.parametrize("damage", ["state", "meta"])
def test_unreadable_newest_checkpoint_falls_back(corpus, finished_run, tmp_path, damage,
                                                 caplog):
    """Step 8's files damaged: the run restores step 4, says so, and redoes steps 5-8 to the
    same numbers."""
    reference, _ = finished_run
    workdir = str(tmp_path / "w")
    shutil.copytree(reference, workdir)
    shutil.rmtree(os.path.join(workdir, "checkpoints", "8", damage))
    with caplog.at_level("WARNING"):
        loop.train_and_evaluate(make_config(corpus), workdir)
    assert "checkpoint step 8" in caplog.text and "falling back to step 4" in caplog.text
    assert _rows(workdir) == _rows(reference)


def test_init_from_a_workdir(corpus, finished_run, tmp_path):
    """Starting from the finished run's parameters: the first loss is already the trained
    model's (far below a random init's), and a model that does not fit is refused."""
    reference, _ = finished_run
    pytest.importorskip("safetensors")
    workdir = str(tmp_path / "w")
    loop.train_and_evaluate(make_config(corpus, **{"train.init_from": reference,
                                                   "train.num_steps": 2}), workdir)
    assert _rows(workdir)[0]["mlm_loss"] < _rows(reference)[0]["mlm_loss"] - 0.1
    with pytest.raises(ConfigError, match=r"model\.intermediate_size"):
        loop.train_and_evaluate(make_config(corpus, **{"train.init_from": reference,
                                                       "model.intermediate_size": 128}),
                                str(tmp_path / "w2"))


def test_ambert_run_writes_fine_and_coarse_metrics(corpus, tmp_path):
    """A tiny AMBERT end to end (the committed phrase vocab over the test corpus)."""
    from bert_jax.data.phrases import DEFAULT_PATH

    config = make_config(corpus, **{"train.num_steps": 4, "train.eval_every": 2,
                                    "data.sentence_task": "none",
                                    "data.coarse_vocab_path": DEFAULT_PATH,
                                    "masking.strategy": "coarse"})
    config.model = model_config_dict("tiny", family="ambert", vocab_size=8192,
                                     coarse_vocab_size=8192, hidden_size=32, num_heads=2,
                                     intermediate_size=64, max_position_embeddings=32,
                                     hidden_dropout=0.0, attention_dropout=0.0)
    workdir = str(tmp_path / "w")
    final = loop.train_and_evaluate(config, workdir)
    metrics = ("loss", "mlm_loss", "mlm_accuracy", "mlm_accuracy_fine", "mlm_accuracy_coarse",
               "mlm_loss_fine", "mlm_loss_coarse")
    for split in ("train", "eval"):
        rows = _rows(workdir, split)
        assert rows and all(k in r for r in rows for k in metrics), split
        assert all(r["loss"] == pytest.approx(r["mlm_loss"] + r["mlm_loss_coarse"])
                   for r in rows)
    assert [r["step"] for r in _rows(workdir, "eval")] == [2, 4]
    assert final["mlm_accuracy_coarse"] == _rows(workdir, "eval")[-1]["mlm_accuracy_coarse"]
    assert "nsp_accuracy" not in _rows(workdir)[0]
