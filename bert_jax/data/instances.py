"""Pretraining instances: sentence pairs with NSP or SOP labels (BERT, ALBERT) or packed single
segments (RoBERTa's FULL-SENTENCES / DOC-SENTENCES).

The pair algorithm is google-research/bert's `create_pretraining_data`, re-expressed on token
spans: the corpus is one flat token array, sentences and documents are offsets into it, so a
segment (consecutive sentences) is a `[start, end)` span and truncation moves its ends.

Per document and pass: target length = L-3, or with prob `short_seq_prob` uniform in
[2, L-3]; sentences accumulate into a chunk until the target is reached or the document ends;
segment A = the first `a_end` sentences of the chunk (`a_end` uniform in [1, len-1]). The pair
is cut to L-3 tokens by removing one token at a time from the longer segment, front or back at
random. `dupe_factor` passes with fresh randomness give different segmentations. Instances
are shuffled once at the end. Then, per `sentence_task`:

- "nsp" (BERT): B is, with prob 1/2 (always for a one-sentence chunk), sentences from a
  random start in a random *other* document up to the remaining length (label 1, the unused
  chunk sentences go back), else the rest of the chunk (label 0).
- "sop" (ALBERT's sentence-order prediction): B is the rest of the chunk, and with prob 1/2
  A and B are swapped (label 1 = swapped, 0 = in order), as google-research/albert does with
  `sentence_order_prediction`. A one-sentence chunk is cut inside the sentence at a uniform
  token position instead (a one-token sentence gives no instance): ALBERT's code pairs it with
  a random other document labelled 1, which mixes NSP's topic cue into SOP and breaks the
  paper's definition (both segments from the same document, only the order differs).
- "none": documents (in a fresh random order per pass) are packed into `[CLS] X [SEP]` rows of
  up to L-2 tokens, cut at sentence ends (mid-sentence only when one sentence alone is longer
  than the row); label 0. `packing` = "full_sentences" (RoBERTa's FULL-SENTENCES): rows run
  on across documents with a [SEP] between two documents; "doc_sentences" (DOC-SENTENCES): a
  row also ends where its document ends, so rows near a document's end are shorter;
  "packed_documents": the DOC-SENTENCES rows, each still `[CLS] X [SEP]`, are packed several
  to a row (best-fit decreasing on their lengths) with `pack_ids` telling them apart: the model
  attends only within a pack and restarts positions at each, so a packed row computes what its
  rows would alone, with far less padding when documents are short.

With the BPE and Unigram tokenizers the roles [CLS]/[SEP]/[PAD] are played by <s>/</s>/<pad>
(RoBERTa) or ALBERT's [CLS]/[SEP]/<pad>: everything here uses the ids the tokenizer gives.

Arrays (N instances, L = max_seq_len), all fixed shape, padding after `length`:
  input_ids       [N, L] uint16 (int32 if vocab > 65536)   [CLS] A [SEP] B [SEP] pad...
  length          [N]    int32  number of real tokens (attention mask = arange(L) < length)
  token_type_ids  [N, L] uint8  0 on [CLS] A [SEP], 1 on B [SEP], 0 on padding
  next_sentence_label [N] uint8 nsp: 0 = actual next, 1 = random next; sop: 0 = in order,
                                1 = swapped; none: 0
  word_start      [N, L] uint8  1 at word starts (the tokenizer's: not "##", "Ġ" or "▁"
                                pieces), specials and the first piece of A and of B (after
                                front truncation it may be a continuation piece: it starts the
                                segment's first whole-word group), 0 elsewhere and on padding

With packing "packed_documents" also:
  pack_ids        [N, L] uint8  1, 2, ... for the tokens of the row's first, second, ...
                                `[CLS] X [SEP]` sequence, 0 on padding (uint16 if L > 765)

With a coarse vocabulary (`data.coarse_vocab_path`, AMBERT; data/phrases.py) also, aligned
with the fine tokens:
  coarse_start    [N, L] uint8  1 at the first fine token of each coarse token (phrase or
                                word); every special is a coarse token of its own; a segment's
                                first token starts one; 0 elsewhere and on padding
  coarse_ids      [N, L] uint16 the coarse token's id at its coarse_start position, the coarse
                                [PAD] elsewhere; [CLS]/[SEP] get the coarse vocab's. A coarse
                                token that truncation cut (at a segment's front or back end)
                                gets the coarse [UNK]: its text is no longer the phrase's.
Coarse tokens are computed per sentence on the whole corpus (never across sentences), then
cut into rows like the fine tokens.
"""
from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time

