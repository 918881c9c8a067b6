"""SQuAD v1.1 / v2.0: reading, sliding-window features, span decoding, official-style scores.

An example is a `SquadExample`: one question (`id` = its qid) with its context, the gold
answer texts and their character offsets (none for a v2.0 unanswerable question). Sources:
TFDS `squad/v1.1` / `squad/v2.0` (splits train, validation) or the official JSON files
`{train,dev}-v1.1.json` / `{train,dev}-v2.0.json`.

Features: the context is tokenized once, with character offsets; each window is
`[CLS] question [SEP] context[start : start + W] [SEP]`, W = max_seq_len - |question| - 3,
and the next window starts min(W, doc_stride) pieces later, so every piece lies in at least
one window. A piece in several windows "has max context" in the one where
min(pieces left of it, pieces right of it) + 0.01 * window length is largest (the first on a
tie): answers may only start at such pieces, so each piece is decided in one window. Labels:
the first gold answer's first and last pieces, or 0 ([CLS]) when it is not wholly inside the
window or there is none.

Decoding: per window, the `n_best_size` best starts (among pieces with max context) and ends
(among context pieces); a span (s, e) needs s <= e < s + max_answer_length; its score is
start_logit[s] + end_logit[e], and the example's best over its windows wins. The answer is the
context between the span's character offsets, so it is the original text, not detokenized
pieces. v2.0: the null score is start_logit[0] + end_logit[0], its minimum over the windows;
the answer is "" when null - best span score > null_score_diff_threshold.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Sequence

import numpy as np

from bert_jax.config import ConfigError
from bert_jax.data import DataError
from bert_jax.data.tasks import common
from bert_jax.metrics import tasks as metrics

_VERSIONS = {"squad_v1": "v1.1", "squad_v2": "v2.0"}
_FILE_SPLITS = {"train": "train", "validation": "dev"}


@dataclasses.dataclass(frozen=True)
class SquadExample:
    id: str
    question: str
    context: str
    answers: tuple[str, ...]         # Gold texts; () when unanswerable (v2.0).
    answer_starts: tuple[int, ...]   # Character offsets of `answers` in `context`.
    is_impossible: bool = False
    title: str = ""


def read_file(path: str) -> list[SquadExample]:
    """Questions of an official SQuAD JSON file ({"data": [{"title", "paragraphs": [{
    "context", "qas": [{"id", "question", "answers": [{"text", "answer_start"}],
    "is_impossible" (v2.0)}]}]}]})."""
    try:
        with open(path, encoding="utf-8") as f:
            articles = json.load(f)["data"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(f"{path} is not a SQuAD JSON file ({type(e).__name__}: {e}); "
                        "expected {\"data\": [articles]}.") from None
    examples = []
    for article in articles:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                answers = qa.get("answers", [])
                examples.append(SquadExample(
                    str(qa["id"]), qa["question"], context,
                    tuple(a["text"] for a in answers),
                    tuple(int(a["answer_start"]) for a in answers),
                    bool(qa.get("is_impossible", False)), article.get("title", "")))
    return examples


def read_local(task, split: str, local_dir: str) -> list[SquadExample]:
    name = f"{_FILE_SPLITS[split]}-{_VERSIONS[task.name]}.json"
    return read_file(common.require_file(
        os.path.join(local_dir, name),
        f"SQuAD's {split} file {name} (local_dir must hold the official JSON files)"))


def read_tfds(task, split: str, data_dir: str = "") -> list[SquadExample]:
    return [from_tfds_record(r) for r in common.tfds_records(task.tfds_name, split, data_dir)]


def from_tfds_record(record: dict) -> SquadExample:
    answers = record["answers"]
    return SquadExample(
        common.text(record["id"]), common.text(record["question"]),
        common.text(record["context"]), tuple(common.text(t) for t in answers["text"]),
        tuple(int(s) for s in answers["answer_start"]),
        bool(record.get("is_impossible", False)), common.text(record.get("title", b"")))


def windows(num_pieces: int, window: int, doc_stride: int) -> list[tuple[int, int]]:
    """(start, length) of the windows over `num_pieces` context pieces (module docstring)."""
    spans, start = [], 0
    while True:
        length = min(num_pieces - start, window)
        spans.append((start, length))
        if start + length >= num_pieces:
            return spans
        start += min(length, doc_stride)


def max_context_window(spans: Sequence[tuple[int, int]], num_pieces: int) -> np.ndarray:
    """For each context piece [T], the index of the window where it has most context."""
    best = np.zeros(num_pieces, np.int64)
    best_score = np.full(num_pieces, -np.inf)
    for w, (start, length) in enumerate(spans):
        j = np.arange(start, start + length)
        score = np.minimum(j - start, start + length - 1 - j) + 0.01 * length
        better = score > best_score[j]  # Strict: the first window wins a tie.
        best[j[better]], best_score[j[better]] = w, score[better]
    return best


def _answer_pieces(example: SquadExample, offsets_Tx2: np.ndarray) -> tuple[int, int] | None:
    """First and last context piece of the first gold answer, or None without one."""
    if example.is_impossible or not example.answers:
        return None
    char_start = example.answer_starts[0]
    char_end = char_start + len(example.answers[0])
    inside = np.flatnonzero((offsets_Tx2[:, 1] > char_start) & (offsets_Tx2[:, 0] < char_end))
    return (int(inside[0]), int(inside[-1])) if len(inside) else None


def _trimmed(context: str, offsets: Sequence[tuple[int, int]]) -> np.ndarray:
    """Piece offsets [T, 2] without the whitespace a BPE ("Ġ") or Unigram ("▁") piece
    includes before its word, so a span's offsets give exactly its text."""
    out = np.asarray(offsets, np.int32).reshape(-1, 2)
    for row in out:
        while row[0] < row[1] - 1 and context[row[0]].isspace():
            row[0] += 1
    return out


