"""Trains a vocabulary on the embedded corpus's train split, for each tokenizer kind.

The committed files were made with exactly these commands (from the repo root):

  python -m bert_jax.data.make_vocab --kind wordpiece \\
      --out bert_jax/data/vocab/embedded_uncased_8k.txt --vocab_size 8192
  python -m bert_jax.data.make_vocab --kind bpe \\
      --out bert_jax/data/vocab/embedded_cased_bpe_8k.json --vocab_size 8192
  python -m bert_jax.data.make_vocab --kind unigram \\
      --out bert_jax/data/vocab/embedded_uncased_unigram_8k.json --vocab_size 8192
  python -m bert_jax.data.make_vocab --kind phrases \\
      --out bert_jax/data/vocab/embedded_uncased_phrases_8k.txt --vocab_size 8192

- wordpiece: uncased BERT WordPiece, Google `vocab.txt`; [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3,
  [MASK]=4.
- bpe: cased byte-level BPE as RoBERTa's (no normalizer, ByteLevel pre-tokenizer with
  add_prefix_space so every word, the first included, starts with "Ġ"), a HF
  `tokenizer.json`; <s>=0, <pad>=1, </s>=2, <unk>=3, <mask>=V-1 (last, as in RoBERTa).
- unigram: uncased Unigram as ALBERT's spiece (whitespace runs -> " ", NFKD, strip accents,
  lowercase; Metaspace "▁" pre-tokenizer), a HF `tokenizer.json`; <pad>=0, <unk>=1,
  [CLS]=2, [SEP]=3, [MASK]=4.
- phrases: AMBERT's coarse vocabulary (words and word n-grams chosen by count and PMI, see
  data/phrases.py) over the words of the committed WordPiece vocab (--fine_vocab); a
  vocab.txt with the WordPiece specials first. Deterministic: regenerating gives the
  committed file byte for byte (tests/data/test_phrases.py checks it).

Determinism: the BPE trainer gave byte-identical files run to run (tokenizers 0.23.3). The
WordPiece and Unigram trainers do not (parallel merges tie-break differently; the Unigram
trainer's candidate order differs even with RAYON_NUM_THREADS=1), which is why the project
commits the files it produced instead of regenerating them; tests never compare freshly
trained ids. A regenerated file is equally valid, but it invalidates instance caches and
checkpoints made with the old one.
"""
from __future__ import annotations

import json
import os
import tempfile

from absl import app
from absl import flags
from tokenizers import Regex
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers.implementations import BertWordPieceTokenizer

from bert_jax.data import corpora
from bert_jax.data import tokenizer as tokenizer_lib

_KIND = flags.DEFINE_enum("kind", "wordpiece", tokenizer_lib.KINDS + ("phrases",),
                          "Tokenizer to train, or AMBERT's coarse vocabulary (phrases).")
_OUT = flags.DEFINE_string("out", None, "File to write (default: the project's file of --kind).")
_VOCAB_SIZE = flags.DEFINE_integer("vocab_size", 8192, "Number of tokens incl. specials.")
_MIN_FREQUENCY = flags.DEFINE_integer("min_frequency", 2, "Rarer pairs are not merged "
                                      "(wordpiece, bpe).")
_LOWERCASE = flags.DEFINE_boolean("lowercase", None, "Uncased vocab (default: True for "
                                  "wordpiece and unigram, False for bpe, as BERT/ALBERT/RoBERTa).")
_TFDS_DATA_DIR = flags.DEFINE_string("tfds_data_dir", None, "Where the corpus is built.")
_CORPUS = flags.DEFINE_string("corpus", "embedded", "phrases: data.corpus to count on (its "
                              "train split); the other kinds use the embedded corpus.")
_FINE_VOCAB = flags.DEFINE_string("fine_vocab", tokenizer_lib.DEFAULT_VOCAB_PATH,
                                  "phrases: the WordPiece vocab whose words are counted.")
_MAX_PHRASES = flags.DEFINE_integer("max_phrases", 2048, "phrases: most phrase entries.")
_PHRASE_MIN_COUNT = flags.DEFINE_integer("phrase_min_count", 5, "phrases: rarer n-grams are "
                                         "not phrases.")
_MIN_PMI = flags.DEFINE_float("min_pmi", 3.0, "phrases: least discounted PMI (nats).")


def train_vocab(sentences, vocab_size: int, min_frequency: int = 2) -> list[str]:
    """WordPiece: the trained vocab as a list of tokens, index = id, SPECIAL_TOKENS first."""
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


def _uncased() -> list[normalizers.Normalizer]:
    """BERT's uncased recipe: decompose, drop accents, lowercase."""
    return [normalizers.NFKD(), normalizers.StripAccents(), normalizers.Lowercase()]


