"""Instance creation: layout, NSP/SOP statistics, packing, lengths, edge cases, cache."""
import numpy as np
import pytest

from bert_jax.data import instances
from bert_jax.data import tokenizer as tokenizer_lib

CLS, SEP, PAD = 2, 3, 0
KW = dict(cls_id=CLS, sep_id=SEP, pad_id=PAD)


def synthetic(sent_lens_per_doc):
    """A corpus whose token t is 10 + its position: any token tells its document and place."""
    lens = [n for doc in sent_lens_per_doc for n in doc]
    total = sum(lens)
    return instances.TokenizedCorpus(
        tokens=np.arange(10, 10 + total, dtype=np.int32),
        word_start=np.ones(total, np.int32),
        sent_off=np.concatenate([[0], np.cumsum(lens)]).astype(np.int64),
        doc_sent=np.concatenate([[0], np.cumsum([len(d) for d in sent_lens_per_doc])]))


def make(c, **kw):
    args = dict(max_seq_len=64, short_seq_prob=0.0, dupe_factor=1, sentence_task="nsp", seed=0,
                vocab_size=1 << 20, **KW)
    args.update(kw)
    return instances.create_instances(c, **args)


def segments(a, n):
    """(A ids, B ids) of instance n, checking [CLS] A [SEP] B [SEP] pad and token types."""
    ids, L = a["input_ids"][n], a["length"][n]
    assert ids[0] == CLS and ids[L - 1] == SEP and (ids[L:] == PAD).all()
    seps = np.flatnonzero(ids[:L] == SEP)
    assert len(seps) == 2 and not (ids[1:L] == CLS).any()
    tt = a["token_type_ids"][n]
    assert (tt[:seps[0] + 1] == 0).all() and (tt[seps[0] + 1:L] == 1).all() and (tt[L:] == 0).all()
    assert (a["word_start"][n][L:] == 0).all() and a["word_start"][n][[0, seps[0], L - 1]].all()
    return ids[1:seps[0]], ids[seps[0] + 1:L - 1]


@pytest.fixture(scope="module")
def corpus_docs():
    rng = np.random.default_rng(0)
    return [[int(n) for n in rng.integers(3, 20, rng.integers(4, 12))] for _ in range(300)]


def test_layout_and_next_sentence_provenance(corpus_docs):
    c = synthetic(corpus_docs)
    a = make(c, dupe_factor=2)
    n = len(a["length"])
    assert a["input_ids"].shape == (n, 64) and a["input_ids"].dtype == np.int32
    assert a["token_type_ids"].shape == a["word_start"].shape == (n, 64)
    assert n > 300 and a["length"].max() <= 64
    doc_of = lambda t: np.searchsorted(c.sent_off[c.doc_sent], t - 10, side="right") - 1
    for i in range(n):
        seg_a, seg_b = segments(a, i)
        assert len(seg_a) >= 1 and len(seg_b) >= 1
        # Segments are contiguous text; truncation only trims their ends.
        assert (np.diff(seg_a) == 1).all() and (np.diff(seg_b) == 1).all()
        same_doc = doc_of(seg_a[0]) == doc_of(seg_b[0])
        if a["next_sentence_label"][i] == 0:
            assert same_doc and seg_b[0] > seg_a[-1]
        else:
            assert not same_doc
    # Multi-sentence chunks: random next is a fair coin (1-sentence chunks are always random).
    assert 0.42 < a["next_sentence_label"].mean() < 0.6


def test_short_seq_prob_shortens(corpus_docs):
    c = synthetic(corpus_docs)
    full, short = make(c, short_seq_prob=0.0), make(c, short_seq_prob=1.0)
    assert np.median(full["length"]) >= 0.85 * 64
    assert short["length"].mean() < 0.7 * full["length"].mean()
    assert len(short["length"]) > 1.3 * len(full["length"])


def test_determinism(corpus_docs):
    c = synthetic(corpus_docs)
    a, b, other = make(c, seed=3), make(c, seed=3), make(c, seed=4)
    for k in instances.KEYS:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["input_ids"][:10], other["input_ids"][:10])


@pytest.mark.parametrize("docs", [
    [[5]],                        # One document of one sentence: no pair possible.
    [[5, 7, 9]],                  # One document: only actual-next pairs.
    [[4], [6], [3]],              # One-sentence documents: only random-next pairs.
    [[500], [3, 2], [900, 1]],    # Sentences far longer than the row.
    [],                           # Nothing.
])
def test_edge_cases(docs):
    a = make(synthetic(docs), max_seq_len=16, dupe_factor=3, short_seq_prob=0.5)
    for i in range(len(a["length"])):
        segments(a, i)
    if len(docs) == 1:
        assert (a["next_sentence_label"] == 0).all()
    if docs and all(len(d) == 1 for d in docs) and len(docs) > 1:
        assert len(a["length"]) == 3 * len(docs) and a["next_sentence_label"].all()


