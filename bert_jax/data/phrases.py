"""AMBERT's coarse-grained tokens: a phrase vocabulary made from corpus statistics, and the
phrase tokenizer that lays coarse tokens over the fine (WordPiece) tokens.

Words are what BERT's pre-tokenizer yields (whitespace and punctuation splits, lowercased and
accent-stripped as the fine vocab): in a WordPiece encoding a word is exactly a run of pieces
that starts at a piece not beginning with "##" (an out-of-vocabulary word is one [UNK]), so
words are read off the fine encoding and every coarse token is a whole number of words.

Phrase vocabulary (`build_phrase_vocab`, deterministic, numpy only):
1. Count word n-grams, n = 2..max_n, inside sentences; an n-gram never contains a punctuation
   word (BERT's punctuation: ASCII symbols and Unicode category P) nor an [UNK] word.
2. Keep those seen at least `min_count` times whose discounted pointwise mutual information
       pmi(w1..wn) = log((c(w1..wn) - discount) * N^(n-1) / (c(w1) * ... * c(wn)))
   (N words in the corpus) is at least `min_pmi`. This is word2phrase's collocation score
   (Mikolov et al. 2013, "Distributed representations of words and phrases"), generalised
   from bigrams to n-grams as observed over expected-under-independence counts. The count
   threshold and the discount keep rare n-grams, whose PMI is high by chance, out; the PMI
   threshold keeps frequent but compositional glue ("of the", "in a") out, which a count-only
   rule would take first. Among the survivors the `max_phrases` most frequent are kept.
3. Vocabulary = the five specials of the fine vocab ([PAD] [UNK] [CLS] [SEP] [MASK], ids
   0..4, same roles) + the most frequent single words (punctuation included) + those phrases,
   `vocab_size` entries in all; after the specials, entries are ordered by count (descending),
   ties by text. The file is a vocab.txt: one entry per line (its words joined by one space),
   the line number is the id.

Phrase tokenizer (`PhraseVocab.tokenize`, vectorised but for a loop over phrase matches): in
each sentence, left to right, the longest vocabulary phrase (up to max_n words) that starts at
the current word is one coarse token; with none, the word alone is one ([UNK] if it is not in
the vocabulary). Matching compares 64-bit hashes of words' fine piece ids (collisions are
astronomically unlikely), so the coarse vocabulary is always read through the fine tokenizer.
"""
from __future__ import annotations

import hashlib
import os
import unicodedata

import numpy as np

from bert_jax.data import DataError
from bert_jax.data import tokenizer as tokenizer_lib

DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vocab",
                            "embedded_uncased_phrases_8k.txt")
MAX_N = 4  # The longest phrase, in words.

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(h):
    """splitmix64's finaliser on uint64 arrays (wrap-around arithmetic)."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def word_layout(word_start):
    """(first_W, word_of_T): each word's first piece index, and each piece's word index."""
    word_start = np.asarray(word_start)
    if len(word_start):
        word_start = word_start.copy()
        word_start[0] = 1
    first_W = np.flatnonzero(word_start)
    return first_W, np.cumsum(word_start != 0) - 1


def word_hashes(tokens, word_start):
    """uint64 [W]: a hash of each word's fine piece ids (order-sensitive)."""
    first_W, word_of_T = word_layout(word_start)
    if not len(first_W):
        return np.zeros(0, np.uint64)
    k_T = (np.arange(len(tokens)) - first_W[word_of_T]).astype(np.uint64)
    piece_T = _mix((np.asarray(tokens).astype(np.uint64) + np.uint64(1))
                   + (k_T << np.uint64(32)))
    with np.errstate(over="ignore"):
        return _mix(np.add.reduceat(piece_T, first_W))


