"""Tests for bert_jax.metrics.writers: the metrics.jsonl contract, resume, TensorBoard."""

import glob
import json
import os

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from bert_jax.metrics import writers
from bert_jax.metrics.writers import MetricsWriter, read_metrics, write_config


def _writer(path, **kwargs):
    return MetricsWriter(path, tensorboard=False, **kwargs)


def test_rows_round_trip_with_exact_values(tmp_path):
    values = {
        "loss": np.float32(2.3456789),  # Not representable in binary: every bit must survive.
        "mlm_loss": 0.1,
        "mlm_accuracy": jnp.asarray(0.3, dtype=jnp.float32),  # A device value.
        "bf16": jnp.asarray(1.7, dtype=jnp.bfloat16),
        "count": np.int32(7),
        "zero_d": np.array(1e-30),
        "tiny": float(np.finfo(np.float64).tiny),
    }
    with _writer(tmp_path) as w:
        w.write(10, "train", values)
        w.write(np.int64(20), "eval", {"mlm_loss": jnp.float32(1.25)})
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert rows[0] == {"step": 10, "split": "train",
                       **{k: float(np.asarray(v)) for k, v in values.items()}}
    assert rows[0]["loss"] == float(np.float32(2.3456789))
    assert rows[1] == {"step": 20, "split": "eval", "mlm_loss": 1.25}
    assert all(type(v) is float for k, v in rows[0].items() if k not in ("step", "split"))
    assert type(rows[1]["step"]) is int


def test_nan_is_kept(tmp_path):
    with _writer(tmp_path) as w:
        w.write(1, "train", {"loss": np.float32("nan")})
    assert np.isnan(read_metrics(tmp_path / "metrics.jsonl")[0]["loss"])


@pytest.mark.parametrize("split, metrics", [
    ("test", {"loss": 1.0}),
    ("Train", {"loss": 1.0}),
    ("train", {"loss": np.ones(2)}),
    ("train", {"loss": jnp.ones((1,))}),
    ("train", {"loss": "1.0"}),
    ("train", {"loss": None}),
    ("train", {"step": 1.0}),
])
def test_bad_rows_rejected_and_nothing_written(tmp_path, split, metrics):
    with _writer(tmp_path) as w:
        with pytest.raises(ValueError):
            w.write(1, split, metrics)
    assert read_metrics(tmp_path / "metrics.jsonl") == []


def _fill(w):
    for step in range(1, 11):
        w.write(step, "train", {"loss": 10.0 / step})
        if step % 5 == 0:
            w.write(step, "eval", {"mlm_loss": 1.0 / step})


def test_truncate_after_keeps_exactly_rows_up_to_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    with _writer(tmp_path) as w:
        _fill(w)
        before = path.read_text().splitlines()
        assert w.truncate_after(5) == 6  # Train steps 6..10 and the eval row at 10.
        # Kept lines are byte-for-byte the lines that were there.
        assert path.read_text().splitlines() == [l for l in before if json.loads(l)["step"] <= 5]
        # The writer appends to the new file, not to the replaced one behind its old handle.
        w.write(6, "train", {"loss": 0.5})
    rows = read_metrics(path)
    assert [(r["step"], r["split"]) for r in rows] == (
        [(s, "train") for s in range(1, 6)] + [(5, "eval"), (6, "train")])
    assert os.listdir(tmp_path) == ["metrics.jsonl"]  # No temporary file left behind.


def test_truncate_after_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    w = _writer(tmp_path)
    _fill(w)
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(writers.os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        w.truncate_after(3)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["metrics.jsonl"]
    monkeypatch.undo()
    w.write(11, "train", {"loss": 1.0})  # Still usable after the failure.
    w.close()
    assert read_metrics(path)[-1]["step"] == 11


def test_reading_tolerates_a_truncated_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    with _writer(tmp_path) as w:
        _fill(w)
    with open(path, "a") as f:
        f.write('{"step": 11, "split": "tra')  # What a crash mid-write leaves.
    with pytest.warns(UserWarning, match="truncated"):
        assert len(read_metrics(path)) == 12
    # A writer resuming on this file cuts the partial line off before appending.
    with _writer(tmp_path) as w:
        w.write(11, "train", {"loss": 1.0})
    rows = read_metrics(path)
    assert len(rows) == 13 and rows[-1]["step"] == 11


def test_complete_but_unterminated_last_row_is_kept(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "split": "train", "loss": 2.0}')  # Hand-edited: no newline.
    with _writer(tmp_path) as w:
        w.write(2, "train", {"loss": 1.0})
    assert [r["step"] for r in read_metrics(path)] == [1, 2]


def test_damage_in_the_middle_is_an_error(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "split": "train"}\nnot json\n{"step": 2, "split": "train"}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_metrics(path)


def test_disabled_writer_writes_nothing(tmp_path):
    workdir = tmp_path / "run"
    w = MetricsWriter(workdir, enabled=False)  # TensorBoard on: must not touch it either.
    w.write(1, "train", {"loss": 1.0})
    assert w.truncate_after(0) == 0
    w.close()
    assert not workdir.exists()


def test_write_after_close_raises(tmp_path):
    w = _writer(tmp_path)
    w.close()
    w.close()  # Idempotent.
    with pytest.raises(RuntimeError):
        w.write(1, "train", {"loss": 1.0})


def test_write_config_sorted_indented_atomic(tmp_path):
    config = ml_collections.ConfigDict({"train": {"num_steps": 6, "batch_size": 8}, "seed": 3,
                                        "model": {"dtype": "bfloat16", "dropout": 0.1}})
    path = write_config(tmp_path / "run", config)
    text = open(path).read()
    assert json.loads(text) == config.to_dict()
    assert text.startswith('{\n  "model": {\n    "dropout": 0.1,')
    assert os.listdir(tmp_path / "run") == ["config.json"]
    # np scalars and non-JSON objects still produce a readable file.
    write_config(tmp_path / "run", {"lr": np.float32(0.5), "dtype": jnp.bfloat16})
    assert json.load(open(path))["lr"] == 0.5


def test_tensorboard_event_files_hold_the_values(tmp_path):
    import tensorflow as tf

    with MetricsWriter(tmp_path) as w:
        w.write(3, "train", {"loss": 2.5, "mlm_accuracy": np.float32(0.25)})
        w.write(3, "eval", {"mlm_loss": 1.5})
    found = {}
    for split in ("train", "eval"):
        files = glob.glob(str(tmp_path / "tensorboard" / split / "events.out.tfevents.*"))
        assert len(files) == 1
        for event in tf.compat.v1.train.summary_iterator(files[0]):
            for value in event.summary.value:
                found[(split, value.tag, event.step)] = float(tf.make_ndarray(value.tensor))
    assert found == {("train", "loss", 3): 2.5, ("train", "mlm_accuracy", 3): 0.25,
                     ("eval", "mlm_loss", 3): 1.5}
