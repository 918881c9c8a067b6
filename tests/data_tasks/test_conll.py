"""CoNLL-2003: reader, IOB1 -> IOB2, first-piece labels, word tags back, conlleval file."""
import numpy as np
import pytest

from bert_jax.data import DataError, tasks
from bert_jax.data.tasks import common, conll
from bert_jax.metrics.tasks import chunks

TASK = tasks.get_task("conll2003")


def test_to_iob2():
    assert conll.to_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG", "I-MISC"]) == [
        "B-PER", "I-PER", "O", "B-LOC", "B-LOC", "B-ORG", "B-MISC"]
    iob2 = ["B-PER", "I-PER", "B-PER", "O", "B-ORG"]
    assert conll.to_iob2(iob2) == iob2


def test_samples():
    counts = {s: len(tasks.load_examples(TASK, s, sample=True)) for s in TASK.splits}
    assert counts == {"train": 12, "validation": 6, "test": 4}
    train = tasks.load_examples(TASK, "train", sample=True)
    assert train[0].words[:2] == ("Maria", "Lopez") and train[0].id == 0
    # "The France Italy match": IOB1 I-LOC B-LOC -> IOB2 B-LOC B-LOC, two entities.
    assert train[1].tags[:3] == ("O", "B-LOC", "B-LOC")
    assert chunks(train[1].tags) == {("LOC", 1, 1), ("LOC", 2, 2)}
    assert all(set(e.tags) <= set(conll.TAGS) for e in train)


def test_reader_on_temp_file(tmp_path):
    (tmp_path / "eng.testa").write_text(
        "-DOCSTART- -X- -X- O\n\nPeter NNP I-NP I-PER\nsaw VBD I-VP O\n\n\n"
        "-DOCSTART- -X- O O\n\nRome NNP I-NP I-LOC\n")  # No final blank line.
    examples = tasks.load_examples(TASK, "validation", str(tmp_path))
    assert examples == [conll.ConllExample(0, ("Peter", "saw"), ("B-PER", "O")),
                        conll.ConllExample(1, ("Rome",), ("B-LOC",))]
    (tmp_path / "eng.testb").write_text("Peter NNP I-NP I-PERSON\n\n")
    with pytest.raises(DataError, match=r"eng.testb: NER tag\(s\) \['I-PERSON'\]"):
        tasks.load_examples(TASK, "test", str(tmp_path))


def test_tfds_records(monkeypatch):
    calls = []

    def records(name, split, data_dir=""):
        calls.append((name, split))
        return [{"tokens": np.array([b"EU", b"rejects", b"German"]), "ner": np.array([3, 0, 7]),
                 "pos": np.array([0, 0, 0]), "chunks": np.array([0, 0, 0])}]

    monkeypatch.setattr(common, "tfds_records", records)
    examples = tasks.load_examples(TASK, "validation")
    assert calls == [("conll2003", "dev")]
    assert examples == [conll.ConllExample(0, ("EU", "rejects", "German"),
                                           ("B-ORG", "O", "B-MISC"))]


def _pieces(tokenizer, word):
    return tokenizer.encode_batch([word])[0][0].tolist()


def test_labels_on_first_pieces_only(tokenizer):
    words = ("Northwind", "Bank", "hired", "Okonkwo")
    example = conll.ConllExample(0, words, ("B-ORG", "I-ORG", "O", "B-PER"))
    f = tasks.featurize(TASK, [example], tokenizer, 32)
    pieces = [_pieces(tokenizer, w) for w in words]
    assert max(len(p) for p in pieces) > 1  # Some word has several pieces.
    flat = [tokenizer.cls_id] + [i for p in pieces for i in p] + [tokenizer.sep_id]
    assert f["input_ids"][0, :len(flat)].tolist() == flat
    firsts = np.cumsum([1] + [len(p) for p in pieces[:-1]])  # Row positions of first pieces.
    want_weights = np.zeros(32, np.float32)
    want_weights[firsts] = 1
    np.testing.assert_array_equal(f["label_weights"][0], want_weights)
    want_labels = np.zeros(32, np.int32)
    want_labels[firsts] = [conll.TAGS.index(t) for t in example.tags]
    np.testing.assert_array_equal(f["labels"][0], want_labels)
    assert f["_word_index"][0][firsts].tolist() == [0, 1, 2, 3]
    assert (f["_word_index"][0] >= 0).sum() == 4
    assert f["labels"].dtype == np.int32 and f["label_weights"].dtype == np.float32


def test_truncation_keeps_shapes_and_drops_weights(tokenizer):
    examples = tasks.load_examples(TASK, "train", sample=True)
    f = tasks.featurize(TASK, examples, tokenizer, 8)
    assert f["input_ids"].shape == f["labels"].shape == f["label_weights"].shape == (12, 8)
    assert (f["attention_mask"].sum(1) <= 8).all()
    for row, example in enumerate(examples):
        ids = f["input_ids"][row][f["attention_mask"][row] > 0]
        assert ids[0] == tokenizer.cls_id and ids[-1] == tokenizer.sep_id
        kept = f["_word_index"][row][f["_word_index"][row] >= 0].tolist()
        assert kept == list(range(len(kept))) and f["label_weights"][row].sum() == len(kept)
    assert f["label_weights"].sum() < sum(len(e.words) for e in examples)  # Some words cut.
    test = conll.ConllExample(0, ("Rome",), None)
    assert tasks.featurize(TASK, [test], tokenizer, 8)["label_weights"].sum() == 0


def test_postprocess_recovers_word_tags(tokenizer):
    examples = tasks.load_examples(TASK, "validation", sample=True)
    f = tasks.featurize(TASK, examples, tokenizer, 10)  # Cuts the longer sentences.
    logits = np.zeros(f["input_ids"].shape + (len(conll.TAGS),), np.float32)
    logits[..., 0] = 1.0  # "O" everywhere, the gold tag at first pieces.
    rows, cols = np.nonzero(f["label_weights"])
    logits[rows, cols, f["labels"][rows, cols]] = 5.0
    predictions = tasks.postprocess(TASK, examples, f, {"logits": logits})
    for example, tags in zip(examples, predictions):
        n = len(tags)
        assert n == len(example.words)
        kept = (f["_word_index"][example.id] >= 0).sum()
        assert tags[:kept] == list(example.tags[:kept]) and tags[kept:] == ["O"] * (n - kept)
    scores = tasks.evaluate(TASK, examples, predictions)
    assert scores["recall"] < 1  # Cut words are "O": their entities are missed.
    full = tasks.featurize(TASK, examples, tokenizer, 64)
    logits = np.eye(len(conll.TAGS), dtype=np.float32)[full["labels"]]
    predictions = tasks.postprocess(TASK, examples, full, {"logits": logits})
    assert tasks.evaluate(TASK, examples, predictions) == {
        "precision": 1.0, "recall": 1.0, "f1": 1.0, "accuracy": 1.0}


def test_write_predictions(tmp_path):
    examples = [conll.ConllExample(0, ("Peter", "ran"), ("B-PER", "O")),
                conll.ConllExample(1, ("Rome",), None)]
    path = tmp_path / "conll.txt"
    tasks.write_predictions(TASK, examples, [["B-PER", "B-LOC"], ["B-LOC"]], str(path))
    assert path.read_text() == "Peter B-PER B-PER\nran O B-LOC\n\nRome B-LOC\n\n"
