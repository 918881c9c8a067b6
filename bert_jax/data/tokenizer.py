"""BERT WordPiece tokenizer (HF `tokenizers`) loaded from a Google-format `vocab.txt`.

`vocab.txt` holds one token per line; the line number is the id; "##x" marks a piece that
continues a word. The pipeline is BERT's: `BertNormalizer` (clean text, CJK spacing, lowercase
+ strip accents when `lowercase`), `BertPreTokenizer` (whitespace and punctuation), WordPiece.

Special tokens are looked up in the vocab but NOT registered as added tokens: a literal
"[MASK]" in corpus text must stay text ("[", "mask", "]"), never become the mask id.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers
from bert_jax.data import DataError

DEFAULT_VOCAB_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vocab",
                                  "embedded_uncased_8k.txt")
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


class Tokenizer:
    """WordPiece tokenizer with BERT's special ids and word-start flags.

    Attributes:
      vocab_size: number of ids (max id + 1).
      pad_id, unk_id, cls_id, sep_id, mask_id: ids of the special tokens.
      special_ids: the five special ids, in the order of SPECIAL_TOKENS.
      path: the vocab file it was loaded from.
    """

    def __init__(self, vocab_path: str, lowercase: bool = True):
        vocab = models.WordPiece.read_file(vocab_path)
        self.path = vocab_path
        self.lowercase = lowercase
        missing = [t for t in SPECIAL_TOKENS if t not in vocab]
        if missing:
            raise DataError(f"{vocab_path} lacks special token(s) {missing}; a BERT vocab.txt "
                             "needs [PAD], [UNK], [CLS], [SEP] and [MASK].")
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            vocab[t] for t in SPECIAL_TOKENS)
        self.special_ids = (self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id)
        self.vocab_size = max(vocab.values()) + 1
        self._tokens = [""] * self.vocab_size
        for token, i in vocab.items():
            self._tokens[i] = token
        # Lookup table id -> 1 if the piece starts a word: word_start is then one gather.
        self._starts_word = np.array([not t.startswith("##") for t in self._tokens], np.int32)
        self._tok = HFTokenizer(models.WordPiece(vocab, unk_token="[UNK]",
                                                 max_input_chars_per_word=100))
        self._tok.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=lowercase,
            lowercase=lowercase)
        self._tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        self._tok.decoder = decoders.WordPiece(prefix="##")

    def encode_batch(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Tokenizes without special tokens.

        Returns one `(ids, word_start)` per text, both int32 of the same length T_i;
        word_start[i] = 1 where piece i begins a word, 0 for a "##" continuation.
        """
        ids, word_start, offsets = self.encode_flat(texts)
        return [(ids[a:b], word_start[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]

    def encode_flat(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like `encode_batch`, concatenated: `(ids [T], word_start [T], offsets [len(texts)+1])`.

        Text i is ids[offsets[i]:offsets[i+1]]. Avoids one small array per text, which matters
        when a corpus has millions of sentences.
        """
        # encode_batch_fast skips character offsets, which nothing here needs.
        encodings = self._tok.encode_batch_fast(list(texts), add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) for e in encodings), np.int64, len(encodings))
        offsets = np.zeros(len(encodings) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        ids = np.fromiter((i for e in encodings for i in e.ids), np.int32, int(offsets[-1]))
        return ids, self._starts_word[ids], offsets

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        """Text of `ids` (word pieces joined); special tokens dropped unless asked for."""
        ids = [int(i) for i in np.asarray(ids).reshape(-1)]
        if skip_special_tokens:
            special = set(self.special_ids)
            ids = [i for i in ids if i not in special]
        return self._tok.decode(ids, skip_special_tokens=False)

    def id_to_token(self, i: int) -> str:
        return self._tokens[int(i)]

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)


def load_tokenizer(vocab_path: str = DEFAULT_VOCAB_PATH, lowercase: bool = True) -> Tokenizer:
    """Loads a WordPiece tokenizer from a Google-format `vocab.txt` (as is, ids = line numbers)."""
    if not os.path.isfile(vocab_path):
        raise FileNotFoundError(
            f"vocab file {vocab_path!r} does not exist; set data.vocab_path to a Google-format "
            f"vocab.txt (the default is {DEFAULT_VOCAB_PATH}; `python -m bert_jax.data.make_vocab`"
            " makes one).")
    return Tokenizer(vocab_path, lowercase=lowercase)
