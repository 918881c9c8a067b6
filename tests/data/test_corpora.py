"""Corpora: the embedded corpus, text_files parsing, splits, cache keys, bad inputs."""
import pytest

from bert_jax.data import corpora


def _ids(docs):
    return [docs._source[i]["id"] for i in range(len(docs))]


def test_embedded_corpus_size_and_disjoint_splits(embedded):
    _, train, val = embedded
    n_docs = len(train) + len(val)
    words = sum(len(s.split()) for docs in (train, val) for d in docs for s in d)
    assert 1000 < n_docs < 6000, n_docs
    assert 150_000 < words < 600_000, words
    assert 0.015 < len(val) / n_docs < 0.06, (len(val), n_docs)
    train_ids, val_ids = set(_ids(train)), set(_ids(val))
    assert not train_ids & val_ids
    assert all(corpora.is_validation(i.decode()) for i in val_ids)
    assert any(i.startswith(b"topic:") for i in train_ids | val_ids)  # pydoc topics are in.
    assert all(d and all(len(s.split()) >= 2 for s in d) for d in train[:200])


def test_embedded_build_is_keyed_on_python_and_text(embedded, monkeypatch):
    cfg, train, _ = embedded
    py = corpora._python_version().replace(".", "_")
    assert f"/py{py}_" in train.identity and "@" in train.identity
    built = corpora._embedded_config(corpora._embedded_fingerprint())
    monkeypatch.setattr(corpora, "_python_version", lambda: "3.99.0")
    other = corpora._embedded_config(corpora._embedded_fingerprint())
    assert other.name != built.name and "py3_99_0_" in other.name  # Another build dir.
    # Even if the name collided, a build made from other inputs is refused, not reused.
    monkeypatch.setattr(corpora, "_embedded_config", lambda fingerprint: built)
    with pytest.raises(RuntimeError, match="built from other inputs"):
        corpora.load_documents(cfg, "train")


def test_text_file_parsing(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("\n\nFirst  sentence\there.\nSecond one.\n\n \n\nOnly one.\nx\n\n\n"
                    "Last, no newline.")
    docs = list(corpora.text_file_documents(str(path)))
    assert [d for _, d in docs] == [["First sentence here.", "Second one."], ["Only one.", "x"],
                                    ["Last, no newline."]]
    assert len({i for i, _ in docs}) == 3
    assert [i for i, _ in corpora.text_file_documents(str(path), "c.txt")] == [
        "c.txt#0", "c.txt#1", "c.txt#2"]


def test_text_files_splits(make_cfg):
    cfg = make_cfg()
    train, val = corpora.load_documents(cfg, "train"), corpora.load_documents(cfg, "validation")
    assert len(train) + len(val) == 500
    assert 3 <= len(val) <= 40
    assert not set(_ids(train)) & set(_ids(val))
    assert train.identity != val.identity and train.identity.startswith("bert_jax_text_files/")


def test_text_files_rebuild_when_files_change(tmp_path, make_cfg):
    path = tmp_path / "c.txt"
    path.write_text("A first sentence.\nA second sentence.\n\nAnother document here.\n")
    cfg = make_cfg(text_files=[str(path)])
    before = corpora.load_documents(cfg, "train")
    path.write_text("Completely new text.\nWith two lines.\n\nAnd a second doc.\n\nThird doc.\n")
    after = corpora.load_documents(cfg, "train")
    assert before.identity != after.identity
    assert sum(len(d) for d in after) + sum(
        len(d) for d in corpora.load_documents(cfg, "validation")) == 4


@pytest.mark.parametrize("text,expected", [
    ("Returns x. See os.path.join for e.g. Foo. Version 3.11. Done now! By J. Smith.",
     ["Returns x.", "See os.path.join for e.g. Foo.", "Version 3.11.", "Done now!",
      "By J. Smith."]),
    ("Args:\n  x: the value\n  y: other value\n\n>>> f(1)\n2\n",
     ["x: the value", "y: other value"]),
    ("A wrapped\n   paragraph line.   (A parenthesis.) Next one",
     ["A wrapped paragraph line.", "(A parenthesis.)", "Next one"]),
    ("---\n\n====\n\n", []),
])
def test_split_sentences(text, expected):
    assert corpora.split_sentences(text) == expected


def test_non_utf8_file_names_the_file(tmp_path, make_cfg):
    path = tmp_path / "latin1.txt"
    path.write_bytes("Un caf\u00e9 noir.\nDeux.\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt, line 1: not valid UTF-8"):
        corpora.load_documents(make_cfg(text_files=[str(path)]), "train")


def test_missing_text_files(make_cfg, tmp_path):
    with pytest.raises(FileNotFoundError, match="data.text_files"):
        corpora.load_documents(make_cfg(text_files=[str(tmp_path / "nope-*.txt")]), "train")
    with pytest.raises(ValueError, match="data.text_files"):
        corpora.load_documents(make_cfg(text_files=[]), "train")
