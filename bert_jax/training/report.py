"""End-of-run report: the unigram baseline, fill-in-the-blank examples, and the run's
size and speed in `workdir/summary.json`."""

from __future__ import annotations

import json
import os
import sys
import time

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


RUN_SUMMARY_FILE = "summary.json"


def record_invocation(workdir: str, *, num_params: int, num_steps: int, tokens_per_step: int,
                      start_step: int, end_step: int, wall_s: float, train_s: float,
                      timed_steps: int) -> dict:
    """Adds one invocation of the loop to `workdir/summary.json` and updates its totals.

    The totals are what a sweep's table reports: `wall_time_s` is the sum over invocations
    (a resumed run's too; process start-up before the loop is not included), `tokens_per_sec`
    counts only timed steps (`train_s` leaves out each invocation's first step, which
    compiles, and the evaluations), so it is the steady-state speed.
    """
    from bert_jax.metrics.writers import atomic_write

    path = os.path.join(workdir, RUN_SUMMARY_FILE)
    invocations = []
    if os.path.exists(path):
        with open(path) as f:
            invocations = json.load(f).get("invocations", [])
    invocations.append(dict(start_step=start_step, end_step=end_step, wall_s=round(wall_s, 3),
                            train_s=round(train_s, 3), timed_steps=timed_steps))
    timed = sum(i["timed_steps"] for i in invocations)
    seconds = sum(i["train_s"] for i in invocations)
    summary = dict(num_params=num_params, num_steps=num_steps, step=end_step,
                   finished=end_step >= num_steps,
                   wall_time_s=round(sum(i["wall_s"] for i in invocations), 3),
                   tokens_per_sec=round(timed * tokens_per_step / seconds, 1) if seconds else None,
                   invocations=invocations)
    atomic_write(path, json.dumps(summary, indent=2) + "\n")
    return summary


class SteadyTimer:
    """A training loop's steady-state time for summary.json: from its first finished step
    (compiled by then) to its last, less the evaluations that ran in between. An evaluation
    after the last step (the final one) lies outside that span and is not subtracted."""

    def __init__(self):
        self._first = self._last = None  # (step, time) of the first and the latest finished
        self._evals = []  # (end time, seconds) of each evaluation

    def step_finished(self, step: int) -> None:
        self._last = (step, time.time())
        self._first = self._first or self._last

    def evaluated(self, seconds: float) -> None:
        self._evals.append((time.time(), seconds))

    def record(self, workdir: str, **fields) -> dict | None:
        """record_invocation with this invocation's timed steps (`fields`: the others); None,
        and nothing written, when no step finished."""
        if self._first is None:
            return None
        (first, t_first), (last, t_last) = self._first, self._last
        evals = sum(s for end, s in self._evals if t_first < end <= t_last)
        return record_invocation(workdir, train_s=t_last - t_first - evals,
                                 timed_steps=last - first, **fields)
