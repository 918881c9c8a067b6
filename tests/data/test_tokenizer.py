"""Tokenizers: Google vocab.txt as is, committed vocabs of each kind, specials, word starts."""
import json
import os

import numpy as np
import pytest

from bert_jax.data import tokenizer as tokenizer_lib


def test_default_vocab_specials_first():
    tok = tokenizer_lib.load_tokenizer()
    assert tok.vocab_size == 8192
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert tok.special_ids == (0, 1, 2, 3, 4)
    assert [tok.id_to_token(i) for i in range(5)] == list(tokenizer_lib.SPECIAL_TOKENS)


@pytest.fixture
def google_vocab(tmp_path):
    # Google's layout: [PAD]=0, unused slots, [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103.
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + [
        "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "un", "##aff", "##able", "cat", ".", ",",
        "run", "##ning", "a"]
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return str(path), tokens


def test_google_vocab_ids_are_line_numbers(google_vocab):
    path, tokens = google_vocab
    tok = tokenizer_lib.load_tokenizer(path)
    assert tok.special_ids == (0, 100, 101, 102, 103)
    assert tok.vocab_size == len(tokens)
    (ids, ws), (empty_ids, empty_ws) = tok.encode_batch(["The UNAFFABLE cat, running.", ""])
    assert [tokens[i] for i in ids] == ["the", "un", "##aff", "##able", "cat", ",", "run",
                                        "##ning", "."]
    assert ws.tolist() == [1, 1, 0, 0, 1, 1, 1, 0, 1]
    assert ids.dtype == np.int32 and ws.dtype == np.int32
    assert len(empty_ids) == 0 and len(empty_ws) == 0
    # No [CLS]/[SEP] added; unknown words become one [UNK] that starts a word.
    ids, ws = tok.encode_batch(["a zebra"])[0]
    assert ids.tolist() == [tokens.index("a"), 100] and ws.tolist() == [1, 1]
    assert tok.decode(ids[:1].tolist() + [101, 102]) == "a"


def test_literal_mask_text_is_not_the_mask_token():
    tok = tokenizer_lib.load_tokenizer()
    ids, _ = tok.encode_batch(["use [MASK] here"])[0]
    assert tok.mask_id not in ids.tolist()


def test_cased_keeps_case(google_vocab):
    path, tokens = google_vocab
    ids, _ = tokenizer_lib.load_tokenizer(path, lowercase=False).encode_batch(["The cat"])[0]
    assert ids.tolist() == [100, tokens.index("cat")]  # "The" is not in the (lowercase) vocab.


def test_missing_vocab_file(tmp_path):
    missing = str(tmp_path / "nope" / "vocab.txt")
    with pytest.raises(FileNotFoundError, match="data.vocab_path") as e:
        tokenizer_lib.load_tokenizer(missing)
    assert missing in str(e.value)


