"""The fill-in-the-blank printout shows text people can read, whatever the tokenizer."""

import pytest

from bert_jax.data.tokenizer import DEFAULT_PATHS, load_tokenizer
from bert_jax.training.report import _join_pieces, _piece

TEXT = "The debugger \u2013 extensible, isn't it."


@pytest.mark.parametrize("kind,expected", [
    ("bpe", f"<s> {TEXT} </s>"),  # byte-level symbols ("Ġ", "âĢĵ") decoded
    ("unigram", f"[CLS] {TEXT.lower()} [SEP]"),  # "▁" word marks become spaces
    ("wordpiece", "[CLS] the debugger \u2013 extensible , isn ' t it . [SEP]"),
])
def test_pieces_read_as_text(kind, expected):
    tok = load_tokenizer(DEFAULT_PATHS[kind], kind != "bpe", kind=kind)
    ids, _ = tok.encode_batch([TEXT])[0]
    assert _join_pieces([_piece(tok, i) for i in [tok.cls_id, *ids, tok.sep_id]]) == expected