import numpy as np

from bert_jax.data import corpora
from bert_jax.data import tokenizer as tokenizer_lib
from bert_jax.data import DataError

INSTANCES_VERSION = 2  # Bump when the algorithm or the array layout changes.
KEYS = ("input_ids", "length", "token_type_ids", "next_sentence_label", "word_start")
COARSE_KEYS = ("coarse_start", "coarse_ids")  # Only with a coarse vocabulary (AMBERT).
SENTENCE_TASKS = ("nsp", "sop", "none")
PACKINGS = ("full_sentences", "doc_sentences", "packed_documents")
PACK_KEY = "pack_ids"  # Only with packing "packed_documents".
_FILL_ROWS = 16384  # Rows filled per vectorized chunk: bounds the [rows, L] int64 temporaries.


@dataclasses.dataclass(frozen=True)
class TokenizedCorpus:
    """A corpus as one token array: sentence i is tokens[sent_off[i]:sent_off[i+1]], document d
    holds sentences doc_sent[d]..doc_sent[d+1]-1. Empty sentences and documents are dropped."""
    tokens: np.ndarray      # [T] int32
    word_start: np.ndarray  # [T] int32
    sent_off: np.ndarray    # [S+1] int64
    doc_sent: np.ndarray    # [D+1] int64
    # AMBERT's coarse tokens (PhraseVocab.tokenize), or None without a coarse vocabulary.
    coarse_start: np.ndarray | None = None  # [T] uint8
    coarse_tok: np.ndarray | None = None    # [T] int32, the coarse id of each piece's token

    def token_arrays(self) -> dict[str, np.ndarray]:
        """The per-token arrays that rows are cut from."""
        arrays = {"tokens": self.tokens, "word_start": self.word_start}
        if self.coarse_start is not None:
            arrays.update(coarse_start=self.coarse_start, coarse_tok=self.coarse_tok)
        return arrays

    @property
    def num_docs(self) -> int:
        return len(self.doc_sent) - 1


def tokenize_documents(docs, tok: tokenizer_lib.Tokenizer, chunk: int = 2048) -> TokenizedCorpus:
    """Batch-encodes every sentence of `docs` (a sequence of lists of sentence strings)."""
    ids, ws, sent_len, doc_nsent = [], [], [], []
    for start in range(0, len(docs), chunk):
        batch = [docs[i] for i in range(start, min(start + chunk, len(docs)))]
        batch_ids, batch_ws, off = tok.encode_flat([s for d in batch for s in d])
        lens = np.diff(off)
        n_per_doc = np.array([len(d) for d in batch], np.int64)
        doc_of_sent = np.repeat(np.arange(len(batch)), n_per_doc)
        keep = lens > 0  # A sentence of only control characters encodes to nothing.
        ids.append(batch_ids)
        ws.append(batch_ws)
        sent_len.append(lens[keep])
        doc_nsent.append(np.bincount(doc_of_sent[keep], minlength=len(batch)))
    cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)
    doc_nsent = cat(doc_nsent, np.int64)
    doc_nsent = doc_nsent[doc_nsent > 0]
    return TokenizedCorpus(
        tokens=cat(ids, np.int32), word_start=cat(ws, np.int32),
        sent_off=np.concatenate([[0], np.cumsum(cat(sent_len, np.int64))]),
        doc_sent=np.concatenate([[0], np.cumsum(doc_nsent)]))


def _truncate_pair(a0, a1, b0, b1, max_tokens, rng):
    """Removes tokens from the longer span (front or back at random) until both fit."""
    excess = (a1 - a0) + (b1 - b0) - max_tokens
    if excess <= 0:
        return a0, a1, b0, b1
    for front in rng.random(excess) < 0.5:
        if a1 - a0 > b1 - b0:
            a0, a1 = (a0 + 1, a1) if front else (a0, a1 - 1)
        else:
            b0, b1 = (b0 + 1, b1) if front else (b0, b1 - 1)
    return a0, a1, b0, b1


