"""Evaluation metrics of the fine-tuning tasks: GLUE, SQuAD v1.1/v2.0, CoNLL-2003 NER.

Pure Python + numpy, re-implemented from each benchmark's documented behaviour. **Every score
is a fraction in [0, 1]**: the official SQuAD script and conlleval print percentages (100 *
these values). A score that is undefined on degenerate input (MCC or a correlation when one
side is constant) is 0.0, so it can still be logged and compared.

- classification: `accuracy`, `f1_binary` (positive class 1), `matthews_corr` (any number of
  classes; Gorodkin's R_K, which is the usual MCC for two).
- regression (STS-B): `pearson`, `spearman` (Pearson of average ranks, so ties share a rank).
- SQuAD: `normalize_answer` (lowercase, drop punctuation, drop the articles a/an/the, collapse
  whitespace), `exact_match` and `token_f1` against one gold, `squad_scores` with the max over
  each question's golds. A v2.0 unanswerable question has the single gold "" and is right
  only when the prediction normalises to "" too.
- CoNLL: `chunks` extracts entities with conlleval's chunk start/end rules, so IOB1 (B- only
  between two same-type entities), IOB2 (B- on every first word) and IOBES all read right;
  `conll_scores` gives entity-level micro precision/recall/F1 and tag accuracy.
"""
from __future__ import annotations

import collections
import re
import string
from typing import Iterable, Mapping, Sequence

import numpy as np


def accuracy(labels: Sequence, predictions: Sequence) -> float:
    """Fraction of predictions equal to their labels."""
    labels, predictions = _pair(labels, predictions)
    return float(np.mean(labels == predictions)) if len(labels) else 0.0


def f1_binary(labels: Sequence[int], predictions: Sequence[int], positive: int = 1) -> float:
    """F1 of the `positive` class (MRPC, QQP); 0.0 when it is never predicted nor gold."""
    labels, predictions = _pair(labels, predictions)
    tp = np.sum((predictions == positive) & (labels == positive))
    fp = np.sum((predictions == positive) & (labels != positive))
    fn = np.sum((predictions != positive) & (labels == positive))
    return float(2 * tp / (2 * tp + fp + fn)) if tp else 0.0


def matthews_corr(labels: Sequence[int], predictions: Sequence[int]) -> float:
    """Matthews correlation coefficient (CoLA); 0.0 when labels or predictions are constant.

    With C the confusion matrix, s samples, c correct, t_k / p_k the true / predicted counts
    of class k: (c*s - sum t_k p_k) / sqrt((s^2 - sum p_k^2) (s^2 - sum t_k^2)).
    """
    labels, predictions = _pair(labels, predictions)
    classes, inverse = np.unique(np.concatenate([labels, predictions]), return_inverse=True)
    true_k = np.bincount(inverse[:len(labels)], minlength=len(classes)).astype(np.float64)
    pred_k = np.bincount(inverse[len(labels):], minlength=len(classes)).astype(np.float64)
    s, c = float(len(labels)), float(np.sum(labels == predictions))
    denominator = (s * s - pred_k @ pred_k) * (s * s - true_k @ true_k)
    return float((c * s - true_k @ pred_k) / np.sqrt(denominator)) if denominator > 0 else 0.0


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation; 0.0 when either side is constant."""
    x, y = (np.asarray(v, np.float64) for v in _pair(x, y))
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x @ x) * (y @ y))
    return float(x @ y / denominator) if denominator > 0 else 0.0


def average_ranks(x: Sequence[float]) -> np.ndarray:
    """1-based ranks of `x` [N] -> float64 [N]; tied values all get the mean of their ranks."""
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    # Runs of equal values: [first, last] positions in sorted order share (first+last)/2 + 1.
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)] - 1
    run_rank = (starts + ends) / 2.0 + 1.0
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.repeat(run_rank, ends - starts + 1)
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation: Pearson of the average ranks (ties handled)."""
    x, y = _pair(x, y)
    return pearson(average_ranks(x), average_ranks(y))


def _pair(a: Sequence, b: Sequence) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"labels and predictions must be 1-D of one length, got shapes "
                         f"{a.shape} and {b.shape}")
    return a, b


