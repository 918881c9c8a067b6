"""AMBERT's coarse tokens: the phrase vocabulary's method and determinism, the greedy longest
match, and coarse tokens aligned with the fine ones in the corpus and in instances."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from bert_jax.data import instances, phrases
from bert_jax.data import tokenizer as tokenizer_lib
from bert_jax.data.make_vocab import write_vocab

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def fine():
    return tokenizer_lib.load_tokenizer(tokenizer_lib.DEFAULT_VOCAB_PATH, True)


def _planted_docs(seed=0, num_docs=60):
    """Documents of random common words, with planted collocations: "new york city" and
    "machine learning" (always together), "of" and "the" everywhere but independently (so
    "of the" is frequent only by chance), and "alpha" ending / "beta" starting sentences."""
    rng = np.random.default_rng(seed)
    filler = ["data", "value", "list", "file", "name", "object", "string", "method", "class",
              "number", "time", "type", "line", "error", "result", "system", "user", "key"]
    docs = []
    for _ in range(num_docs):
        sents = []
        for _ in range(rng.integers(3, 7)):
            words = list(rng.choice(filler, rng.integers(4, 9)))
            for planted in (["new", "york", "city"], ["machine", "learning"], ["of"], ["the"],
                            ["the"], ["of"], ["of"], ["the"]):
                if rng.random() < 0.5:
                    at = int(rng.integers(0, len(words) + 1))
                    words[at:at] = planted
            sents.append(" ".join(words) + " alpha.")
            sents.append("beta " + " , ".join(rng.choice(filler, 3)) + ".")
        docs.append(sents)
    return docs


def _words(corpus, fine):
    """Per sentence, its words as text (a word = a run of pieces from a word start)."""
    first, _ = phrases.word_layout(corpus.word_start)
    ends = np.append(first[1:], len(corpus.tokens))
    sent = phrases.sentence_of_words(first, corpus.sent_off)
    out = [[] for _ in range(len(corpus.sent_off) - 1)]
    for a, b, s in zip(first, ends, sent):
        out[s].append((fine.decode(corpus.tokens[a:b]), int(a), int(b)))
    return out


def test_phrase_vocab_method(fine):
    corpus = instances.tokenize_documents(_planted_docs(), fine)
    kw = dict(vocab_size=30, max_phrases=10, min_count=5, discount=2.0, min_pmi=1.0)
    entries, stats = phrases.build_phrase_vocab(corpus, fine, **kw)
    assert entries[:5] == list(tokenizer_lib.SPECIAL_TOKENS) and len(entries) == 30
    # Deterministic, and a property of the counts only: document order does not matter.
    again, _ = phrases.build_phrase_vocab(
        instances.tokenize_documents(_planted_docs()[::-1], fine), fine, **kw)
    assert again == entries
    found = [e for e in entries if " " in e]
    sentences = [[w for w, _, _ in s] for s in _words(corpus, fine)]
    assert 0 < len(found) <= 10 and stats["phrases"] == len(found)
    assert {"new york", "york city", "new york city", "machine learning"} <= set(found)
    of_the = sum(s[i:i + 2] == ["of", "the"] for s in sentences for i in range(len(s) - 1))
    assert of_the >= 5 and "of the" not in found  # frequent, but only as often as chance
    assert "alpha beta" not in found  # never inside one sentence
    # Recount every kept phrase naively: count, PMI, no punctuation, within sentences.
    flat = [w for s in sentences for w in s]
    unigram = {w: flat.count(w) for w in set(flat)}
    for phrase in found:
        parts = phrase.split(" ")
        n = len(parts)
        count = sum(s[i:i + n] == parts for s in sentences for i in range(len(s) - n + 1))
        pmi = math.log(count - 2.0) + (n - 1) * math.log(len(flat)) - sum(
            math.log(unigram[w]) for w in parts)
        assert count >= 5 and pmi >= 1.0 - 1e-9, (phrase, count, pmi)
        assert not any(phrases.is_punctuation(w) for w in parts)
    # Single words fill the rest, the most frequent first; all entries ordered by count.
    assert {",", ".", "the", "of", "alpha", "beta"} <= set(entries)
    singles = [w for w in entries[5:] if " " not in w]
    assert len(singles) == 30 - 5 - len(found)
    assert min(unigram[w] for w in singles) >= max(
        c for w, c in unigram.items() if w not in singles)


def _vocab_file(tmp_path, entries):
    path = tmp_path / "phrases.txt"
    write_vocab(list(tokenizer_lib.SPECIAL_TOKENS) + entries, str(path))
    return str(path)


def _reference_tokenize(corpus, fine, vocab_entries):
    """Greedy longest match over word strings, in plain Python."""
    table = {tuple(e.split(" ")): i + 5 for i, e in enumerate(vocab_entries)}
    longest = max(len(k) for k in table)
    start = np.zeros(len(corpus.tokens), np.uint8)
    tok = np.zeros(len(corpus.tokens), np.int32)
    for words in _words(corpus, fine):
        i = 0
        while i < len(words):
            n = next((n for n in range(min(longest, len(words) - i), 1, -1)
                      if tuple(w for w, _, _ in words[i:i + n]) in table), 1)
            key = tuple(w for w, _, _ in words[i:i + n])
            a, b = words[i][1], words[i + n - 1][2]
            start[a] = 1
            tok[a:b] = table.get(key, 1)  # [UNK]
            i += n
    return start, tok


def test_greedy_longest_match_equals_reference(fine, tmp_path):
    entries = ["new", "york", "city", "hall", "state", "of", "the", "new york",
               "new york city", "york city hall", "city hall", "the state of"]
    vocab = phrases.PhraseVocab(_vocab_file(tmp_path, entries), fine)
    assert vocab.skipped == 0 and vocab.max_n == 3
    rng = np.random.default_rng(0)
    words = ["new", "york", "city", "hall", "state", "of", "the", "zebra"]  # zebra: OOV
    docs = [[" ".join(rng.choice(words, rng.integers(1, 12))) for _ in range(4)]
            for _ in range(50)]
    docs.append(["new york city hall", "the state of new york", "city hall"])
    corpus = instances.tokenize_documents(docs, fine)
    start, tok = vocab.tokenize(corpus.tokens, corpus.word_start, corpus.sent_off)
    ref_start, ref_tok = _reference_tokenize(corpus, fine, entries)
    np.testing.assert_array_equal(start, ref_start)
    np.testing.assert_array_equal(tok, ref_tok)
    # The hand-checked cases, in the last document.
    last = corpus.sent_off[corpus.doc_sent[-2]]
    text = [vocab.id_to_token(t) for t, s in zip(tok[last:], start[last:]) if s]
    assert text == ["new york city", "hall", "the state of", "new york", "city hall"]


@pytest.fixture(scope="module")
def embedded_corpus(embedded, fine):
    _, train, _ = embedded
    return instances.tokenize_documents(train, fine)


def test_committed_vocab_regenerates_byte_for_byte(embedded, tmp_path):
    """The documented command remakes bert_jax/data/vocab/embedded_uncased_phrases_8k.txt."""
    cfg, _, _ = embedded
    out = tmp_path / "phrases.txt"
    subprocess.run([sys.executable, "-m", "bert_jax.data.make_vocab", "--kind", "phrases",
                    "--out", str(out), "--vocab_size", "8192",
                    "--tfds_data_dir", cfg.tfds_data_dir],
                   cwd=_REPO, check=True, capture_output=True)
    assert out.read_bytes() == open(phrases.DEFAULT_PATH, "rb").read()


def test_coarse_tokens_tile_the_fine_ones_and_decode_to_their_entry(embedded_corpus, fine):
    c = embedded_corpus
    vocab = phrases.PhraseVocab(phrases.DEFAULT_PATH, fine)
    start, tok = vocab.tokenize(c.tokens, c.word_start, c.sent_off)
    assert start[c.sent_off[:-1]].all()  # every sentence starts a coarse token
    assert (start <= c.word_start).all()  # coarse tokens are whole words
    # A coarse token's id is constant over its pieces.
    owner = np.cumsum(start) - 1
    assert (tok == tok[np.flatnonzero(start)][owner]).all()
    bounds = np.append(np.flatnonzero(start), len(start))
    multi = 0
    for a, b in zip(bounds[:-1], bounds[1:]):
        if tok[a] != vocab.unk_id:
            assert fine.decode(c.tokens[a:b]) == vocab.id_to_token(tok[a])
            multi += " " in vocab.id_to_token(tok[a])
        else:  # out of the coarse vocab: one word
            assert c.word_start[a:b].sum() == 1
    assert multi > 0.05 * (len(bounds) - 1)  # phrases do occur


@pytest.mark.parametrize("task", ["none", "nsp"])
def test_instances_carry_aligned_coarse_tokens(make_cfg, fine, task):
    cfg = make_cfg(coarse_vocab_path=phrases.DEFAULT_PATH, sentence_task=task, max_seq_len=24)
    arrays = instances.load_instances(cfg, "train", seed=0)
    plain = instances.load_instances(make_cfg(sentence_task=task, max_seq_len=24), "train", 0)
    for k in instances.KEYS:  # The fine arrays do not depend on the coarse ones.
        np.testing.assert_array_equal(arrays[k], plain[k])
    vocab = phrases.PhraseVocab(phrases.DEFAULT_PATH, fine)
    ids, start, cids = arrays["input_ids"], arrays["coarse_start"], arrays["coarse_ids"]
    real = np.arange(ids.shape[1])[None] < arrays["length"][:, None]
    assert not start[~real].any() and (cids[start == 0] == vocab.pad_id).all()
    assert (start <= arrays["word_start"]).all() & (start[:, 0] == 1).all()
    specials = np.isin(ids, [fine.cls_id, fine.sep_id]) & real
    assert (start[specials] == 1).all()
    assert (cids[specials] == np.where(ids[specials] == fine.cls_id, vocab.cls_id,
                                       vocab.sep_id)).all()
    checked = unknown = 0
    for r in range(min(len(ids), 300)):
        bounds = np.append(np.flatnonzero(start[r]), arrays["length"][r])
        for a, b in zip(bounds[:-1], bounds[1:]):
            if ids[r, a] in (fine.cls_id, fine.sep_id):
                assert b == a + 1  # a special is a coarse token of its own
            elif cids[r, a] != vocab.unk_id:
                assert fine.decode(ids[r, a:b]) == vocab.id_to_token(cids[r, a])
                checked += 1
            else:
                unknown += 1
    assert checked > 2 * unknown  # (random words of the fine vocab: many are not coarse)