def test_vocab_without_specials(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("[PAD]\n[UNK]\nthe\n")
    with pytest.raises(ValueError, match=r"\[CLS\]"):
        tokenizer_lib.load_tokenizer(str(path))


# The committed vocabularies of each kind: file, lowercase, (pad, unk, cls, sep, mask) ids and
# role tokens, as documented in make_vocab.py.
COMMITTED = {
    "wordpiece": (False, True, (0, 1, 2, 3, 4)),
    "bpe": (True, False, (1, 3, 0, 2, 8191)),
    "unigram": (True, True, (0, 1, 2, 3, 4)),
}
TEXT = "The parser returns os.path.join(a, b), e.g. for Foo; see [MASK] or <mask> and <s>."


@pytest.mark.parametrize("kind", tokenizer_lib.KINDS)
def test_committed_vocab_files(kind):
    is_json, lowercase, ids = COMMITTED[kind]
    path = tokenizer_lib.DEFAULT_PATHS[kind]
    assert path.endswith(".json") == is_json
    tok = tokenizer_lib.load_tokenizer(path, lowercase)  # Kind taken from the file...
    assert tok.kind == kind and tok.lowercase == lowercase and tok.vocab_size == 8192
    assert tokenizer_lib.load_tokenizer(path, lowercase, kind=kind).kind == kind  # ...or given.
    assert tok.special_ids == ids
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == ids
    assert [tok.id_to_token(i) for i in ids] == list(tokenizer_lib.ROLE_TOKENS[kind])
    assert [tok.token_to_id(t) for t in tokenizer_lib.ROLE_TOKENS[kind]] == list(ids)
    assert len(set(tok.id_to_token(i) for i in range(tok.vocab_size))) == tok.vocab_size
    assert os.path.getsize(path) < 400_000
    # Round trip: lossless for cased byte-level BPE; the normalized text for the uncased ones.
    ids_, ws = tok.encode_batch([TEXT])[0]
    assert tok.unk_id not in ids_.tolist() and ws[0] == 1
    expected = TEXT if not lowercase else TEXT.lower()
    decoded = tok.decode(ids_)
    if kind == "wordpiece":  # BERT's decoder puts spaces around punctuation.
        decoded, expected = decoded.replace(" ", ""), expected.replace(" ", "")
    assert decoded == expected
    # Specials in the text stay text; decoding without skipping shows them by name.
    assert not set(ids_.tolist()) & set(tok.special_ids)
    roles = tokenizer_lib.ROLE_TOKENS[kind]
    shown = tok.decode([tok.cls_id, *tok.encode_batch(["word"])[0][0], tok.sep_id, tok.pad_id],
                       skip_special_tokens=False)
    assert shown == f"{roles[2]} word {roles[3]} {roles[0]}"


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_tokenizer_json_matches_hf_on_plain_text(kind):
    # Without specials in the text, bert_jax's loading is the file's own HF pipeline.
    from tokenizers import Tokenizer as HFTokenizer
    path = tokenizer_lib.DEFAULT_PATHS[kind]
    tok = tokenizer_lib.load_tokenizer(path, COMMITTED[kind][1])
    hf = HFTokenizer.from_file(path)
    texts = ["Return the value of x.", "  Café naïve  über\tSPAM, eggs!", "x" * 200, ""]
    for text, (ids, _) in zip(texts, tok.encode_batch(texts)):
        assert ids.tolist() == hf.encode(text, add_special_tokens=False).ids


@pytest.mark.parametrize("kind,literal", [
    ("wordpiece", "[MASK]"), ("wordpiece", "[CLS]"), ("bpe", "<mask>"), ("bpe", "<s>"),
    ("bpe", "</s>"), ("bpe", "<pad>"), ("unigram", "[MASK]"), ("unigram", "[CLS]"),
    ("unigram", "[SEP]"), ("unigram", "<pad>"), ("unigram", "<unk>")])
def test_literal_special_text_stays_text(kind, literal):
    tok = tokenizer_lib.load_tokenizer(tokenizer_lib.DEFAULT_PATHS[kind], COMMITTED[kind][1])
    for text in [literal, f"use {literal} here", f"x{literal}y", literal.lower()]:
        ids, _ = tok.encode_batch([text])[0]
        assert not set(ids.tolist()) & set(tok.special_ids), (text, ids)
        assert tok.decode(ids).replace(" ", "") == (
            text.lower() if tok.lowercase else text).replace(" ", "")


@pytest.mark.parametrize("kind,marker", [("bpe", "Ġ"), ("unigram", "▁")])
def test_word_start_marker(kind, marker):
    tok = tokenizer_lib.load_tokenizer(tokenizer_lib.DEFAULT_PATHS[kind], COMMITTED[kind][1])
    texts = [TEXT, "Multiprocessing synchronization primitives.", "zyzzyva quux"]
    for ids, ws in tok.encode_batch(texts):
        pieces = [tok.id_to_token(i) for i in ids]
        assert ws.tolist() == [int(p.startswith(marker)) for p in pieces]
        assert ws[0] == 1 and 0 < ws.sum() < len(ws)  # Some words are split into pieces.
    # Words are exactly the runs that begin at a flagged piece.
    ids, ws = tok.encode_batch(["Multiprocessing synchronization primitives."])[0]
    words = np.split(ids, np.flatnonzero(ws)[1:])
    assert [tok.decode(w).strip() for w in words] == (
        ["Multiprocessing", "synchronization", "primitives."] if kind == "bpe" else
        ["multiprocessing", "synchronization", "primitives."])


def test_word_start_without_prefix_space(tmp_path):
    # RoBERTa's own files have add_prefix_space=false: a text's first piece has no "Ġ" but
    # still starts a word.
    spec = json.load(open(tokenizer_lib.DEFAULT_PATHS["bpe"], encoding="utf-8"))
    spec["pre_tokenizer"]["add_prefix_space"] = False
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    tok = tokenizer_lib.load_tokenizer(str(path), lowercase=False)
    ids, ws = tok.encode_batch(["Hello world"])[0]
    assert not tok.id_to_token(ids[0]).startswith("Ġ") and ws[0] == 1


def test_kind_and_case_mismatches(tmp_path):
    with pytest.raises(ValueError, match="data.tokenizer='bpe'.*wordpiece.*embedded_cased_bpe"):
        tokenizer_lib.load_tokenizer(tokenizer_lib.DEFAULT_VOCAB_PATH, kind="bpe")
    with pytest.raises(ValueError, match="data.tokenizer='sentencepiece': must be one of"):
        tokenizer_lib.load_tokenizer(tokenizer_lib.DEFAULT_VOCAB_PATH, kind="sentencepiece")
    with pytest.raises(ValueError, match="set data.lowercase=False"):
        tokenizer_lib.load_tokenizer(tokenizer_lib.DEFAULT_PATHS["bpe"], lowercase=True)
    with pytest.raises(ValueError, match="set data.lowercase=True"):
        tokenizer_lib.load_tokenizer(tokenizer_lib.DEFAULT_PATHS["unigram"], lowercase=False)
    renamed = tmp_path / "vocab.bert"  # A vocab.txt under another name is still one.
    renamed.write_bytes(open(tokenizer_lib.DEFAULT_VOCAB_PATH, "rb").read())
    assert tokenizer_lib.load_tokenizer(str(renamed)).kind == "wordpiece"
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a HF tokenizer.json"):
        tokenizer_lib.load_tokenizer(str(bad))
    spec = json.load(open(tokenizer_lib.DEFAULT_PATHS["unigram"], encoding="utf-8"))
    spec["model"]["vocab"][4][0] = "[MASQUE]"
    bad.write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(ValueError, match=r"lacks special token\(s\) \['\[MASK\]'\]"):
        tokenizer_lib.load_tokenizer(str(bad))
