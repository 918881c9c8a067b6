"""Trains an uncased WordPiece vocab on the embedded corpus and writes Google `vocab.txt`.

  python -m bert_jax.data.make_vocab --out bert_jax/data/vocab/embedded_uncased_8k.txt \
      --vocab_size 8192

Specials come first: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4. HF's WordPiece trainer is
not deterministic (parallel merges tie-break differently run to run), which is why the
project commits the file it produced instead of regenerating it; tests never compare
freshly trained ids.
"""
from __future__ import annotations

import os
import tempfile

from absl import app
from absl import flags
from tokenizers.implementations import BertWordPieceTokenizer

from bert_jax.data import corpora
from bert_jax.data import tokenizer as tokenizer_lib

_OUT = flags.DEFINE_string("out", tokenizer_lib.DEFAULT_VOCAB_PATH, "vocab.txt to write.")
_VOCAB_SIZE = flags.DEFINE_integer("vocab_size", 8192, "Number of tokens incl. specials.")
_MIN_FREQUENCY = flags.DEFINE_integer("min_frequency", 2, "Rarer pairs are not merged.")
_TFDS_DATA_DIR = flags.DEFINE_string("tfds_data_dir", None, "Where the corpus is built.")


def train_vocab(sentences, vocab_size: int, min_frequency: int = 2) -> list[str]:
    """Returns the trained vocab as a list of tokens, index = id, SPECIAL_TOKENS first."""
    tok = BertWordPieceTokenizer(lowercase=True, strip_accents=True, clean_text=True,
                                 handle_chinese_chars=True)
    tok.train_from_iterator(sentences, vocab_size=vocab_size, min_frequency=min_frequency,
                            special_tokens=list(tokenizer_lib.SPECIAL_TOKENS),
                            limit_alphabet=1000, wordpieces_prefix="##", show_progress=False)
    by_id = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    tokens = [t for t, _ in by_id]
    # Google's format identifies tokens by line number: ids must be 0..V-1 without gaps.
    assert [i for _, i in by_id] == list(range(len(by_id))), "vocab ids have gaps"
    assert tuple(tokens[:5]) == tokenizer_lib.SPECIAL_TOKENS, tokens[:5]
    return tokens


def write_vocab(tokens: list[str], path: str) -> None:
    """Writes one token per line, atomically (temp file + rename)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.writelines(t + "\n" for t in tokens)
    os.replace(tmp, path)


def main(argv):
    del argv
    import ml_collections  # pylint: disable=g-import-not-at-top
    cfg = ml_collections.ConfigDict(dict(corpus="embedded", text_files=[], text_feature="text",
                                         tfds_data_dir=_TFDS_DATA_DIR.value))
    docs = corpora.load_documents(cfg, "train")  # Never the validation split.
    sentences = [s for i in range(len(docs)) for s in docs[i]]
    tokens = train_vocab(sentences, _VOCAB_SIZE.value, _MIN_FREQUENCY.value)
    write_vocab(tokens, _OUT.value)
    print(f"wrote {len(tokens)} tokens to {_OUT.value} (trained on {len(docs)} documents, "
          f"{len(sentences)} sentences; corpus {docs.identity})")


if __name__ == "__main__":
    app.run(main)
