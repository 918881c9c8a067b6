"""CoNLL-2003 English NER, read from TFDS `conll2003` or the original column files.

An example is a `ConllExample(id, words, tags)`: one sentence, `id` its number in the split,
`tags` one NER tag per word in **IOB2** (B- on every entity's first word), or None. The
original files (`eng.train`, `eng.testa` = validation, `eng.testb` = test) are space-separated
columns `word POS chunk NER`, one word per line, a blank line after each sentence and
`-DOCSTART-` lines between documents (skipped); their tags are IOB1 (B- only where two
same-type entities touch) and are converted to IOB2 on reading. The conversion changes no
entity (conlleval reads both schemes the same way), and gives the model one consistent tag
set, TFDS's.

The model tags the first piece of each word (`labels`/`label_weights`); a word cut off by
`max_seq_len` gets no weight and is predicted "O", which evaluation counts against recall.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import numpy as np

from bert_jax.data import DataError
from bert_jax.data.tasks import common
from bert_jax.metrics import tasks as metrics

# TFDS's tag order, so its tag ids are ours.
TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")
_FILES = {"train": "eng.train", "validation": "eng.testa", "test": "eng.testb"}
_TFDS_SPLITS = {"train": "train", "validation": "dev", "test": "test"}


@dataclasses.dataclass(frozen=True)
class ConllExample:
    id: int
    words: tuple[str, ...]
    tags: tuple[str, ...] | None


def to_iob2(tags: Sequence[str]) -> list[str]:
    """IOB1 -> IOB2: an I- tag that starts an entity (after O or after another type)
    becomes B-. IOB2 input comes back unchanged."""
    out, prev = [], "O"
    for tag in tags:
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
        prev = tag
    return out


def read_file(path: str) -> list[ConllExample]:
    """Sentences of one original CoNLL-2003 file (module docstring)."""
    sentences, words, tags = [], [], []

    def close():
        if words:
            sentences.append(ConllExample(len(sentences), tuple(words),
                                          tuple(to_iob2(_checked(tags, path)))))
            words.clear()
            tags.clear()

    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields or fields[0] == "-DOCSTART-":
                close()
                continue
            if len(fields) < 2:
                raise DataError(f"{path}:{number}: {line.strip()!r} has no NER column; "
                                "expected 'word POS chunk NER' columns.")
            words.append(fields[0])
            tags.append(fields[-1])
    close()
    return sentences


def _checked(tags: list[str], path: str) -> list[str]:
    unknown = sorted(set(tags) - set(TAGS))
    if unknown:
        raise DataError(f"{path}: NER tag(s) {unknown} are not CoNLL-2003's {TAGS}.")
    return tags


def read_local(task, split: str, local_dir: str) -> list[ConllExample]:
    return read_file(common.require_file(
        os.path.join(local_dir, _FILES[split]),
        f"CoNLL-2003's {split} file {_FILES[split]} (local_dir must hold eng.train, "
        "eng.testa, eng.testb)"))


def read_tfds(task, split: str, data_dir: str = "") -> list[ConllExample]:
    """TFDS `conll2003` (its validation split is named "dev")."""
    return [from_tfds_record(record, i) for i, record in
            enumerate(common.tfds_records(task.tfds_name, _TFDS_SPLITS[split], data_dir))]


def from_tfds_record(record: dict, index: int) -> ConllExample:
    words = tuple(common.text(w) for w in record["tokens"])
    tags = to_iob2([TAGS[int(t)] for t in record["ner"]])
    return ConllExample(index, words, tuple(tags))


def featurize(task, examples: Sequence[ConllExample], tokenizer, max_seq_len: int
              ) -> dict[str, np.ndarray]:
    """One row per sentence, `[CLS] pieces [SEP]`, cut to max_seq_len.

    `labels` int32 [N, L]: the word's tag id at its first piece, 0 elsewhere.
    `label_weights` float32 [N, L]: 1 at first pieces of words with a gold tag, else 0.
    `_word_index` int32 [N, L]: the word number at first pieces, -1 elsewhere (decoding).
    """
    common.check_max_seq_len(max_seq_len, 3, "[CLS], [SEP] and one word piece")
    ids_T, _, offsets = tokenizer.encode_flat([w for e in examples for w in e.words])
    tag_ids = {t: i for i, t in enumerate(TAGS)}
    rows_ids, rows_types, rows_labels, rows_weights, rows_words = [], [], [], [], []
    word = 0
    for example in examples:
        ids, labels, weights, word_index = [], [], [], []
        for j in range(len(example.words)):
            # A word the normalizer empties (e.g. a lone control character) becomes [UNK],
            # so every word has a first piece to carry its tag.
            pieces = ids_T[offsets[word]:offsets[word + 1]].tolist() or [tokenizer.unk_id]
            word += 1
            room = max_seq_len - 2 - len(ids)
            if room <= 0:
                continue  # Keep counting words: the flat offsets run over all of them.
            pieces = pieces[:room]
            tag = tag_ids[example.tags[j]] if example.tags is not None else 0
            ids += pieces
            labels += [tag] + [0] * (len(pieces) - 1)
            weights += [float(example.tags is not None)] + [0.0] * (len(pieces) - 1)
            word_index += [j] + [-1] * (len(pieces) - 1)
        input_ids, types = common.frame(tokenizer, ids)
        rows_ids.append(input_ids)
        rows_types.append(types)
        rows_labels.append([0, *labels, 0])
        rows_weights.append([0.0, *weights, 0.0])
        rows_words.append([-1, *word_index, -1])
    features = common.model_inputs(tokenizer, rows_ids, rows_types, max_seq_len)
    features["example_index"] = np.arange(len(examples), dtype=np.int32)
    features["labels"] = common.pad_rows(rows_labels, max_seq_len)
    features["label_weights"] = common.pad_rows(rows_weights, max_seq_len, 0.0, np.float32)
    features["_word_index"] = common.pad_rows(rows_words, max_seq_len, -1)
    return features


def postprocess(task, examples: Sequence[ConllExample], features: dict,
                outputs: dict[str, np.ndarray]) -> list[list[str]]:
    """One tag per word (argmax of `logits` [N, L, T] at the word's first piece); "O" for
    words the features cut off."""
    predicted_NxL = np.argmax(np.asarray(outputs["logits"]), axis=-1)
    word_index_NxL = np.asarray(features["_word_index"])
    tags = [["O"] * len(e.words) for e in examples]
    for row, i in enumerate(np.asarray(features["example_index"]).tolist()):
        at = word_index_NxL[row] >= 0
        for j, t in zip(word_index_NxL[row][at].tolist(), predicted_NxL[row][at].tolist()):
            tags[i][j] = TAGS[t]
    return tags


def evaluate(task, examples: Sequence[ConllExample], predictions: Sequence[Sequence[str]]
             ) -> dict[str, float]:
    if any(e.tags is None for e in examples):
        raise DataError("conll2003: some sentences have no gold tags; only tagged splits "
                        "can be evaluated.")
    return metrics.conll_scores([e.tags for e in examples], predictions)


def write_predictions(task, examples: Sequence[ConllExample],
                      predictions: Sequence[Sequence[str]], path: str) -> None:
    """conlleval's input: "word gold predicted" per word ("word predicted" without gold), a
    blank line after each sentence."""
    with open(path, "w", encoding="utf-8") as f:
        for example, tags in zip(examples, predictions):
            for j, (w, p) in enumerate(zip(example.words, tags)):
                f.write(f"{w} {example.tags[j]} {p}\n" if example.tags is not None
                        else f"{w} {p}\n")
            f.write("\n")