def featurize(task, examples: Sequence[SquadExample], tokenizer, max_seq_len: int, *,
              doc_stride: int = 128, max_query_length: int = 64) -> dict[str, np.ndarray]:
    """Windows of every example (module docstring): model inputs [N, L], `example_index` [N],
    `start_position`/`end_position` int32 [N], and for decoding `_offsets` int32 [N, L, 2]
    (character offsets of context pieces in the context, -1 elsewhere) and
    `_token_is_max_context` int32 [N, L]."""
    if doc_stride < 1 or max_query_length < 1:
        raise ConfigError(f"doc_stride ({doc_stride}) and max_query_length "
                          f"({max_query_length}) must be >= 1.")
    common.check_max_seq_len(max_seq_len, max_query_length + 4,
                             f"[CLS], a question of max_query_length={max_query_length} "
                             "pieces, two [SEP] and some context")
    contexts = list(dict.fromkeys(e.context for e in examples))
    encoded = tokenizer.hf.encode_batch(contexts, add_special_tokens=False)
    by_context = {c: (np.asarray(enc.ids, np.int32), _trimmed(c, enc.offsets))
                  for c, enc in zip(contexts, encoded)}
    questions = tokenizer.encode_batch([e.question for e in examples])
    rows = {k: [] for k in ("ids", "types", "example", "start", "end", "offsets", "max")}
    for i, (example, (question, _)) in enumerate(zip(examples, questions)):
        question = question[:max_query_length].tolist()
        doc_ids, doc_offsets = by_context[example.context]
        answer = _answer_pieces(example, doc_offsets)
        first = len(question) + 2  # Row position of the window's first context piece.
        spans = windows(len(doc_ids), max_seq_len - first - 1, doc_stride)
        best = max_context_window(spans, len(doc_ids))
        for w, (start, length) in enumerate(spans):
            ids, types = common.frame(tokenizer, question, doc_ids[start:start + length])
            offsets = np.full((len(ids), 2), -1, np.int32)
            offsets[first:first + length] = doc_offsets[start:start + length]
            is_max = np.zeros(len(ids), np.int32)
            is_max[first:first + length] = best[start:start + length] == w
            s = e = 0
            if answer and start <= answer[0] and answer[1] < start + length:
                s, e = answer[0] - start + first, answer[1] - start + first
            for key, value in zip(rows, (ids, types, i, s, e, offsets, is_max)):
                rows[key].append(value)
    features = common.model_inputs(tokenizer, rows["ids"], rows["types"], max_seq_len)
    n = len(rows["ids"])
    features["example_index"] = np.array(rows["example"], np.int32).reshape(n)
    features["start_position"] = np.array(rows["start"], np.int32).reshape(n)
    features["end_position"] = np.array(rows["end"], np.int32).reshape(n)
    features["_offsets"] = np.full((n, max_seq_len, 2), -1, np.int32)
    for r, offsets in enumerate(rows["offsets"]):
        features["_offsets"][r, :len(offsets)] = offsets
    features["_token_is_max_context"] = common.pad_rows(rows["max"], max_seq_len)
    return features


