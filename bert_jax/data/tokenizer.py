"""Tokenizers (HF `tokenizers`) behind one interface: WordPiece, byte-level BPE, Unigram.

Kinds, their files and what marks a piece that starts a word:

- "wordpiece" (BERT): a Google-format `vocab.txt`, one token per line, the line number is the
  id. The pipeline is built here, BERT's: `BertNormalizer` (clean text, CJK spacing, lowercase
  + strip accents when `lowercase`), `BertPreTokenizer`, WordPiece. Word start: not "##".
- "bpe" (RoBERTa / GPT-2): a HF `tokenizer.json` with a byte-level BPE model. Word start: the
  piece begins with the byte-level space marker "Ġ".
- "unigram" (ALBERT / SentencePiece): a HF `tokenizer.json` with a Unigram model and a
  Metaspace pre-tokenizer. Word start: the piece begins with "▁".

A `tokenizer.json` brings its own normalizer, pre-tokenizer and decoder (so `lowercase` must
agree with its normalizer: casing is a property of the vocab); its `added_tokens` and
post-processor are ignored, as this project adds [CLS]/[SEP] itself.

Every kind has five special roles, (pad, unk, cls, sep, mask), played by the tokens of
`ROLE_TOKENS[kind]`: RoBERTa's `<s>`/`</s>` are the cls/sep roles, so code only ever uses
`cls_id`, `sep_id`, `mask_id`, `pad_id`, `unk_id`.

Special tokens are never matched inside text: a literal "[MASK]" or "<mask>" in the corpus
stays text. WordPiece and byte-level BPE already split such strings at punctuation; a Unigram
lattice would happily match a "[MASK]" piece, so the special pieces are handed to the HF model
renamed with a leading space, which no pre-tokenized input can contain (both pre-tokenizers
replace spaces by their marker).
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Sequence

import numpy as np
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers
from bert_jax.data import DataError

KINDS = ("wordpiece", "bpe", "unigram")
# Tokens of the roles (pad, unk, cls, sep, mask) per kind, as in BERT's vocab.txt, RoBERTa's
# vocab.json and ALBERT's spiece.model.
ROLE_TOKENS = {
    "wordpiece": ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"),
    "bpe": ("<pad>", "<unk>", "<s>", "</s>", "<mask>"),
    "unigram": ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"),
}
SPECIAL_TOKENS = ROLE_TOKENS["wordpiece"]
_WORD_MARKER = {"bpe": "Ġ", "unigram": "▁"}
_HF_MODEL_TYPE = {"BPE": "bpe", "Unigram": "unigram", "WordPiece": "wordpiece"}
_VOCAB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vocab")
# The vocabularies this project trained on the embedded corpus (see make_vocab.py).
DEFAULT_PATHS = {
    "wordpiece": os.path.join(_VOCAB_DIR, "embedded_uncased_8k.txt"),
    "bpe": os.path.join(_VOCAB_DIR, "embedded_cased_bpe_8k.json"),
    "unigram": os.path.join(_VOCAB_DIR, "embedded_uncased_unigram_8k.json"),
}
DEFAULT_VOCAB_PATH = DEFAULT_PATHS["wordpiece"]


class Tokenizer:
    """A tokenizer with special ids and word-start flags; build it with `load_tokenizer`.

    Attributes:
      kind: "wordpiece", "bpe" or "unigram".
      vocab_size: number of ids (max id + 1).
      pad_id, unk_id, cls_id, sep_id, mask_id: ids of the tokens in those roles.
      special_ids: the five ids, in that order.
      path: the file it was loaded from; lowercase: whether text is lowercased.
      identity: kind + sha256 of the file: what instance caches are keyed on.
      hf: the underlying HF `tokenizers.Tokenizer` (for what the wrapper does not expose,
        e.g. the character offsets that SQuAD's answer spans need).
    """

    def __init__(self, hf: HFTokenizer, tokens: list[str], *, kind: str, path: str,
                 lowercase: bool, file_sha256: str):
        self.kind, self.path, self.lowercase = kind, path, lowercase
        self.identity = f"{kind}:{file_sha256}"
        self.hf, self._tokens = hf, tokens
        self.vocab_size = len(tokens)
        self._ids = ids = {t: i for i, t in enumerate(tokens) if t}
        roles = ROLE_TOKENS[kind]
        missing = [t for t in roles if t not in ids]
        if missing:
            raise DataError(f"{path} lacks special token(s) {missing}; a {kind} vocabulary "
                            f"needs {', '.join(roles)} (roles pad, unk, cls, sep, mask).")
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            ids[t] for t in roles)
        self.special_ids = (self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id)
        # Lookup table id -> 1 if the piece starts a word: word_start is then one gather.
        if kind == "wordpiece":
            starts = [not t.startswith("##") for t in tokens]
        else:
            starts = [t.startswith(_WORD_MARKER[kind]) for t in tokens]
        self._starts_word = np.array(starts, np.int32)
        self._starts_word[list(self.special_ids)] = 1

    def encode_batch(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Tokenizes without special tokens.

        Returns one `(ids, word_start)` per text, both int32 of the same length T_i;
        word_start[i] = 1 where piece i begins a word (and at each text's first piece), else 0.
        """
        ids, word_start, offsets = self.encode_flat(texts)
        return [(ids[a:b], word_start[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]

    def encode_flat(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like `encode_batch`, concatenated: `(ids [T], word_start [T], offsets [len(texts)+1])`.

        Text i is ids[offsets[i]:offsets[i+1]]. Avoids one small array per text, which matters
        when a corpus has millions of sentences.
        """
        # encode_batch_fast skips character offsets, which nothing here needs.
        encodings = self.hf.encode_batch_fast(list(texts), add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) for e in encodings), np.int64, len(encodings))
        offsets = np.zeros(len(encodings) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        ids = np.fromiter((i for e in encodings for i in e.ids), np.int32, int(offsets[-1]))
        word_start = self._starts_word[ids]
        # A text starts a word even without a marker (BPE files without add_prefix_space).
        word_start[offsets[:-1][lengths > 0]] = 1
        return ids, word_start, offsets

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        """Text of `ids`; special tokens dropped unless asked for (then shown by name)."""
        ids = [int(i) for i in np.asarray(ids).reshape(-1)]
        special = set(self.special_ids)
        words, run = [], []
        for i in ids + [None]:
            if i is None or i in special:
                if run:
                    words.append(self._decode_run(run))
                    run = []
                if i is not None and not skip_special_tokens:
                    words.append(self._tokens[i])
            else:
                run.append(i)
        return " ".join(words)

    def _decode_run(self, ids: list[int]) -> str:
        text = self.hf.decode(ids, skip_special_tokens=False)
        # Byte-level BPE decodes the prefix space it added (or a word's own space) as " ".
        return text[1:] if self.kind == "bpe" and text.startswith(" ") else text

    def id_to_token(self, i: int) -> str:
        return self._tokens[int(i)]

    def token_to_id(self, token: str) -> int | None:
        return self._ids.get(token)


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _wordpiece(path: str, lowercase: bool) -> Tokenizer:
    vocab = models.WordPiece.read_file(path)
    tokens = [""] * (max(vocab.values()) + 1)
    for token, i in vocab.items():
        tokens[i] = token
    hf = HFTokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    hf.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=lowercase, lowercase=lowercase)
    hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    hf.decoder = decoders.WordPiece(prefix="##")
    return Tokenizer(hf, tokens, kind="wordpiece", path=path, lowercase=lowercase,
                     file_sha256=_sha256(path))


def _read_tokenizer_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path} is not a HF tokenizer.json ({e}); data.vocab_path must be a "
                        "Google vocab.txt (wordpiece) or a tokenizer.json (bpe, unigram).") from None
    if not isinstance(spec, dict) or spec.get("model", {}).get("type") not in _HF_MODEL_TYPE:
        raise DataError(f"{path} is not a HF tokenizer.json with a BPE or Unigram model; "
                        "data.vocab_path must be a Google vocab.txt or such a tokenizer.json.")
    return spec


def _lowercases(normalizer) -> bool:
    """Whether a tokenizer.json normalizer (a JSON tree) lowercases."""
    if isinstance(normalizer, list):
        return any(_lowercases(n) for n in normalizer)
    if not isinstance(normalizer, dict):
        return False
    if normalizer.get("type") == "Lowercase" or (
            normalizer.get("type") == "BertNormalizer" and normalizer.get("lowercase")):
        return True
    return _lowercases(normalizer.get("normalizers"))


def _from_tokenizer_json(path: str, spec: dict, kind: str, lowercase: bool) -> Tokenizer:
    if _lowercases(spec.get("normalizer")) != lowercase:
        raise DataError(
            f"data.lowercase={lowercase} but {path} was made {'un' * (not lowercase)}cased "
            f"(its normalizer {'does not ' * lowercase}lowercase); set "
            f"data.lowercase={not lowercase}.")
    model = spec["model"]
    roles = set(ROLE_TOKENS[kind])
    hide = lambda t: " " + t if t in roles else t  # See the module docstring.
    if kind == "unigram":
        tokens = [piece for piece, _ in model["vocab"]]
        model["vocab"] = [[hide(piece), score] for piece, score in model["vocab"]]
    else:
        by_id = sorted(model["vocab"].items(), key=lambda kv: kv[1])
        if [i for _, i in by_id] != list(range(len(by_id))):
            raise DataError(f"{path}: BPE vocab ids are not 0..V-1 without gaps.")
        tokens = [t for t, _ in by_id]
        model["vocab"] = {hide(t): i for t, i in by_id}
        if model.get("unk_token"):
            model["unk_token"] = hide(model["unk_token"])
    spec.update(added_tokens=[], post_processor=None, truncation=None, padding=None)
    hf = HFTokenizer.from_str(json.dumps(spec))
    return Tokenizer(hf, tokens, kind=kind, path=path, lowercase=lowercase,
                     file_sha256=_sha256(path))


def detect_kind(path: str) -> str:
    """The kind of a vocabulary file: a tokenizer.json (a JSON object) says its model; any
    other file is a Google vocab.txt (WordPiece), whatever its name."""
    with open(path, "rb") as f:
        if f.read(64).lstrip()[:1] != b"{":
            return "wordpiece"
    kind = _HF_MODEL_TYPE[_read_tokenizer_json(path)["model"]["type"]]
    if kind == "wordpiece":
        raise DataError(f"{path}: a WordPiece tokenizer.json is not read directly; give its "
                        "vocab.txt as data.vocab_path.")
    return kind


def load_tokenizer(vocab_path: str = DEFAULT_VOCAB_PATH, lowercase: bool = True,
                   kind: str | None = None) -> Tokenizer:
    """Loads the tokenizer of a vocabulary file (module docstring).

    `kind` (data.tokenizer) is checked against the file when given; None: taken from the file.
    """
    if kind is not None and kind not in KINDS:
        raise DataError(f"data.tokenizer={kind!r}: must be one of {KINDS}.")
    if not os.path.isfile(vocab_path):
        raise FileNotFoundError(
            f"vocab file {vocab_path!r} does not exist; set data.vocab_path to a Google-format "
            f"vocab.txt or a tokenizer.json (the defaults are {DEFAULT_PATHS}; "
            "`python -m bert_jax.data.make_vocab` makes them).")
    found = detect_kind(vocab_path)
    if kind is not None and kind != found:
        raise DataError(
            f"data.tokenizer={kind!r} but data.vocab_path={vocab_path!r} is a {found} "
            f"vocabulary; set data.vocab_path to a {kind} one (this project's is "
            f"{DEFAULT_PATHS[kind]}) or data.tokenizer={found!r}.")
    if found == "wordpiece":
        return _wordpiece(vocab_path, lowercase)
    return _from_tokenizer_json(vocab_path, _read_tokenizer_json(vocab_path), found, lowercase)
