"""End-of-run report: the unigram baseline and fill-in-the-blank examples."""

from __future__ import annotations

import sys

import numpy as np


def unigram_baseline(batches: list[dict], special_ids) -> float:
    """MLM accuracy of always predicting the most frequent token of these batches.

    Targets are drawn uniformly from the real, non-special tokens, so the expected accuracy
    of a constant guess is that token's share of them. The mode is taken from the batches
    themselves, which makes this an upper bound on the baseline: a conservative yardstick.
    """
    counts: dict[int, int] = {}
    total = 0
    for batch in batches:
        ids = np.asarray(batch["input_ids"])[np.asarray(batch["attention_mask"]) == 1]
        ids = ids[~np.isin(ids, list(special_ids))]
        values, n = np.unique(ids, return_counts=True)
        for v, c in zip(values.tolist(), n.tolist()):
            counts[v] = counts.get(v, 0) + c
        total += ids.size
    return max(counts.values()) / total if total else 0.0


def print_fill_in_examples(par, params, batch: dict, base_key, tokenizer, num: int,
                           file=sys.stdout) -> None:
    """Prints `num` eval sequences with their masked targets and the model's top-5 guesses."""
    out = par.unshard(par.predict(params, par.shard_batch(batch), base_key))
    print("\nFill in the blanks (held-out text; target -> model's top 5):", file=file)
    shown = 0
    for b in range(out["input_ids"].shape[0]):
        weights = out["masked_weights"][b]
        if shown >= num or weights.sum() == 0:
            continue
        shown += 1
        length = int(np.asarray(batch["attention_mask"][b]).sum())
        positions = out["masked_positions"][b][weights > 0]
        tokens = [_piece(tokenizer, i) for i in batch["input_ids"][b][:length]]
        for k, pos in enumerate(positions):
            tokens[pos] = f"[__{k + 1}__]"
        print(f"\n  {_join_pieces(tokens)}", file=file)
        for k, pos in enumerate(positions):
            slot = int(np.nonzero(out["masked_positions"][b] == pos)[0][0])
            target = _piece(tokenizer, out["masked_labels"][b][slot])
            guesses = [_piece(tokenizer, i) for i in out["top_ids"][b][slot]]
            mark = "ok" if guesses[0] == target else "  "
            print(f"    {mark} __{k + 1}__ {target:>12} -> {' '.join(guesses)}", file=file)


_WORD_MARK = {"bpe": "\u0120", "unigram": "\u2581"}  # byte-level "Ġ", SentencePiece "▁"


def _piece(tokenizer, token_id) -> str:
    """A token as people read it, WordPiece-style: a piece that continues a word is "##" +
    its text. BPE's byte symbols ("ĠâĢĵ") and Unigram's "▁" are decoded to text."""
    token_id = int(token_id)
    token = tokenizer.id_to_token(token_id)
    kind = getattr(tokenizer, "kind", "wordpiece")
    if kind == "wordpiece" or token_id in tokenizer.special_ids:
        return token
    text = tokenizer.decode([token_id]).strip()  # a bare "▁" is an empty word start
    return text if token.startswith(_WORD_MARK[kind]) else "##" + text


def _join_pieces(tokens: list[str]) -> str:
    """WordPiece tokens -> readable text ('##' continuations glued to their word)."""
    text = ""
    for tok in tokens:
        if tok.startswith("##"):
            text += tok[2:]
        else:
            text += (" " if text else "") + tok
    return text
