"""GLUE: the nine sentence(-pair) tasks, read from TFDS `glue/<config>` or the original TSVs.

An example is a `GlueExample(id, text_a, text_b, label)`: `id` is the row number of the split
(0-based, data rows only), which is TFDS's `idx` and the `index` of the leaderboard files;
`text_b` is None for single-sentence tasks; `label` is a class id into `task.label_names`, a
float score for STS-B, or None on the unlabelled test splits.

The original files (`<local_dir>/<folder>/<split file>.tsv`, or `local_dir` the task folder
itself) are read as GLUE wrote them: tab-separated with quoting off (sentences hold unbalanced
`"`), UTF-8 with an optional BOM (MRPC has one), the header naming the columns, except
CoLA's train/dev files, which have none (columns: source, label, original mark, sentence).
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Sequence

import numpy as np

from bert_jax.data import DataError
from bert_jax.data.tasks import common
from bert_jax.metrics import tasks as metrics


@dataclasses.dataclass(frozen=True)
class GlueExample:
    id: int
    text_a: str
    text_b: str | None
    label: int | float | None


@dataclasses.dataclass(frozen=True)
class _Format:
    folder: str                       # GLUE's folder name.
    columns: tuple[str, ...]          # TSV header names of text a (and b).
    label_column: str                 # TSV header name of the label (absent in test files).
    tfds_features: tuple[str, ...]    # TFDS feature names of text a (and b).


_FORMATS = {
    "cola": _Format("CoLA", ("sentence",), "label", ("sentence",)),
    "sst2": _Format("SST-2", ("sentence",), "label", ("sentence",)),
    "mrpc": _Format("MRPC", ("#1 String", "#2 String"), "Quality", ("sentence1", "sentence2")),
    "stsb": _Format("STS-B", ("sentence1", "sentence2"), "score", ("sentence1", "sentence2")),
    "qqp": _Format("QQP", ("question1", "question2"), "is_duplicate",
                   ("question1", "question2")),
    "mnli": _Format("MNLI", ("sentence1", "sentence2"), "gold_label", ("premise", "hypothesis")),
    "qnli": _Format("QNLI", ("question", "sentence"), "label", ("question", "sentence")),
    "rte": _Format("RTE", ("sentence1", "sentence2"), "label", ("sentence1", "sentence2")),
    "wnli": _Format("WNLI", ("sentence1", "sentence2"), "label", ("sentence1", "sentence2")),
}
# CoLA's train.tsv and dev.tsv have no header; these names stand in for it.
_COLA_COLUMNS = ("source", "label", "original_mark", "sentence")
# Our split names -> GLUE file names (MNLI has matched and mismatched dev/test files).
_FILES = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv",
          "validation_matched": "dev_matched.tsv", "validation_mismatched": "dev_mismatched.tsv",
          "test_matched": "test_matched.tsv", "test_mismatched": "test_mismatched.tsv"}


def split_file(task, split: str, local_dir: str) -> str:
    """The TSV of `split` under `local_dir` (the GLUE root or the task's own folder)."""
    name = _FILES[split]
    folder = os.path.join(local_dir, _FORMATS[task.name].folder)
    if os.path.isfile(os.path.join(folder, name)) or not os.path.isfile(
            os.path.join(local_dir, name)):
        return common.require_file(
            os.path.join(folder, name),
            f"GLUE's {task.name} {split} file; local_dir must be the GLUE folder (holding "
            f"{_FORMATS[task.name].folder}/) or the {_FORMATS[task.name].folder} folder itself")
    return os.path.join(local_dir, name)


def read_tsv(path: str) -> list[list[str]]:
    """Rows of fields of a GLUE TSV, header included: tab-separated, no quoting, BOM dropped."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        lines = f.read().split("\n")
    return [line.rstrip("\r").split("\t") for line in lines if line.rstrip("\r")]


def read_file(task, path: str, split: str) -> list[GlueExample]:
    """Examples of one original GLUE TSV (module docstring)."""
    fmt = _FORMATS[task.name]
    rows = read_tsv(path)
    if task.name == "cola" and not split.startswith("test"):
        header, body = list(_COLA_COLUMNS), rows
    else:
        header, body = rows[0] if rows else [], rows[1:]
    wanted = fmt.columns + ((fmt.label_column,) if not split.startswith("test") else ())
    missing = [c for c in wanted if c not in header]
    if missing:
        raise DataError(f"{path}: no column(s) {missing} in header {header}; is it GLUE's "
                        f"{task.name} {split} file?")
    where = [header.index(c) for c in wanted]
    examples, skipped = [], 0
    for row in body:
        if len(row) <= max(where):
            skipped += 1  # GLUE's QQP train has a few broken rows; TFDS drops them too.
            continue
        texts = [row[i] for i in where[:len(fmt.columns)]]
        label = (_parse_label(task, row[where[-1]], path)
                 if len(wanted) > len(fmt.columns) else None)
        examples.append(GlueExample(len(examples), texts[0], texts[1] if len(texts) > 1
                                    else None, label))
    if skipped:
        logging.warning("%s: skipped %d rows with fewer than %d fields", path, skipped,
                        max(where) + 1)
    return examples


def _parse_label(task, value: str, path: str) -> int | float:
    if task.kind == "regression":
        return float(value)
    if value not in task.label_names:
        raise DataError(f"{path}: label {value!r} is not one of {task.label_names} "
                        f"({task.name}'s labels).")
    return task.label_names.index(value)


def read_tfds(task, split: str, data_dir: str = "") -> list[GlueExample]:
    """Examples of TFDS `glue/<task.name>`; its splits have our names."""
    fmt = _FORMATS[task.name]
    examples = []
    for record in common.tfds_records(f"glue/{task.name}", split, data_dir):
        examples.append(from_tfds_record(task, record, fmt))
    return examples


def from_tfds_record(task, record: dict, fmt: _Format | None = None) -> GlueExample:
    """One TFDS glue record -> example; TFDS marks unlabelled test rows with label -1."""
    fmt = fmt or _FORMATS[task.name]
    texts = [common.text(record[f]) for f in fmt.tfds_features]
    label = record["label"]
    if task.kind == "regression":
        label = float(label)
    else:
        label = int(label) if int(label) >= 0 else None
    return GlueExample(int(record["idx"]), texts[0], texts[1] if len(texts) > 1 else None,
                       label)


def featurize(task, examples: Sequence[GlueExample], tokenizer, max_seq_len: int
              ) -> dict[str, np.ndarray]:
    """One row per example: model inputs [N, L], `example_index` [N], `label` [N] (int32 class
    ids or float32 scores; 0 where the example has none)."""
    pair = any(e.text_b is not None for e in examples)
    common.check_max_seq_len(max_seq_len, 4 if pair else 3, "[CLS], [SEP] and some text")
    pieces_a = [ids.tolist() for ids, _ in tokenizer.encode_batch([e.text_a for e in examples])]
    pieces_b = [None] * len(examples)
    if pair:
        encoded_b = tokenizer.encode_batch([e.text_b or "" for e in examples])
        pieces_b = [ids.tolist() if e.text_b is not None else None
                    for e, (ids, _) in zip(examples, encoded_b)]
    all_ids, all_types = [], []
    for a, b in zip(pieces_a, pieces_b):
        a, b = common.truncate_pair(a, b, max_seq_len - (3 if b is not None else 2))
        ids, types = common.frame(tokenizer, a, b)
        all_ids.append(ids)
        all_types.append(types)
    features = common.model_inputs(tokenizer, all_ids, all_types, max_seq_len)
    features["example_index"] = np.arange(len(examples), dtype=np.int32)
    dtype = np.float32 if task.kind == "regression" else np.int32
    features["label"] = np.array([e.label if e.label is not None else 0 for e in examples],
                                 dtype).reshape(len(examples))
    return features


def postprocess(task, examples: Sequence[GlueExample], features: dict,
                outputs: dict[str, np.ndarray]) -> list:
    """Per example: class id (argmax of `logits` [N, C]) or score (`logits` [N, 1])."""
    logits_NxC = np.asarray(outputs["logits"], np.float32)
    if task.kind == "regression":
        values = logits_NxC.reshape(len(logits_NxC), -1)[:, 0].tolist()
    else:
        values = np.argmax(logits_NxC, axis=-1).tolist()
    predictions = [None] * len(examples)
    for row, i in enumerate(np.asarray(features["example_index"]).tolist()):
        predictions[i] = values[row]
    return predictions


_METRICS = {"accuracy": metrics.accuracy, "f1": metrics.f1_binary,
            "matthews_corr": metrics.matthews_corr, "pearson": metrics.pearson,
            "spearman": metrics.spearman}


def evaluate(task, examples: Sequence[GlueExample], predictions: Sequence) -> dict[str, float]:
    labels = [e.label for e in examples]
    if any(label is None for label in labels):
        raise DataError(f"{task.name}: some examples have no label (a test split?); only "
                        "labelled splits can be evaluated.")
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} examples")
    return {key: _METRICS[key](labels, list(predictions)) for key in task.metric_keys}


def leaderboard_name(task, split: str) -> str:
    """The file name the GLUE server expects for `split`'s predictions: "CoLA.tsv", ...,
    "MNLI-m.tsv" / "MNLI-mm.tsv"."""
    folder = _FORMATS[task.name].folder
    if task.name == "mnli":
        folder += "-mm" if split.endswith("mismatched") else "-m"
    return folder + ".tsv"


def write_predictions(task, examples: Sequence[GlueExample], predictions: Sequence,
                      path: str) -> None:
    """The leaderboard's file: header `index\\tprediction`, then one row per example with the
    label name (as in GLUE's own files: "entailment", or "0"/"1") or the score."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("index\tprediction\n")
        for example, value in zip(examples, predictions):
            shown = f"{value:.3f}" if task.kind == "regression" else task.label_names[value]
            f.write(f"{example.id}\t{shown}\n")



def read_local(task, split: str, local_dir: str) -> list[GlueExample]:
    return read_file(task, split_file(task, split, local_dir), split)
