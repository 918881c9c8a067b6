"""WordPiece tokenizer: Google vocab.txt as is, special ids, word starts, errors."""
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