def ngram_hashes(wh_W, n: int):
    """uint64 [W - n + 1]: a hash of the n consecutive words starting at each word."""
    count = len(wh_W) - n + 1
    if count <= 0:
        return np.zeros(0, np.uint64)
    h = np.full(count, np.uint64(n), np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            h = h + _mix(wh_W[j:j + count] ^ (np.uint64(j + 1) * _GOLDEN))
    return _mix(h)


def _same_sentence(sent_W, n: int):
    """bool [W - n + 1]: the n words starting here lie in one sentence."""
    count = len(sent_W) - n + 1
    return sent_W[:count] == sent_W[n - 1:] if count > 0 else np.zeros(0, bool)


def sentence_of_words(first_W, sent_off):
    return np.searchsorted(np.asarray(sent_off), first_W, side="right") - 1


def is_punctuation(word: str) -> bool:
    """BERT's punctuation test (its pre-tokenizer splits these into words of their own)."""
    def punct(ch):
        cp = ord(ch)
        return (33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126
                or unicodedata.category(ch).startswith("P"))
    return bool(word) and all(punct(ch) for ch in word)


def build_phrase_vocab(corpus, tok: tokenizer_lib.Tokenizer, *, vocab_size: int = 8192,
                       max_phrases: int = 2048, max_n: int = MAX_N, min_count: int = 5,
                       discount: float = 2.0, min_pmi: float = 3.0) -> tuple[list[str], dict]:
    """The coarse vocabulary of `corpus` (a data.instances.TokenizedCorpus made with the
    WordPiece `tok`), by the module docstring's method; returns (entries, statistics)."""
    if tok.kind != "wordpiece":
        raise DataError("phrase vocabularies are made over WordPiece words (data.tokenizer="
                        f"'wordpiece'), not {tok.kind!r}.")
    first_W, _ = word_layout(corpus.word_start)
    ends_W = np.append(first_W[1:], len(corpus.tokens))
    wh_W = word_hashes(corpus.tokens, corpus.word_start)
    sent_W = sentence_of_words(first_W, corpus.sent_off)
    types, first_seen, type_W, count_V = np.unique(wh_W, return_index=True,
                                                   return_inverse=True, return_counts=True)
    pieces = [corpus.tokens[first_W[w]:ends_W[w]].tolist() for w in first_seen]
    text_V = [tok.decode(p) for p in pieces]
    bad_V = np.array([tok.unk_id in p or is_punctuation(t) or not t
                      for p, t in zip(pieces, text_V)], bool)
    usable_V = np.array([tok.unk_id not in p and bool(t) for p, t in zip(pieces, text_V)], bool)
    num_words = len(wh_W)
    log_count_V = np.log(count_V.astype(np.float64))
    candidates = []  # (count, text)
    for n in range(2, max_n + 1):
        ok = _same_sentence(sent_W, n)
        for j in range(n):
            ok &= ~bad_V[type_W[j:j + len(ok)]]
        starts = np.flatnonzero(ok)
        h = ngram_hashes(wh_W, n)[starts]
        uniq, first, counts = np.unique(h, return_index=True, return_counts=True)
        keep = counts >= min_count
        uniq, first, counts = uniq[keep], starts[first[keep]], counts[keep]
        expected = sum(log_count_V[type_W[first + j]] for j in range(n)) - (n - 1) * np.log(
            num_words)
        pmi = np.log(counts - discount) - expected
        for w, c in zip(first[pmi >= min_pmi].tolist(), counts[pmi >= min_pmi].tolist()):
            candidates.append((c, " ".join(text_V[type_W[w + j]] for j in range(n))))
    candidates.sort(key=lambda ct: (-ct[0], ct[1]))
    phrases = candidates[:max_phrases]
    words = sorted(((int(c), t) for c, t, u in zip(count_V, text_V, usable_V) if u),
                   key=lambda ct: (-ct[0], ct[1]))
    specials = list(tokenizer_lib.SPECIAL_TOKENS)
    words = words[:max(0, vocab_size - len(specials) - len(phrases))]
    entries = sorted(words + phrases, key=lambda ct: (-ct[0], ct[1]))
    stats = dict(words=num_words, word_types=len(types), phrase_candidates=len(candidates),
                 phrases=len(phrases), single_words=len(words))
    return specials + [t for _, t in entries], stats


class PhraseVocab:
    """A coarse vocabulary file read through a WordPiece tokenizer (module docstring).

    Attributes: vocab_size; pad_id, unk_id, cls_id, sep_id, mask_id (0..4) and special_ids;
    identity (sha256 of the file, for instance caches); max_n; skipped (entries whose words do
    not encode to whole known WordPiece words; they can never match and are never produced).
    """

    def __init__(self, path: str, fine: tokenizer_lib.Tokenizer):
        if fine.kind != "wordpiece":
            raise DataError(f"data.coarse_vocab_path needs data.tokenizer='wordpiece' (coarse "
                            f"tokens are whole WordPiece words), not {fine.kind!r}.")
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"coarse vocab file {path!r} does not exist; set data.coarse_vocab_path to a "
                f"phrase vocab (this project's is {DEFAULT_PATH}; `python -m "
                "bert_jax.data.make_vocab --kind phrases` makes one).")
        with open(path, "rb") as f:
            raw = f.read()
        self.path, self.identity = path, "phrases:" + hashlib.sha256(raw).hexdigest()
        self._entries = raw.decode("utf-8").split("\n")[:-1]
        specials = tuple(tokenizer_lib.SPECIAL_TOKENS)
        if tuple(self._entries[:len(specials)]) != specials:
            raise DataError(f"{path}: a phrase vocab starts with {', '.join(specials)} "
                            f"(ids 0..4), found {self._entries[:len(specials)]}.")
        self.vocab_size = len(self._entries)
        if self.vocab_size > 65536:  # Instances store coarse ids as uint16.
            raise DataError(f"{path}: {self.vocab_size} entries; at most 65536 are supported.")
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = range(5)
        self.special_ids = (0, 1, 2, 3, 4)
        self._tables = self._hash_tables(fine)

    def _hash_tables(self, fine):
        """{n: (sorted entry hashes, their ids)} for entries of n words."""
        ids = np.arange(len(self.special_ids), self.vocab_size)
        split = [self._entries[i].split(" ") for i in ids]
        words = sorted({w for ws in split for w in ws})
        tokens, word_start, offsets = fine.encode_flat(words)
        # A word that is not one known WordPiece word is not a word of the corpus: never matched.
        good_idx = [i for i, (a, b) in enumerate(zip(offsets[:-1], offsets[1:]))
                    if b > a and word_start[a:b].sum() == 1 and fine.unk_id not in tokens[a:b]]
        wh = {}
        if good_idx:  # Hash the good words' slices, concatenated: one word each.
            sel = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in good_idx])
            wh = dict(zip((words[i] for i in good_idx), word_hashes(tokens[sel], word_start[sel])))
        tables = {}
        self.skipped = sum(len(ws) > MAX_N for ws in split)
        for n in range(1, MAX_N + 1):
            rows = [(i, ws) for i, ws in zip(ids.tolist(), split) if len(ws) == n]
            ok = [(i, ws) for i, ws in rows if all(w in wh for w in ws)]
            self.skipped += len(rows) - len(ok)
            if not ok:
                continue
            # Each entry's words laid end to end: its n-gram hash is the one at its first word.
            flat = np.array([wh[w] for _, ws in ok for w in ws], np.uint64)
            hashes = flat if n == 1 else ngram_hashes(flat, n)[::n]
            order = np.argsort(hashes, kind="stable")
            tables[n] = (hashes[order], np.array([i for i, _ in ok], np.int32)[order])
        self.max_n = max(tables, default=1)
        return tables

    def _lookup(self, n: int, h):
        """(found bool [K], id int32 [K]) of hashes `h` among the entries of n words."""
        if n not in self._tables:
            return np.zeros(len(h), bool), np.full(len(h), self.unk_id, np.int32)
        keys, ids = self._tables[n]
        at = np.minimum(np.searchsorted(keys, h), len(keys) - 1)
        found = keys[at] == h
        return found, np.where(found, ids[at], self.unk_id).astype(np.int32)

    def tokenize(self, tokens, word_start, sent_off):
        """Coarse tokens over a flat fine token array (a TokenizedCorpus's fields).

        Returns (coarse_start [T] uint8: 1 at the first piece of each coarse token;
        coarse_tok [T] int32: the coarse id of the coarse token each piece belongs to).
        Coarse tokens never cross a sentence.
        """
        tokens = np.asarray(tokens)
        first_W, word_of_T = word_layout(word_start)
        num_words = len(first_W)
        if not num_words:
            return np.zeros(0, np.uint8), np.zeros(0, np.int32)
        wh_W = word_hashes(tokens, word_start)
        sent_W = sentence_of_words(first_W, sent_off)
        _, id_W = self._lookup(1, wh_W)
        length_W = np.ones(num_words, np.int64)
        phrase_W = id_W.copy()
        for n in range(2, self.max_n + 1):  # Ascending: the longest match wins.
            starts = np.flatnonzero(_same_sentence(sent_W, n))
            found, ids = self._lookup(n, ngram_hashes(wh_W, n)[starts])
            length_W[starts[found]] = n
            phrase_W[starts[found]] = ids[found]
        # Greedy left to right: only the words where a phrase matches need a sequential pass.
        start_W = np.ones(num_words, bool)
        covered_until = 0
        for w in np.flatnonzero(length_W > 1).tolist():
            if w < covered_until:
                continue  # inside a phrase already taken
            covered_until = w + int(length_W[w])
            start_W[w + 1:covered_until] = False
        coarse_start = np.zeros(len(tokens), np.uint8)
        coarse_start[first_W[start_W]] = 1
        starts_idx = np.flatnonzero(start_W)
        # A coarse token of more than one word is the phrase matched at its first word.
        taken_len = np.diff(np.append(starts_idx, num_words))
        token_of_start = np.where(taken_len > 1, phrase_W[starts_idx], id_W[starts_idx])
        token_of_W = token_of_start[np.cumsum(start_W) - 1]
        return coarse_start, token_of_W[word_of_T].astype(np.int32)

    def id_to_token(self, i: int) -> str:
        return self._entries[int(i)]