def test_packed_single_segments(corpus_docs):
    c = synthetic(corpus_docs)
    a = make(c, sentence_task="none", dupe_factor=2)
    L = a["length"]
    assert (a["next_sentence_label"] == 0).all() and (a["token_type_ids"] == 0).all()
    assert (a["input_ids"][:, 0] == CLS).all()
    assert (a["input_ids"][np.arange(len(L)), L - 1] == SEP).all()
    assert np.median(L) >= 0.85 * 64  # Packed to (nearly) full length across documents.
    text = a["input_ids"][a["input_ids"] >= 10]
    assert len(text) >= 2 * len(c.tokens) * 0.99  # Each pass covers (almost) every token once.
    with pytest.raises(ValueError, match="max_seq_len"):
        make(c, max_seq_len=4)


def text_order(c, seg_a, seg_b, label):
    """(first, second) segment in text order, checking both come from one document."""
    doc_of = lambda t: np.searchsorted(c.sent_off[c.doc_sent], t - 10, side="right") - 1
    assert doc_of(seg_a[0]) == doc_of(seg_a[-1]) == doc_of(seg_b[0]) == doc_of(seg_b[-1])
    return (seg_a, seg_b) if label == 0 else (seg_b, seg_a)


def test_sop_pairs_are_consecutive_segments(corpus_docs):
    c = synthetic(corpus_docs)
    a = make(c, sentence_task="sop", dupe_factor=2, short_seq_prob=0.1)
    n, labels = len(a["length"]), a["next_sentence_label"]
    assert n > 600 and 0.45 < labels.mean() < 0.55  # Swapped with prob 1/2.
    starts = set(c.sent_off[:-1] + 10)
    untruncated = 0
    for i in range(n):
        seg_a, seg_b = segments(a, i)
        assert (np.diff(seg_a) == 1).all() and (np.diff(seg_b) == 1).all()
        first, second = text_order(c, seg_a, seg_b, labels[i])
        assert second[0] > first[-1]  # Label 1: A really comes after B in the document.
        if len(seg_a) + len(seg_b) < 64 - 3:  # Not truncated: nothing between or around them.
            untruncated += 1
            assert second[0] == first[-1] + 1
            assert first[0] in starts and second[-1] + 1 in starts | {c.sent_off[-1] + 10}
    assert untruncated > n // 4


@pytest.mark.parametrize("docs", [
    [[5]], [[1]], [[1, 1, 4]], [[6], [2], [1]], [[500], [3, 2], [900, 1]], []])
def test_sop_edge_cases(docs):
    c = synthetic(docs)
    a = make(c, sentence_task="sop", max_seq_len=16, dupe_factor=3, short_seq_prob=0.5)
    for i in range(len(a["length"])):
        first, second = text_order(c, *segments(a, i), a["next_sentence_label"][i])
        assert second[0] > first[-1]
    if docs == [[5]]:  # One sentence: cut in two, never paired with another document.
        assert len(a["length"]) == 3
    if docs == [[1]]:  # One token cannot be cut in two.
        assert len(a["length"]) == 0


def packed_rows(a):
    """Text of each packed row split at its [SEP]s: a list of lists of token arrays."""
    rows = []
    for ids, L in zip(a["input_ids"], a["length"]):
        assert ids[0] == CLS and ids[L - 1] == SEP and (ids[L:] == PAD).all()
        text = ids[1:L - 1]
        rows.append(np.split(text, np.flatnonzero(text == SEP)))
    return rows


@pytest.mark.parametrize("packing", ["full_sentences", "doc_sentences"])
def test_full_and_doc_sentences(corpus_docs, packing):
    c = synthetic(corpus_docs)
    a = make(c, sentence_task="none", packing=packing, dupe_factor=2)
    doc_first = set(c.sent_off[c.doc_sent[:-1]] + 10)
    doc_last = set(c.sent_off[c.doc_sent[1:]] + 9)
    crossing, ending = 0, 0
    for parts in packed_rows(a):
        for k, part in enumerate(parts):
            if k:  # Text after a [SEP] inside a row starts a document...
                assert part[0] == SEP and part[1] in doc_first
                assert parts[k - 1][-1] in doc_last  # ...and the text before ended one.
                part = part[1:]
            assert len(part) and (np.diff(part) == 1).all()  # Contiguous text.
        crossing += len(parts) > 1
        ending += parts[-1][-1] in doc_last
    text = a["input_ids"][a["input_ids"] >= 10]
    np.testing.assert_array_equal(np.bincount(text - 10), 2)  # Every token once per pass.
    if packing == "full_sentences":
        assert crossing > 0.3 * len(a["length"]) and np.median(a["length"]) >= 0.85 * 64
    else:  # Never across a boundary: every document's end ends a row, in each pass.
        assert crossing == 0 and ending == 2 * c.num_docs
        full = make(c, sentence_task="none", packing="full_sentences", dupe_factor=2)
        assert a["length"].mean() < 0.95 * full["length"].mean()


