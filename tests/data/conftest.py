"""Session-wide corpora for the data tests: built once in tmp dirs, never in ~/."""
import numpy as np
import pytest
import tensorflow_datasets as tfds

from bert_jax.data import pipeline
from bert_jax.data import tokenizer as tokenizer_lib

tfds.display_progress_bar(False)


def write_google_corpus(path, num_docs, seed, min_sents=1, max_sents=8):
    """A google-format file of random sentences over whole-word tokens of the default vocab."""
    words = [t for t in open(tokenizer_lib.DEFAULT_VOCAB_PATH, encoding="utf-8").read().split()
             if t.isalpha() and len(t) >= 3][:400]
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(num_docs):
        sents = [" ".join(rng.choice(words, rng.integers(4, 16))).capitalize() + "."
                 for _ in range(rng.integers(min_sents, max_sents + 1))]
        docs.append("\n".join(sents))
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def text_files(data_root):
    """Two files, 500 documents of 1-8 sentences in all."""
    d = data_root / "text"
    d.mkdir()
    return [str(write_google_corpus(d / "part-0.txt", 250, 0)),
            str(write_google_corpus(d / "part-1.txt", 250, 1))]


@pytest.fixture(scope="session")
def embedded(data_root):
    """(data config, train documents, validation documents) of the embedded corpus."""
    from bert_jax.data import corpora
    cfg = pipeline.default_data_config()
    cfg.tfds_data_dir = str(data_root / "tfds")
    return cfg, corpora.load_documents(cfg, "train"), corpora.load_documents(cfg, "validation")


@pytest.fixture
def make_cfg(data_root, text_files):
    """Returns data configs on the session's text corpus; fields overridable."""
    def make(**overrides):
        cfg = pipeline.default_data_config()
        cfg.tfds_data_dir = str(data_root / "tfds")
        cfg.cache_dir = str(data_root / "cache")
        cfg.corpus = "text_files"
        cfg.text_files = list(text_files)
        cfg.max_seq_len = 32
        cfg.dupe_factor = 1
        cfg.update(overrides)
        return cfg
    return make