def train_bpe(sentences, vocab_size: int, min_frequency: int = 2,
              lowercase: bool = False) -> str:
    """Byte-level BPE; returns the tokenizer.json text. <s> <pad> </s> <unk> first, <mask> last."""
    tok = HFTokenizer(models.BPE())
    if lowercase:  # Byte-level BPE needs no normalizer otherwise (RoBERTa has none).
        tok.normalizer = normalizers.Sequence(_uncased())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    first = ["<s>", "<pad>", "</s>", "<unk>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1, min_frequency=min_frequency, show_progress=False,
        special_tokens=first, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(sentences, trainer)
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    assert sorted(vocab.values()) == list(range(len(vocab))), "vocab ids have gaps"
    assert [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])[:4]] == first
    vocab["<mask>"] = len(vocab)  # RoBERTa's layout: the mask token is the last id.
    spec["added_tokens"].append(dict(spec["added_tokens"][-1], id=vocab["<mask>"],
                                     content="<mask>"))
    return json.dumps(spec, ensure_ascii=False, separators=(",", ":"))


def train_unigram(sentences, vocab_size: int, lowercase: bool = True) -> str:
    """Unigram (SentencePiece-style); returns the tokenizer.json text, ALBERT's specials first."""
    tok = HFTokenizer(models.Unigram())
    # Metaspace only replaces " ": other whitespace would end up inside pieces.
    tok.normalizer = normalizers.Sequence([normalizers.Replace(Regex(r"\s+"), " ")] + (
        _uncased() if lowercase else [normalizers.NFKC()]))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always",
                                                 split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    specials = list(tokenizer_lib.ROLE_TOKENS["unigram"])
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, show_progress=False,
                                      special_tokens=specials, unk_token="<unk>")
    tok.train_from_iterator(sentences, trainer)
    spec = json.loads(tok.to_str())
    assert [p for p, _ in spec["model"]["vocab"][:5]] == specials
    return json.dumps(spec, ensure_ascii=False, separators=(",", ":"))


def write_text(text: str, path: str) -> None:
    """Writes `text` atomically (temp file + rename)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; a vocab is for everyone to read.
    os.replace(tmp, path)


def write_vocab(tokens: list[str], path: str) -> None:
    """Writes a Google vocab.txt: one token per line."""
    write_text("".join(t + "\n" for t in tokens), path)


def main(argv):
    del argv
    import ml_collections  # pylint: disable=g-import-not-at-top
    kind = _KIND.value
    if kind == "phrases":
        return make_phrases()
    out = _OUT.value or tokenizer_lib.DEFAULT_PATHS[kind]
    lowercase = _LOWERCASE.value if _LOWERCASE.value is not None else kind != "bpe"
    cfg = ml_collections.ConfigDict(dict(corpus="embedded", text_files=[], text_feature="text",
                                         tfds_data_dir=_TFDS_DATA_DIR.value))
    docs = corpora.load_documents(cfg, "train")  # Never the validation split.
    sentences = [s for i in range(len(docs)) for s in docs[i]]
    if kind == "wordpiece":
        if not lowercase:
            raise app.UsageError("--kind wordpiece trains uncased vocabs only.")
        write_vocab(train_vocab(sentences, _VOCAB_SIZE.value, _MIN_FREQUENCY.value), out)
    elif kind == "bpe":
        write_text(train_bpe(sentences, _VOCAB_SIZE.value, _MIN_FREQUENCY.value, lowercase), out)
    else:
        write_text(train_unigram(sentences, _VOCAB_SIZE.value, lowercase), out)
    tok = tokenizer_lib.load_tokenizer(out, lowercase, kind=kind)  # Checks specials and kind.
    print(f"wrote {tok.vocab_size} {kind} tokens to {out} (trained on {len(docs)} documents, "
          f"{len(sentences)} sentences; corpus {docs.identity}; special ids {tok.special_ids})")


def make_phrases():
    """--kind phrases: the coarse vocabulary of --corpus's train split."""
    from bert_jax.data import instances, phrases  # pylint: disable=g-import-not-at-top
    import ml_collections  # pylint: disable=g-import-not-at-top
    out = _OUT.value or phrases.DEFAULT_PATH
    cfg = ml_collections.ConfigDict(dict(corpus=_CORPUS.value, text_files=[],
                                         text_feature="text",
                                         tfds_data_dir=_TFDS_DATA_DIR.value))
    docs = corpora.load_documents(cfg, "train")  # Never the validation split.
    fine = tokenizer_lib.load_tokenizer(_FINE_VOCAB.value, True, kind="wordpiece")
    entries, stats = phrases.build_phrase_vocab(
        instances.tokenize_documents(docs, fine), fine, vocab_size=_VOCAB_SIZE.value,
        max_phrases=_MAX_PHRASES.value, min_count=_PHRASE_MIN_COUNT.value,
        min_pmi=_MIN_PMI.value)
    write_vocab(entries, out)
    vocab = phrases.PhraseVocab(out, fine)  # Checks the specials; every entry must be usable.
    print(f"wrote {vocab.vocab_size} coarse entries to {out} ({stats}; corpus {docs.identity}; "
          f"{vocab.skipped} unusable)")


if __name__ == "__main__":
    app.run(main)
