"""The task data of a fine-tuning run: examples and feature arrays per split (featurized once,
cached in the workdir), the training batch of any step, and padded evaluation batches.

Training order: the feature rows are read in epochs, each a permutation drawn from
(seed, epoch); step s takes positions [s * B, (s + 1) * B) of that endless stream (a batch
may straddle two epochs). The batch is a function of (seed, step) alone, so a resumed run
reads exactly the batches it would have read, with no iterator state to save.

Evaluation: rows in order, the last batch padded to full size with copies of row 0 whose
`weight` is 0; `run_predictions` drops their outputs, so every feature row (and, through
the task's postprocess, every example) is counted exactly once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Callable, Sequence

import numpy as np

from bert_jax.data import tasks as tasks_lib

CACHE_VERSION = 1
# Keys a model step reads besides the labels of its kind (host-only keys start with "_").
INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids", "coarse_ids", "coarse_start")
LABEL_KEYS = ("label", "labels", "label_weights", "start_position", "end_position")


@dataclasses.dataclass
class SplitData:
    """One split: its examples and their feature rows (`featurize`'s arrays)."""

    name: str
    examples: Sequence
    features: dict[str, np.ndarray]

    @property
    def num_rows(self) -> int:
        return len(self.features["input_ids"])


def _fingerprint(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def load_split(task, split: str, data_cfg, tokenizer, cache_dir: str, *,
               vocab_id: str, add_inputs: Callable[[dict], dict] | None = None) -> SplitData:
    """Examples of `split` and their features, from `cache_dir` when an identical
    featurization (same examples, tokenizer `vocab_id`, lengths) was cached there.
    `add_inputs`: extra model inputs from the features (AMBERT's coarse tokens)."""
    examples = tasks_lib.load_examples(task, split, data_cfg.local_dir, sample=data_cfg.sample,
                                       tfds_data_dir=data_cfg.tfds_data_dir)
    if split == "train" and data_cfg.train_limit:
        examples = examples[:data_cfg.train_limit]
    key = _fingerprint(CACHE_VERSION, task.name, split, examples, vocab_id,
                       data_cfg.max_seq_len, data_cfg.doc_stride, data_cfg.max_query_length,
                       data_cfg.coarse_vocab_path)
    path = os.path.join(cache_dir, f"{task.name}-{split}-{key}.npz")
    if os.path.isfile(path):
        with np.load(path, allow_pickle=False) as cached:
            return SplitData(split, examples, dict(cached))
    features = tasks_lib.featurize(task, examples, tokenizer, data_cfg.max_seq_len,
                                   doc_stride=data_cfg.doc_stride,
                                   max_query_length=data_cfg.max_query_length)
    if add_inputs is not None:
        features.update(add_inputs(features))
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, **features)
    os.replace(tmp, path)  # atomic: a reader sees the whole file or none
    return SplitData(split, examples, features)


def _model_arrays(features: dict, rows) -> dict:
    return {k: features[k][rows] for k in INPUT_KEYS + LABEL_KEYS if k in features}


def train_rows(step: int, batch_size: int, num_rows: int, seed: int) -> np.ndarray:
    """Feature-row indices of the global batch of `step` (module docstring)."""
    positions = step * batch_size + np.arange(batch_size)
    epochs, within = np.divmod(positions, num_rows)
    rows = np.empty(batch_size, np.int64)
    for epoch in np.unique(epochs):
        perm = np.random.default_rng([seed, int(epoch)]).permutation(num_rows)
        at = epochs == epoch
        rows[at] = perm[within[at]]
    return rows


def train_batch(data: SplitData, step: int, batch_size: int, seed: int) -> dict:
    """The global training batch of `step`: model arrays + `weight` (all 1)."""
    rows = train_rows(step, batch_size, data.num_rows, seed)
    batch = _model_arrays(data.features, rows)
    batch["weight"] = np.ones(batch_size, np.float32)
    return batch


def eval_batches(data: SplitData, batch_size: int):
    """(batch, number of real rows) over all rows in order; the last batch is padded with
    copies of row 0 that weigh 0."""
    n = data.num_rows
    for start in range(0, n, batch_size):
        rows = np.arange(start, start + batch_size)
        real = rows < n
        batch = _model_arrays(data.features, np.where(real, rows, 0))
        batch["weight"] = real.astype(np.float32)
        yield batch, int(real.sum())


def run_predictions(predict: Callable[[dict], dict], data: SplitData,
                    batch_size: int) -> dict[str, np.ndarray]:
    """`predict(batch) -> {name: [batch_size, ...]}` over every row: outputs aligned with the
    feature rows, padding dropped."""
    parts: dict[str, list] = {}
    for batch, real in eval_batches(data, batch_size):
        for name, value in predict(batch).items():
            parts.setdefault(name, []).append(np.asarray(value)[:real])
    return {name: np.concatenate(values) for name, values in parts.items()}
