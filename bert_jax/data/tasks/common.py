"""What the task families share: input framing and padding, file checks, TFDS records."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from bert_jax.config import ConfigError


def frame(tokenizer, pieces_a: Sequence[int], pieces_b: Sequence[int] | None = None
          ) -> tuple[list[int], list[int]]:
    """`[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` -> (ids, token types: 0 up to the first
    [SEP], 1 after), with the tokenizer's own cls/sep ids (BERT's framing for every kind)."""
    ids = [tokenizer.cls_id, *pieces_a, tokenizer.sep_id]
    types = [0] * len(ids)
    if pieces_b is not None:
        ids += [*pieces_b, tokenizer.sep_id]
        types += [1] * (len(pieces_b) + 1)
    return ids, types


def truncate_pair(a: list, b: list | None, max_pieces: int) -> tuple[list, list | None]:
    """Drops pieces from the end of the longer text (b on a tie) until both fit together in
    `max_pieces`, so neither text loses everything to the other."""
    if b is None:
        return a[:max_pieces], None
    a, b = list(a), list(b)
    while len(a) + len(b) > max_pieces:
        (a if len(a) > len(b) else b).pop()
    return a, b


def pad_rows(rows: Sequence[Sequence[int]], length: int, value: int = 0,
             dtype=np.int32) -> np.ndarray:
    """Rows of at most `length` values -> [N, length], right-padded with `value`."""
    out = np.full((len(rows), length), value, dtype)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


def model_inputs(tokenizer, ids: Sequence[Sequence[int]], types: Sequence[Sequence[int]],
                 max_seq_len: int) -> dict[str, np.ndarray]:
    """int32 `input_ids` (padded with pad_id), `attention_mask`, `token_type_ids`, all
    [N, max_seq_len]."""
    return {
        "input_ids": pad_rows(ids, max_seq_len, tokenizer.pad_id),
        "attention_mask": pad_rows([[1] * len(r) for r in ids], max_seq_len),
        "token_type_ids": pad_rows(types, max_seq_len),
    }


def check_max_seq_len(max_seq_len: int, needed: int, what: str) -> None:
    if max_seq_len < needed:
        raise ConfigError(f"max_seq_len={max_seq_len} leaves no room for {what}; it must be "
                          f">= {needed}.")


def require_file(path: str, expected: str) -> str:
    """`path` if it is a file, else a ConfigError naming it and what should be there."""
    if not os.path.isfile(path):
        raise ConfigError(f"{path} does not exist; expected {expected}.")
    return path


def tfds_records(name: str, split: str, data_dir: str = "") -> list[dict]:
    """All records of split `split` of TFDS dataset `name`, as numpy (text as bytes), in file
    order. Downloads and prepares the dataset the first time (needs the internet)."""
    import tensorflow_datasets as tfds

    try:
        ds = tfds.load(name, split=split, data_dir=data_dir or None, shuffle_files=False)
    except Exception as e:  # Offline, unknown split, ...: say what to do instead.
        raise ConfigError(
            f"TFDS {name!r} split {split!r} could not be loaded ({type(e).__name__}: {e}); "
            "without the internet give local_dir=<folder with the original files>, or "
            "sample=True for the project's samples.") from e
    return list(tfds.as_numpy(ds))


def text(value) -> str:
    """A TFDS text value (bytes) or a str -> str."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
