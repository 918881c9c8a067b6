"""Metric writers: the workdir's `metrics.jsonl` (the record of a run) and TensorBoard events.

`metrics.jsonl` is a contract (DESIGN.md): one JSON object per line with `"step"`, `"split"`
(`"train"` or `"eval"`) and scalar metrics, holding the exact values the device returned.
TensorBoard gets the same scalars for browsing; the JSONL file stays the source of truth (TF
summaries store float32, the JSONL keeps every bit of the value it was given).

Only JAX process 0 writes in a multi-host run: construct the writer with
`enabled=(jax.process_index() == 0)` and every method becomes a no-op elsewhere.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from bert_jax.metrics.tensorboard import EventFileWriter

SPLITS = ("train", "eval")
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"
TENSORBOARD_DIR = "tensorboard"


def atomic_write(path: str | os.PathLike, data: str | bytes) -> None:
    """Writes `data` to `path` so readers see either the old file or the new one, never half.

    The temporary file lives in the target's directory because `os.replace` is only atomic
    within one filesystem; it is fsynced first so a power cut cannot leave an empty file.
    """
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Leave no stray temporary file in the workdir, whatever (even Ctrl-C) interrupted us.
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _to_float(name: str, value: Any) -> float:
    """Converts a Python/NumPy/JAX scalar to a Python float, rejecting anything else."""
    if isinstance(value, (str, bytes)):
        raise ValueError(f"metric {name!r} is not numeric: {value!r}")
    # np.asarray fetches a JAX array from the device; bfloat16 converts through ml_dtypes.
    array = np.asarray(value)
    if array.ndim != 0:
        raise ValueError(f"metric {name!r} must be a scalar, got shape {array.shape}; reduce it "
                         "(or take one replica of a pmap output) before writing")
    # Kind "V" covers ml_dtypes scalars such as bfloat16, which NumPy does not call numbers.
    if array.dtype.kind not in "biufV":
        raise ValueError(f"metric {name!r} is not numeric: {value!r}")
    return float(array)


def _parse_lines(text: str, path: str) -> list[tuple[dict, str]]:
    """Parses JSONL text into (row, raw line) pairs.

    A last line that does not parse is what a crash in the middle of a write leaves, so it is
    dropped with a warning; a bad line anywhere else means the file was damaged some other
    way, and we raise rather than silently lose rows.
    """
    lines = [line for line in text.split("\n") if line.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append((json.loads(line), line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                warnings.warn(f"{path}: ignoring a truncated last line (a crash mid-write?)")
                break
            raise ValueError(f"{path}: line {i + 1} is not valid JSON: {line[:80]!r}") from None
    return rows


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """Reads a `metrics.jsonl` file into a list of row dicts, in file order.

    Blank lines are skipped and a truncated last line (a crash mid-write) is ignored.
    """
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        return [row for row, _ in _parse_lines(f.read(), path)]


def write_config(workdir: str | os.PathLike, config: Any) -> str:
    """Writes the resolved config to `workdir/config.json` (indent 2, sorted keys), atomically.

    `config` is a mapping or anything with `to_dict()` (an ml_collections ConfigDict). Values
    JSON cannot hold (dtypes, arbitrary objects) are written as their `str()`: the file is a
    record for people and scripts, not something the code loads back blindly. Call it from
    process 0 only. Returns the path written.
    """
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping or have to_dict(), got {type(config)}")

    def default(obj):
        return obj.item() if isinstance(obj, np.generic) else str(obj)

    path = os.path.join(os.fspath(workdir), CONFIG_FILE)
    atomic_write(path, json.dumps(config, indent=2, sort_keys=True, default=default) + "\n")
    return path


class MetricsWriter:
    """Appends metric rows to `workdir/metrics.jsonl` and mirrors them to TensorBoard.

    Each `write` is one line, flushed at once, so a crash loses nothing already written; at
    worst a crash mid-write leaves a partial last line, which `read_metrics` ignores and the
    next writer on the same workdir cuts off before appending. TensorBoard event files go under
    `workdir/tensorboard/<split>/`, written without TensorFlow (`bert_jax.metrics.tensorboard`),
    one file per split and writer. With `enabled=False` (JAX processes other than
    0) arguments are still checked but nothing is created or written.
    """

    def __init__(self, workdir: str | os.PathLike, *, enabled: bool = True,
                 tensorboard: bool = True):
        self.workdir = os.fspath(workdir)
        self.path = os.path.join(self.workdir, METRICS_FILE)
        self.enabled = enabled
        self.tensorboard = tensorboard
        self._file = None
        self._tb_writers: dict[str, Any] = {}
        self._closed = False
        if enabled:
            # Opened now, not at the first write, so the workdir holds metrics.jsonl from the
            # start (DESIGN.md's layout) and a resumed run repairs a crashed tail up front.
            os.makedirs(self.workdir, exist_ok=True)
            self._open()

    def _open(self) -> None:
        """Opens the JSONL file for appending, after repairing an unterminated last line.

        Appending after a partial line would glue the new row onto it and corrupt both, so a
        tail that is not valid JSON is cut off; a valid one just gets its missing newline.
        """
        if os.path.exists(self.path):
            with open(self.path, "rb+") as f:
                data = f.read()
                if data and not data.endswith(b"\n"):
                    start = data.rfind(b"\n") + 1
                    try:
                        json.loads(data[start:])
                        f.write(b"\n")
                    except ValueError:
                        f.truncate(start)
        self._file = open(self.path, "a", encoding="utf-8")

    def write(self, step: int, split: str, metrics: Mapping[str, Any]) -> None:
        """Appends one row `{"step": step, "split": split, **metrics}`.

        Metric values must be scalars (Python, NumPy or JAX; JAX values are fetched from the
        device here) and are stored as Python floats, unchanged. NaN/inf are written as JSON's
        `NaN`/`Infinity` extensions, which Python's json reads back: a diverged loss shows.
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if self._closed:
            raise RuntimeError("MetricsWriter.write called after close()")
        row: dict[str, Any] = {"step": int(step), "split": split}
        for name, value in metrics.items():
            if name in ("step", "split"):
                raise ValueError(f"metric name {name!r} is reserved")
            row[name] = _to_float(name, value)
        # Checked above on every process, so a bad call fails the same way on every host.
        if not self.enabled:
            return
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self.tensorboard:
            self._write_tensorboard(row["step"], split, {k: row[k] for k in metrics})

    def _write_tensorboard(self, step: int, split: str, scalars: Mapping[str, float]) -> None:
        writer = self._tb_writers.get(split)
        if writer is None:
            writer = EventFileWriter(
                os.path.join(self.workdir, TENSORBOARD_DIR, split))
            self._tb_writers[split] = writer
        # Flushed at once: the same promise as the JSONL file, a crash loses nothing written.
        writer.scalars(step, scalars)

    def truncate_after(self, step: int) -> int:
        """Keeps only rows with `row["step"] <= step`; returns how many rows were dropped.

        For resume: a run restored from its checkpoint at step S may have logged rows past S
        before it died, and is about to log them again. The file is rewritten atomically (kept
        lines verbatim), so a crash here leaves either the old file or the new one. TensorBoard
        needs no such help: it discards events past a step that is written again.
        """
        if not self.enabled:
            return 0
        if self._closed:
            raise RuntimeError("MetricsWriter.truncate_after called after close()")
        self._file.close()
        try:
            with open(self.path, encoding="utf-8") as f:
                rows = _parse_lines(f.read(), self.path)
            kept = [line for row, line in rows if row["step"] <= step]
            if len(kept) != len(rows):
                atomic_write(self.path, "".join(line + "\n" for line in kept))
        finally:
            # The old handle would point at the replaced file; new rows must land in the new one.
            self._open()
        return len(rows) - len(kept)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
        for writer in self._tb_writers.values():
            writer.flush()

    def close(self) -> None:
        """Flushes and closes the files; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._file is not None:
            self._file.close()
            self._file = None
        for writer in self._tb_writers.values():
            writer.close()
        self._tb_writers.clear()

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