def _pieces(a):
    """Every `[CLS] X [SEP]` sequence of packed rows, as tuples, checking pack_ids' layout."""
    out = []
    for ids, L, packs, tt, ws in zip(a["input_ids"], a["length"], a["pack_ids"],
                                     a["token_type_ids"], a["word_start"]):
        assert (packs[L:] == 0).all() and (packs[:L] > 0).all() and (ids[L:] == PAD).all()
        assert (np.diff(packs[:L].astype(int)) >= 0).all() and packs[0] == 1  # 1, 1, 2, 2, ...
        assert not tt.any() and not ws[L:].any()
        for k in range(1, packs.max() + 1):
            piece = ids[packs == k]
            assert piece[0] == CLS and piece[-1] == SEP and (piece[1:-1] >= 10).all()
            out.append(tuple(piece))
    return out


def test_packed_documents_are_doc_sentences_rows_packed(corpus_docs):
    """Packing keeps exactly the doc_sentences rows (same seed, same rows) and only moves
    them: the pieces of the packed rows are the doc_sentences rows, as a multiset, and the
    rows are much fuller."""
    docs = [[int(n) for n in np.random.default_rng(d).integers(2, 9, 1 + d % 3)]
            for d in range(400)]  # Short documents: 1-3 sentences of 2-8 tokens.
    c = synthetic(docs)
    doc = make(c, sentence_task="none", packing="doc_sentences", dupe_factor=2)
    packed = make(c, sentence_task="none", packing="packed_documents", dupe_factor=2)
    assert "pack_ids" not in doc and packed["pack_ids"].dtype == np.uint8
    rows = sorted(tuple(ids[:L]) for ids, L in zip(doc["input_ids"], doc["length"]))
    assert sorted(_pieces(packed)) == rows
    assert packed["length"].sum() == doc["length"].sum()
    # Best-fit decreasing leaves at most one row less than half full per pass.
    assert len(packed["length"]) <= np.ceil(doc["length"].sum() / 64) + 2
    assert doc["length"].mean() < 0.4 * 64 and packed["length"].mean() > 0.9 * 64
    assert not packed["next_sentence_label"].any()


@pytest.mark.parametrize("seed", range(5))
def test_pack_lengths_fits_and_is_tight(seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 129, rng.integers(1, 3000)) // rng.integers(1, 8)
    lengths = np.maximum(lengths, 1)
    bin_of, offset = instances._pack_lengths(lengths, 128)
    for b in np.unique(bin_of):  # The items of a bin are disjoint and inside it.
        items = np.flatnonzero(bin_of == b)
        spans = sorted(zip(offset[items], offset[items] + lengths[items]))
        assert spans[0][0] == 0 and spans[-1][1] <= 128
        assert all(e <= s for (_, e), (s, _) in zip(spans[:-1], spans[1:]))
    # Every pair of bins together overfills one (else best fit would have merged them)...
    fill = np.bincount(bin_of, weights=lengths)
    assert np.sort(fill)[:2].sum() > 128 or len(fill) == 1
    # ...so at most one bin is half empty, and bins <= 2 x the lower bound.
    assert len(fill) <= 2 * np.ceil(lengths.sum() / 128)


def test_sentence_task_choices(make_cfg):
    for task in ("nsp", "sop", "none"):
        assert instances.sentence_task(make_cfg(sentence_task=task)) == task
    for fields, match in [({"sentence_task": "mlm"}, r"data.sentence_task='mlm': must be one of"),
                          ({"sentence_task": "none", "packing": "docs"}, r"data.packing='docs'")]:
        with pytest.raises(ValueError, match=match):
            instances.load_instances(make_cfg(**fields), "train", seed=0)


def test_load_instances_real_tokens_cache(make_cfg, monkeypatch):
    cfg = make_cfg()
    a = instances.load_instances(cfg, "train", seed=0)
    assert a["input_ids"].dtype == np.uint16 and isinstance(a["input_ids"], np.memmap)
    n, L = a["input_ids"].shape
    assert L == 32 and n > 200
    assert a["word_start"][:, 0].all() and not a["word_start"].all()  # Some "##" pieces.
    for i in range(20):
        segments(a, i)

    def boom(*args, **kwargs):
        raise AssertionError("cache miss")
    monkeypatch.setattr(instances, "create_instances", boom)
    b = instances.load_instances(cfg, "train", seed=0)  # Cached: nothing is recomputed.
    for k in instances.KEYS:
        np.testing.assert_array_equal(a[k], b[k])
    for fields in [dict(short_seq_prob=0.2), dict(sentence_task="sop"),
                   dict(sentence_task="none"),
                   dict(sentence_task="none", packing="doc_sentences"), dict(lowercase=False),
                   dict(tokenizer="unigram", vocab_path=tokenizer_lib.DEFAULT_PATHS["unigram"])]:
        with pytest.raises(AssertionError, match="cache miss"):  # Any key change is a miss...
            instances.load_instances(make_cfg(**fields), "train", seed=0)
    # ...but packing only matters for packed rows.
    instances.load_instances(make_cfg(packing="doc_sentences"), "train", seed=0)
