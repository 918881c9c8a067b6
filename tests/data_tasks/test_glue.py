"""GLUE: readers (samples, TSV quirks, TFDS records), features, decoding, scores, files."""
import numpy as np
import pytest

from bert_jax.config import ConfigError
from bert_jax.data import DataError, tasks
from bert_jax.data.tasks import common, glue

GLUE = ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"]


@pytest.mark.parametrize("name", GLUE)
def test_samples_every_split(name):
    task = tasks.get_task(name)
    for split in task.splits:
        examples = tasks.load_examples(task, split, sample=True)
        assert examples, split
        assert [e.id for e in examples] == list(range(len(examples)))
        assert all(e.text_a for e in examples)
        assert all((e.text_b is not None) == (name not in ("cola", "sst2")) for e in examples)
        labels = [e.label for e in examples]
        if split in task.test_splits:
            assert labels == [None] * len(labels)
        elif task.kind == "regression":
            assert all(isinstance(y, float) and 0 <= y <= 5 for y in labels)
        else:
            assert set(labels) == set(range(task.num_labels)), split  # Every class present.


def test_sample_quirks_are_read():
    mrpc = tasks.load_examples(tasks.get_task("mrpc"), "train", sample=True)
    assert mrpc[6].text_a == '"We are pleased with the result," the coach said.'
    stsb = tasks.load_examples(tasks.get_task("stsb"), "train", sample=True)
    assert stsb[8].text_a == '"A woman is cooking rice.'  # Unbalanced quote kept.
    assert stsb[11].label == pytest.approx(1.53333333333333)
    cola = tasks.load_examples(tasks.get_task("cola"), "validation", sample=True)
    assert cola[1] == glue.GlueExample(1, "The teacher explained clearly lesson the the.", None, 0)


def _write(path, text, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)


def test_tsv_quirks_on_temp_files(tmp_path):
    # MRPC: BOM before the header, quotes in sentences; CoLA: no header, no final newline.
    _write(tmp_path / "MRPC" / "dev.tsv",
           'Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n'
           '1\t1\t2\t"Hi," she said.\tShe said "hi.\n0\t3\t4\tA b.\tC d.\n', "utf-8-sig")
    _write(tmp_path / "CoLA" / "dev.tsv", "src\t1\t\tGood one.\nsrc\t0\t*\tOne good the.")
    mrpc = tasks.load_examples(tasks.get_task("mrpc"), "validation", str(tmp_path))
    assert mrpc == [glue.GlueExample(0, '"Hi," she said.', 'She said "hi.', 1),
                    glue.GlueExample(1, "A b.", "C d.", 0)]
    # local_dir may also be the task's folder itself.
    cola = tasks.load_examples(tasks.get_task("cola"), "validation", str(tmp_path / "CoLA"))
    assert [(e.text_a, e.label) for e in cola] == [("Good one.", 1), ("One good the.", 0)]


def test_tsv_errors_name_the_file(tmp_path):
    _write(tmp_path / "RTE" / "dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n")
    with pytest.raises(DataError, match=r"RTE/dev.tsv: label 'maybe' is not one of"):
        tasks.load_examples(tasks.get_task("rte"), "validation", str(tmp_path))
    _write(tmp_path / "QNLI" / "dev.tsv", "index\tsentence1\tsentence2\tlabel\n")
    with pytest.raises(DataError, match=r"no column\(s\) \['question', 'sentence'\]"):
        tasks.load_examples(tasks.get_task("qnli"), "validation", str(tmp_path))


def test_short_rows_are_skipped(tmp_path):
    _write(tmp_path / "QQP" / "train.tsv",
           "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
           "0\t1\t2\tWhy?\tHow?\t0\n1\t3\t4\tbroken row\n2\t5\t6\tA?\tB?\t1\n")
    examples = tasks.load_examples(tasks.get_task("qqp"), "train", str(tmp_path))
    assert [(e.id, e.text_a, e.label) for e in examples] == [(0, "Why?", 0), (1, "A?", 1)]


def test_tfds_records(monkeypatch):
    calls = []

    def records(name, split, data_dir=""):
        calls.append((name, split))
        return [{"idx": 0, "premise": b"A p.", "hypothesis": b"A h.", "label": 2},
                {"idx": 1, "premise": b"B p.", "hypothesis": b"B h.", "label": -1}]

    monkeypatch.setattr(common, "tfds_records", records)
    examples = tasks.load_examples(tasks.get_task("mnli"), "validation_mismatched")
    assert calls == [("glue/mnli", "validation_mismatched")]
    assert examples == [glue.GlueExample(0, "A p.", "A h.", 2),
                        glue.GlueExample(1, "B p.", "B h.", None)]
    stsb = glue.from_tfds_record(tasks.get_task("stsb"), {
        "idx": 3, "sentence1": b"x", "sentence2": b"y", "label": np.float32(3.2)})
    assert stsb.label == pytest.approx(3.2) and isinstance(stsb.label, float)