# SQuAD ----------------------------------------------------------------------------------------

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation: lowercase, remove ASCII punctuation, replace the words
    a/an/the by spaces, then collapse whitespace. "The  Cat!" -> "cat"."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when both normalise to the same string."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """F1 over the bags of normalised tokens. When either side normalises to nothing (a v2.0
    no-answer), 1.0 if both do, else 0.0."""
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    same = sum((collections.Counter(pred_tokens) & collections.Counter(gold_tokens)).values())
    if not same:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_golds(answers: Iterable[str]) -> list[str]:
    """The golds a question is scored against: its answers that do not normalise to "", or
    [""] when there are none (a v2.0 unanswerable question)."""
    golds = [a for a in answers if normalize_answer(a)]
    return golds or [""]


def squad_scores(predictions: Mapping[str, str],
                 answers: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """`exact_match` and `f1` over the questions of `answers` ({qid: gold texts}), each the
    max over that question's golds, averaged over questions. A question without a prediction
    scores 0."""
    em = f1 = 0.0
    for qid, texts in answers.items():
        if qid not in predictions:
            continue
        golds = squad_golds(texts)
        em += max(exact_match(predictions[qid], g) for g in golds)
        f1 += max(token_f1(predictions[qid], g) for g in golds)
    n = max(len(answers), 1)
    return {"exact_match": em / n, "f1": f1 / n}


# CoNLL ----------------------------------------------------------------------------------------

def _split_tag(tag: str) -> tuple[str, str]:
    """"B-PER" -> ("B", "PER"); "O" -> ("O", ""); a tag without "-" is a prefix of type ""."""
    if tag == "O":
        return "O", ""
    prefix, _, kind = tag.partition("-")
    return prefix, kind


def _starts_chunk(prev_prefix: str, prev_kind: str, prefix: str, kind: str) -> bool:
    # conlleval: B (and S) always start; I (or E) starts after O or after a chunk that has
    # just ended (E, S) -- the IOB1 case "I- after O"; any change of type starts.
    if prefix == "O":
        return False
    return (prefix in ("B", "S") or prev_prefix in ("O", "E", "S") or prev_kind != kind)


def _ends_chunk(prev_prefix: str, prev_kind: str, prefix: str, kind: str) -> bool:
    # conlleval: a chunk ends before O, before B (IOB1's same-type boundary), after E/S, and
    # whenever the type changes.
    if prev_prefix == "O":
        return False
    return (prev_prefix in ("E", "S") or prefix in ("B", "S", "O") or prev_kind != kind)


def chunks(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """Entities of one sentence's tags as (type, first word, last word), inclusive."""
    found, start = set(), None
    prev_prefix, prev_kind = "O", ""
    for i, tag in enumerate(list(tags) + ["O"]):  # A trailing O closes the last chunk.
        prefix, kind = _split_tag(tag)
        if start is not None and _ends_chunk(prev_prefix, prev_kind, prefix, kind):
            found.add((prev_kind, start, i - 1))
            start = None
        if _starts_chunk(prev_prefix, prev_kind, prefix, kind):
            start = i
        prev_prefix, prev_kind = prefix, kind
    return found


def conll_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]
                 ) -> dict[str, float]:
    """Entity-level micro `precision`, `recall`, `f1` over sentences, as conlleval counts
    them (an entity is right when its type and both ends match), and tag `accuracy`."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    correct = n_gold = n_pred = tags_right = n_tags = 0
    for gold_tags, pred_tags in zip(gold, predicted):
        if len(gold_tags) != len(pred_tags):
            raise ValueError(f"a sentence has {len(gold_tags)} gold tags but "
                             f"{len(pred_tags)} predicted")
        gold_chunks, pred_chunks = chunks(gold_tags), chunks(pred_tags)
        correct += len(gold_chunks & pred_chunks)
        n_gold, n_pred = n_gold + len(gold_chunks), n_pred + len(pred_chunks)
        tags_right += sum(g == p for g, p in zip(gold_tags, pred_tags))
        n_tags += len(gold_tags)
    precision = correct / n_pred if n_pred else 0.0
    recall = correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if correct else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "accuracy": tags_right / n_tags if n_tags else 0.0}