def _best_span(start_L, end_L, offsets_Lx2, is_max_L, n_best_size, max_answer_length):
    """(score, first piece, last piece) of one window's best span, or None."""
    in_context = offsets_Lx2[:, 0] >= 0
    can_start = np.flatnonzero(in_context & (is_max_L > 0))
    can_end = np.flatnonzero(in_context)
    if not len(can_start):
        return None
    starts = can_start[np.argsort(-start_L[can_start], kind="stable")[:n_best_size]]
    ends = can_end[np.argsort(-end_L[can_end], kind="stable")[:n_best_size]]
    s_KxK, e_KxK = np.meshgrid(starts, ends, indexing="ij")
    valid = (e_KxK >= s_KxK) & (e_KxK - s_KxK + 1 <= max_answer_length)
    if not valid.any():
        return None
    score_KxK = np.where(valid, start_L[s_KxK] + end_L[e_KxK], -np.inf)
    k = np.unravel_index(np.argmax(score_KxK), score_KxK.shape)
    return float(score_KxK[k]), int(s_KxK[k]), int(e_KxK[k])


def postprocess(task, examples: Sequence[SquadExample], features: dict,
                outputs: dict[str, np.ndarray], *, n_best_size: int = 20,
                max_answer_length: int = 30, null_score_diff_threshold: float = 0.0
                ) -> dict[str, str]:
    """{qid: answer text} from `start_logits`, `end_logits` [N, L] (module docstring)."""
    start_NxL = np.asarray(outputs["start_logits"], np.float32)
    end_NxL = np.asarray(outputs["end_logits"], np.float32)
    offsets_NxLx2, is_max_NxL = features["_offsets"], features["_token_is_max_context"]
    rows_of = [[] for _ in examples]
    for row, i in enumerate(np.asarray(features["example_index"]).tolist()):
        rows_of[i].append(row)
    predictions = {}
    for example, rows in zip(examples, rows_of):
        best, null_score = None, np.inf
        for row in rows:
            null_score = min(null_score, float(start_NxL[row, 0] + end_NxL[row, 0]))
            span = _best_span(start_NxL[row], end_NxL[row], offsets_NxLx2[row],
                              is_max_NxL[row], n_best_size, max_answer_length)
            if span and (best is None or span[0] > best[0]):
                best = span + (row,)
        text = ""
        if best is not None:
            _, s, e, row = best
            text = example.context[offsets_NxLx2[row, s, 0]:offsets_NxLx2[row, e, 1]]
            if task.name == "squad_v2" and null_score - best[0] > null_score_diff_threshold:
                text = ""
        predictions[example.id] = text
    return predictions


def evaluate(task, examples: Sequence[SquadExample], predictions: dict[str, str]
             ) -> dict[str, float]:
    """`exact_match` and `f1` as fractions (the official script prints 100x these)."""
    return metrics.squad_scores(predictions, {e.id: e.answers for e in examples})


def write_predictions(task, examples: Sequence[SquadExample], predictions: dict[str, str],
                      path: str) -> None:
    """The official predictions file: one JSON object {qid: answer text}."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump({e.id: predictions.get(e.id, "") for e in examples}, f, ensure_ascii=False)