def _pair_spans(c: TokenizedCorpus, max_seq_len, short_seq_prob, rng, out, sop: bool):
    """Appends (a0, a1, b0, b1, label) per instance of one NSP or SOP pass to `out`."""
    max_tokens = max_seq_len - 3
    # Python lists: scalar indexing is several times faster than on numpy arrays.
    off, ds = c.sent_off.tolist(), c.doc_sent.tolist()
    for d in range(c.num_docs):
        target = max_tokens
        if rng.random() < short_seq_prob:
            target = int(rng.integers(2, max_tokens + 1))
        s_end = ds[d + 1]
        i = chunk = ds[d]
        while i < s_end:
            if i == s_end - 1 or off[i + 1] - off[chunk] >= target:
                n = i - chunk + 1
                a_end = chunk + (int(rng.integers(1, n)) if n >= 2 else 1)
                if sop:
                    a0, a1, b1 = off[chunk], off[a_end], off[i + 1]
                    if n == 1:  # One sentence: cut it in two (module docstring).
                        a1 = a0 + int(rng.integers(1, b1 - a0)) if b1 - a0 >= 2 else a0
                    if a1 > a0:
                        swap = rng.random() < 0.5  # Label 1: B A instead of A B.
                        spans = (a1, b1, a0, a1) if swap else (a0, a1, a1, b1)
                        out.append(_truncate_pair(*spans, max_tokens, rng) + (int(swap),))
                    i, chunk = i + 1, i + 1
                    continue
                random_next = n == 1 or rng.random() < 0.5
                if random_next and c.num_docs < 2:  # No other document to draw from.
                    if n == 1:
                        i, chunk = i + 1, i + 1
                        continue
                    random_next = False
                if random_next:
                    r = int(rng.integers(0, c.num_docs - 1))
                    r += r >= d  # Uniform over the other documents.
                    start = int(rng.integers(ds[r], ds[r + 1]))
                    want = target - (off[a_end] - off[chunk])
                    # B = sentences from `start` until it has `want` tokens (at least one).
                    k = bisect.bisect_left(off, off[start] + want)
                    k = min(max(k, start + 1), ds[r + 1])
                    b0, b1 = off[start], off[k]
                    i = a_end - 1  # Put the unused sentences of the chunk back.
                else:
                    b0, b1 = off[a_end], off[i + 1]
                spans = _truncate_pair(off[chunk], off[a_end], b0, b1, max_tokens, rng)
                out.append(spans + (int(random_next),))
                chunk = i + 1
            i += 1


def _packed_pass(c: TokenizedCorpus, max_seq_len, short_seq_prob, sep, rng,
                 cross_documents: bool):
    """One packed pass over a shuffled order: (stream arrays, spans). The stream is the token
    arrays gathered in document order with a [SEP] between documents; `sep` maps each token
    array's name to its value at a separator."""
    order = rng.permutation(c.num_docs)
    sep_index = len(c.tokens)  # Index of a [SEP] appended to the token arrays.
    pieces, units = [], []
    for d in order:
        s0, s1 = c.doc_sent[d], c.doc_sent[d + 1]
        pieces += [np.arange(c.sent_off[s0], c.sent_off[s1]), [sep_index]]
        units += [np.diff(c.sent_off[s0:s1 + 1]), [1]]
    idx = np.concatenate(pieces).astype(np.int64) if pieces else np.zeros(0, np.int64)
    bounds = np.concatenate([[0], np.cumsum(np.concatenate(units))]) if units else np.zeros(1)
    is_sep = idx == sep_index
    stream = {k: np.append(v, sep[k])[idx] for k, v in c.token_arrays().items()}
    doc_ends = np.flatnonzero(is_sep)  # Every document is followed by its separator.
    spans, pos, total = [], 0, len(idx)
    while pos < total:
        if is_sep[pos]:  # Never start a row with the document separator.
            pos += 1
            continue
        target = max_seq_len - 2
        if rng.random() < short_seq_prob:
            target = int(rng.integers(2, target + 1))
        k = int(np.searchsorted(bounds, pos + target, side="right")) - 1
        end = int(bounds[k]) if bounds[k] > pos else pos + target  # Cut mid-sentence if must.
        end = min(end, total)
        if not cross_documents:  # DOC-SENTENCES: stop where this document ends.
            end = min(end, int(doc_ends[np.searchsorted(doc_ends, pos)]))
        if is_sep[end - 1] and end - 1 > pos:  # The row's own final [SEP] closes it.
            end -= 1
        spans.append((pos, end, 0, 0, 0))
        pos = end
    return stream, spans