def test_featurize_pair_framing(tokenizer):
    task = tasks.get_task("rte")
    examples = [glue.GlueExample(0, "the cat sat", "a dog ran", 1)]
    f = tasks.featurize(task, examples, tokenizer, 16)
    a = tokenizer.encode_batch(["the cat sat"])[0][0].tolist()
    b = tokenizer.encode_batch(["a dog ran"])[0][0].tolist()
    ids = [tokenizer.cls_id, *a, tokenizer.sep_id, *b, tokenizer.sep_id]
    n = len(ids)
    assert f["input_ids"][0].tolist() == ids + [tokenizer.pad_id] * (16 - n)
    assert f["token_type_ids"][0].tolist() == [0] * (len(a) + 2) + [1] * (len(b) + 1) + [0] * (16 - n)
    assert f["attention_mask"][0].tolist() == [1] * n + [0] * (16 - n)
    assert f["label"].tolist() == [1] and f["label"].dtype == np.int32
    assert all(f[k].dtype == np.int32 for k in ("input_ids", "attention_mask",
                                                 "token_type_ids", "example_index"))


def test_featurize_truncates_longest_first(tokenizer):
    task = tasks.get_task("mrpc")
    long_a = " ".join(["cat"] * 30)
    examples = [glue.GlueExample(0, long_a, "the cat", 0), glue.GlueExample(1, "x", None, 1)]
    f = tasks.featurize(task, examples, tokenizer, 12)
    assert f["input_ids"].shape == (2, 12)
    row = f["input_ids"][0].tolist()
    assert row.count(tokenizer.sep_id) == 2 and row[-1] == tokenizer.sep_id
    num_b = len(tokenizer.encode_batch(["the cat"])[0][0])
    assert num_b == 2
    assert f["token_type_ids"][0].sum() == num_b + 1  # b and its [SEP] kept whole: a was cut.
    assert f["attention_mask"][1].sum() == 3  # [CLS] x [SEP] of a single text.


def test_featurize_regression_and_test_labels(tokenizer):
    stsb = tasks.get_task("stsb")
    f = tasks.featurize(stsb, [glue.GlueExample(0, "a", "b", 3.5),
                               glue.GlueExample(1, "c", "d", None)], tokenizer, 8)
    assert f["label"].dtype == np.float32 and f["label"].tolist() == [3.5, 0.0]
    with pytest.raises(ConfigError, match="max_seq_len=3"):
        tasks.featurize(stsb, [glue.GlueExample(0, "a", "b", 1.0)], tokenizer, 3)


def test_postprocess_evaluate_write(tmp_path, tokenizer):
    task = tasks.get_task("mnli")
    examples = tasks.load_examples(task, "validation_matched", sample=True)
    features = tasks.featurize(task, examples, tokenizer, 32)
    logits = np.eye(3, dtype=np.float32)[[0, 2, 2]]  # Gold is 0, 1, 2.
    predictions = tasks.postprocess(task, examples, features, {"logits": logits})
    assert predictions == [0, 2, 2]
    assert tasks.evaluate(task, examples, predictions) == {"accuracy": pytest.approx(2 / 3)}
    path = tmp_path / "MNLI-m.tsv"
    tasks.write_predictions(task, examples, predictions, str(path))
    assert path.read_text() == "index\tprediction\n0\tentailment\n1\tcontradiction\n" \
                               "2\tcontradiction\n"


def test_regression_and_binary_metrics(tmp_path):
    stsb = tasks.get_task("stsb")
    examples = [glue.GlueExample(i, "a", "b", y) for i, y in enumerate([1.0, 2.0, 4.0])]
    features = {"example_index": np.array([2, 0, 1], np.int32)}  # Rows in any order.
    predictions = tasks.postprocess(stsb, examples, features,
                                    {"logits": np.array([[3.0], [0.5], [2.5]], np.float32)})
    assert predictions == [0.5, 2.5, 3.0]
    # Centred predictions (-1.5, .5, 1), labels (-4/3, -1/3, 5/3): 3.5 / sqrt(3.5 * 42/9).
    assert tasks.evaluate(stsb, examples, predictions) == pytest.approx(
        {"pearson": 0.75 ** 0.5, "spearman": 1.0})
    tasks.write_predictions(stsb, examples, predictions, str(tmp_path / "STS-B.tsv"))
    assert (tmp_path / "STS-B.tsv").read_text().splitlines()[1:] == [
        "0\t0.500", "1\t2.500", "2\t3.000"]
    mrpc = tasks.get_task("mrpc")
    labelled = [glue.GlueExample(i, "a", "b", y) for i, y in enumerate([1, 1, 0, 0])]
    # tp=1, fn=1, fp=1: f1 = 2/4; accuracy 2/4.
    assert tasks.evaluate(mrpc, labelled, [1, 0, 1, 0]) == {"f1": 0.5, "accuracy": 0.5}
    with pytest.raises(DataError, match="no label"):
        tasks.evaluate(mrpc, [glue.GlueExample(0, "a", "b", None)], [1])


@pytest.mark.parametrize("name", GLUE)
def test_gold_logits_score_one(tokenizer, name):
    task = tasks.get_task(name)
    examples = tasks.load_examples(task, task.eval_splits[-1], sample=True)
    features = tasks.featurize(task, examples, tokenizer, 64)
    if task.kind == "regression":
        logits = features["label"][:, None]
    else:
        logits = np.eye(task.num_labels, dtype=np.float32)[features["label"]]
    predictions = tasks.postprocess(task, examples, features, {"logits": logits})
    assert tasks.evaluate(task, examples, predictions) == pytest.approx(
        {k: 1.0 for k in task.metric_keys})
    with pytest.raises(ValueError, match="outputs\\['logits'\\] has 1 rows but"):
        tasks.postprocess(task, examples, features, {"logits": logits[:1]})