def _pack_lengths(lengths: np.ndarray, capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """Best-fit decreasing bin packing of items of `lengths` (each <= capacity).

    Returns (bin [n], offset [n]): item i sits at [offset[i], offset[i] + lengths[i]) of bin
    bin[i]; bins are numbered in order of opening. Items of equal length keep their order.
    Best-fit decreasing uses at most 11/9 OPT + 6/9 bins (Dosa 2007), and far fewer in
    practice when most items are short.
    """
    n = len(lengths)
    bin_of, offset = np.zeros(n, np.int64), np.zeros(n, np.int64)
    fill: list[int] = []
    by_space: dict[int, list[int]] = {}  # remaining space -> open bins with exactly that much
    spaces: list[int] = []               # sorted keys of by_space
    for i in np.argsort(-np.asarray(lengths), kind="stable"):
        size = int(lengths[i])
        k = bisect.bisect_left(spaces, size)
        if k < len(spaces):  # The tightest open bin that still fits the item.
            space = spaces[k]
            b = by_space[space].pop()
            if not by_space[space]:
                del by_space[space]
                spaces.pop(k)
        else:
            b = len(fill)
            fill.append(0)
        bin_of[i], offset[i] = b, fill[b]
        fill[b] += size
        space = capacity - fill[b]
        if space > 0:
            if space not in by_space:
                by_space[space] = []
                bisect.insort(spaces, space)
            by_space[space].append(b)
    return bin_of, offset


def _pack_rows(rows: dict[str, np.ndarray], max_seq_len: int,
               pads: dict[str, int]) -> dict[str, np.ndarray]:
    """Packs filled rows (each `[CLS] X [SEP]` then padding) into as few rows as fit, and adds
    `pack_ids`. Bins are filled from position 0 on, so `length` stays "real tokens first".
    `pads`: the padding value of the [N, L] arrays whose padding is not 0."""
    length = rows["length"].astype(np.int64)
    bin_of, offset = _pack_lengths(length, max_seq_len)
    n_bins = int(bin_of.max()) + 1 if len(bin_of) else 0
    # Per-row arrays ([N]: next_sentence_label, always 0 here) start at 0, like padding.
    out = {k: np.full((n_bins,) + v.shape[1:], pads.get(k, 0) if v.ndim == 2 else 0, v.dtype)
           for k, v in rows.items()}
    # Token t of all rows' real tokens: (row, position in row) -> (bin, offset + position).
    row_t = np.repeat(np.arange(len(length)), length)
    pos_t = np.arange(len(row_t)) - np.repeat(np.cumsum(length) - length, length)
    dest_row, dest_col = bin_of[row_t], offset[row_t] + pos_t
    for k, v in rows.items():
        if v.ndim == 2:
            out[k][dest_row, dest_col] = v[row_t, pos_t]
    out["length"] = np.bincount(bin_of, weights=length, minlength=n_bins).astype(np.int32)
    # The k-th sequence placed in a bin (in offset order) gets pack id k (1-based).
    order = np.lexsort((offset, bin_of))
    first_of_bin = np.searchsorted(bin_of[order], bin_of[order], side="left")
    rank = np.empty(len(length), np.int64)
    rank[order] = np.arange(len(length)) - first_of_bin + 1
    pack_ids = np.zeros((n_bins, max_seq_len), np.uint8 if max_seq_len <= 765 else np.uint16)
    pack_ids[dest_row, dest_col] = rank[row_t]
    out[PACK_KEY] = pack_ids
    return out


def _coarse_bounds(coarse_start):
    """(first [T], last [T]): index of the first and last piece of each piece's coarse token."""
    at = np.arange(len(coarse_start))
    first = np.maximum.accumulate(np.where(coarse_start != 0, at, 0)) if len(at) else at
    nxt = np.where(np.append(coarse_start[1:], 1) != 0, at, len(at))  # a start follows
    last = np.minimum.accumulate(nxt[::-1])[::-1] if len(at) else at
    return first, last


def _fill(arrays, spans, *, max_seq_len, cls_id, sep_id, pad_id, id_dtype, coarse=None):
    """Lays out spans of the token `arrays` (TokenizedCorpus.token_arrays) as fixed-length
    rows; spans with b0 == b1 give [CLS] A [SEP] rows. `coarse`: the coarse vocab's (pad, unk,
    cls, sep) ids, when the arrays carry coarse tokens."""
    tokens, word_start = arrays["tokens"], arrays["word_start"]
    sp = np.asarray(spans, np.int64).reshape(-1, 5)
    n, L = len(sp), max_seq_len
    out = {"input_ids": np.full((n, L), pad_id, id_dtype),
           "token_type_ids": np.zeros((n, L), np.uint8),
           "word_start": np.zeros((n, L), np.uint8)}
    la, lb = sp[:, 1] - sp[:, 0], sp[:, 3] - sp[:, 2]
    has_b = lb > 0
    out["length"] = (la + lb + 2 + has_b).astype(np.int32)
    out["next_sentence_label"] = sp[:, 4].astype(np.uint8)
    if coarse is not None:
        c_pad, c_unk, c_cls, c_sep = coarse
        out["coarse_start"] = np.zeros((n, L), np.uint8)
        out["coarse_ids"] = np.full((n, L), c_pad, np.uint16)
        first, last = _coarse_bounds(arrays["coarse_start"])
    j = np.arange(L)[None]
    for r in range(0, n, _FILL_ROWS):
        s = slice(r, r + _FILL_ROWS)
        a0, b0 = sp[s, 0:1], sp[s, 2:3]
        la_, lb_ = la[s, None], lb[s, None]
        in_a = (j >= 1) & (j <= la_)
        in_b = (j >= la_ + 2) & (j < la_ + 2 + lb_)
        src = np.where(in_a, a0 + j - 1, np.where(in_b, b0 + j - la_ - 2, 0))
        text = in_a | in_b
        sep1, sep2 = j == la_ + 1, (j == la_ + lb_ + 2) & has_b[s, None]
        ids = np.where(text, tokens[src], pad_id)
        ids = np.where(j == 0, cls_id, np.where(sep1 | sep2, sep_id, ids))
        firsts = (j == 1) | ((j == la_ + 2) & has_b[s, None])
        ws = np.where(text, word_start[src], 0) | (j == 0) | sep1 | sep2 | (firsts & text)
        out["input_ids"][s] = ids
        out["word_start"][s] = ws
        out["token_type_ids"][s] = in_b | sep2
        if coarse is not None:
            lo = np.where(in_a, a0, b0)  # the row's segment of each text position
            hi = np.where(in_a, a0 + la_, b0 + lb_)
            starts = text & ((arrays["coarse_start"][src] != 0) | (src == lo))
            cut = (first[src] < lo) | (last[src] >= hi)  # truncation split this coarse token
            cid = np.where(cut, c_unk, arrays["coarse_tok"][src])
            cid = np.where(starts, cid, c_pad)
            out["coarse_ids"][s] = np.where(j == 0, c_cls, np.where(sep1 | sep2, c_sep, cid))
            out["coarse_start"][s] = starts | (j == 0) | sep1 | sep2
    return out


def create_instances(c: TokenizedCorpus, *, max_seq_len: int, short_seq_prob: float,
                     dupe_factor: int, sentence_task: str, seed: int, cls_id: int, sep_id: int,
                     pad_id: int, vocab_size: int, packing: str = "full_sentences",
                     coarse_specials: tuple[int, int, int, int] | None = None
                     ) -> dict[str, np.ndarray]:
    """All instances of `dupe_factor` passes over `c`, shuffled; see the module docstring.

    `sentence_task` in SENTENCE_TASKS; `packing` in PACKINGS (used when it is "none").
    With coarse tokens in `c`, `coarse_specials` are the coarse vocab's (pad, unk, cls, sep).
    """
    _check_choice("data.sentence_task", sentence_task, SENTENCE_TASKS)
    _check_choice("data.packing", packing, PACKINGS)
    if max_seq_len < 5:
        raise DataError(
            f"data.max_seq_len={max_seq_len}: need at least 5 ([CLS] a [SEP] b [SEP]).")
    rng = np.random.default_rng(seed)
    with_coarse = c.coarse_start is not None
    if with_coarse and coarse_specials is None:
        raise ValueError("a corpus with coarse tokens needs coarse_specials")
    fill = dict(max_seq_len=max_seq_len, cls_id=cls_id, sep_id=sep_id, pad_id=pad_id,
                id_dtype=np.uint16 if vocab_size <= 65536 else np.int32,
                coarse=coarse_specials if with_coarse else None)
    keys = KEYS + COARSE_KEYS * with_coarse
    if sentence_task != "none":
        spans = []
        for _ in range(dupe_factor):
            _pair_spans(c, max_seq_len, short_seq_prob, rng, spans, sop=sentence_task == "sop")
        arrays = _fill(c.token_arrays(), spans, **fill)
    else:
        cross = packing == "full_sentences"
        sep = {"tokens": sep_id, "word_start": 1, "coarse_start": 1,
               "coarse_tok": coarse_specials[3] if with_coarse else 0}
        parts = [_fill(*_packed_pass(c, max_seq_len, short_seq_prob, sep, rng, cross), **fill)
                 for _ in range(dupe_factor)] or [_fill(c.token_arrays(), [], **fill)]
        if packing == "packed_documents":
            keys += (PACK_KEY,)
            pads = {"input_ids": pad_id, "coarse_ids": coarse_specials[0] if with_coarse else 0}
            parts = [_pack_rows(p, max_seq_len, pads) for p in parts]
        arrays = {k: np.concatenate([p[k] for p in parts]) for k in keys}
    perm = rng.permutation(len(arrays["length"]))
    return {k: arrays[k][perm] for k in keys}


def check_nsp_corpus(c: TokenizedCorpus, corpus: str, split: str) -> None:
    """Refuses a corpus on which NSP would be degenerate (one label only, or no pairs).

    "Actually next" pairs need a document of >= 2 sentences; "random next" pairs need a second
    document. Without either, every NSP label would be the same and the head would learn
    nothing, so this is an error rather than a silently useless run. (The held-out split may
    be a single document: it is only scored, so it needs just the first condition.)
    """
    if c.num_docs == 0:
        return  # create_instances' caller reports an empty split with its own message
    nsent = np.diff(c.doc_sent)
    fix = ("Write one sentence per line with a blank line between documents (the google "
           "format), or set data.sentence_task=none to train without next-sentence prediction (packed "
           "rows, as RoBERTa).")
    if nsent.max() < 2:
        raise DataError(
            f"next-sentence prediction needs documents of at least 2 sentences, but all "
            f"{c.num_docs} documents of the {split!r} split of {corpus} have one sentence, "
            f"so no pair would be an actual next sentence. {fix}")
    if split == "train" and c.num_docs < 2:
        raise DataError(
            f"next-sentence prediction needs at least 2 documents (random next sentences come "
            f"from another document), but the {split!r} split of {corpus} has one. {fix}")


def _check_choice(field: str, value, choices) -> None:
    if value not in choices:
        raise DataError(f"{field}={value!r}: must be one of {choices}.")


def sentence_task(data_cfg) -> str:
    """`data.sentence_task` ("nsp", "sop" or "none"), checked along with `data.packing`."""
    _check_choice("data.sentence_task", data_cfg.sentence_task, SENTENCE_TASKS)
    _check_choice("data.packing", data_cfg.packing, PACKINGS)
    return data_cfg.sentence_task


def cache_key(data_cfg, tok: tokenizer_lib.Tokenizer, docs_identity: str, split: str,
              seed: int, coarse=None) -> dict:
    """Everything the arrays depend on; its hash names the cache directory. `coarse`: the
    PhraseVocab (AMBERT) or None; without one the key is what it always was."""
    task = sentence_task(data_cfg)
    return {"version": INSTANCES_VERSION, "corpus": docs_identity, "split": split,
            "tokenizer": tok.identity, "lowercase": tok.lowercase,
            "max_seq_len": data_cfg.max_seq_len, "short_seq_prob": data_cfg.short_seq_prob,
            "dupe_factor": data_cfg.dupe_factor, "sentence_task": task,
            "packing": data_cfg.packing if task == "none" else None, "seed": seed,
            **({"coarse_vocab": coarse.identity} if coarse is not None else {})}


def prepare_instances(data_cfg, split: str, seed: int) -> str:
    """Makes the instances of `split` unless cached; returns their cache directory.

    The cache lives in `data_cfg.cache_dir` (None: ~/.cache/bert_jax) under instances/<hash of
    `cache_key`>, one .npy per array plus key.json. It is written to a temp dir and renamed,
    so a crash or a concurrent writer (several hosts sharing the dir) never leaves a
    half-written entry.
    """
    tok = tokenizer_lib.load_tokenizer(data_cfg.vocab_path, data_cfg.lowercase,
                                       kind=data_cfg.tokenizer)
    task = sentence_task(data_cfg)  # Bad choices fail before the corpus is built.
    coarse = load_coarse_vocab(data_cfg, tok)
    docs = corpora.load_documents(data_cfg, split)
    key = cache_key(data_cfg, tok, docs.identity, split, seed, coarse)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    root = os.path.join(os.path.expanduser(data_cfg.cache_dir or "~/.cache/bert_jax"),
                        "instances")
    final = os.path.join(root, digest)
    if os.path.exists(os.path.join(final, "key.json")):
        return final
    t0 = time.time()
    corpus = tokenize_documents(docs, tok)
    if coarse is not None:
        corpus = dataclasses.replace(corpus, **dict(zip(
            ("coarse_start", "coarse_tok"),
            coarse.tokenize(corpus.tokens, corpus.word_start, corpus.sent_off))))
    if task == "nsp":
        files = f" (data.text_files={list(data_cfg.text_files)})" * (
            data_cfg.corpus == "text_files")
        check_nsp_corpus(corpus, f"corpus {data_cfg.corpus!r}{files}", split)
    arrays = create_instances(
        corpus, max_seq_len=data_cfg.max_seq_len,
        short_seq_prob=data_cfg.short_seq_prob, dupe_factor=data_cfg.dupe_factor,
        sentence_task=task, packing=data_cfg.packing, seed=seed, cls_id=tok.cls_id,
        sep_id=tok.sep_id, pad_id=tok.pad_id, vocab_size=tok.vocab_size,
        coarse_specials=None if coarse is None else (
            coarse.pad_id, coarse.unk_id, coarse.cls_id, coarse.sep_id))
    os.makedirs(root, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=root, prefix=f".{digest}.")
    for k, v in arrays.items():
        np.save(os.path.join(tmp, f"{k}.npy"), v)
    with open(os.path.join(tmp, "key.json"), "w") as f:  # Written last: marks completion.
        json.dump(dict(key, num_instances=len(arrays["length"])), f, indent=1)
    try:
        os.rename(tmp, final)
    except OSError:  # Another process renamed its (identical) copy first.
        shutil.rmtree(tmp, ignore_errors=True)
    logging.info("made %d %s instances in %.1fs -> %s", len(arrays["length"]), split,
                 time.time() - t0, final)
    return final


def load_coarse_vocab(data_cfg, tok: tokenizer_lib.Tokenizer):
    """The PhraseVocab of `data.coarse_vocab_path` read through `tok`, or None when unset."""
    path = data_cfg.get("coarse_vocab_path", "")
    if not path:
        return None
    from bert_jax.data.phrases import PhraseVocab  # pylint: disable=g-import-not-at-top
    return PhraseVocab(path, tok)


def open_instances(directory: str) -> dict[str, np.ndarray]:
    """The arrays of a cache directory (coarse ones where made), memory-mapped read-only."""
    keys = KEYS + tuple(k for k in COARSE_KEYS + (PACK_KEY,)
                        if os.path.exists(os.path.join(directory, f"{k}.npy")))
    return {k: np.load(os.path.join(directory, f"{k}.npy"), mmap_mode="r") for k in keys}


def load_instances(data_cfg, split: str, seed: int) -> dict[str, np.ndarray]:
    """Instances of `split` (arrays in the module docstring), made or loaded from the cache."""
    return open_instances(prepare_instances(data_cfg, split, seed))
