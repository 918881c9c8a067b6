"""TensorBoard scalar event files, written without TensorFlow.

Importing TensorFlow to write a few scalars cost every training process 3-5 seconds (and
stalled the training loop at its first log line), and it is the only thing a run on an
already-built dataset needed TensorFlow for. An event file is simple enough to write
directly:

- The file is a sequence of TFRecords: the payload's length as a little-endian uint64, the
  masked CRC-32C of those 8 bytes (uint32), the payload, and the payload's masked CRC-32C.
  A CRC is masked as `((crc >> 15) | (crc << 17)) + 0xa282ead8` (mod 2^32).
- Each payload is a serialized `tensorflow.Event` protobuf (tensorflow/core/util/event.proto):
  the first holds `file_version: "brain.Event:2"`, the others `wall_time`, `step` and a
  `Summary` with one `Value` per scalar.
- A scalar is written the way TF2's `tf.summary.scalar` writes it: a float32 rank-0
  `TensorProto` plus `SummaryMetadata` naming the "scalars" plugin and the scalar data class,
  so TensorBoard shows the files exactly as it showed the ones TensorFlow wrote.

The protobuf fields are encoded by hand (a handful of tags: see the `_*_FIELD` constants, and
the tests, which read the files back with TensorFlow's own parser and record reader).
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import time
from collections.abc import Mapping

import numpy as np

FILE_PREFIX = "events.out.tfevents."
FILE_VERSION = b"brain.Event:2"

# Field numbers of the protobuf messages written here.
_EVENT_WALL_TIME, _EVENT_STEP, _EVENT_FILE_VERSION, _EVENT_SUMMARY = 1, 2, 3, 5
_SUMMARY_VALUE = 1
_VALUE_TAG, _VALUE_TENSOR, _VALUE_METADATA = 1, 8, 9
_METADATA_PLUGIN_DATA, _METADATA_DATA_CLASS = 1, 4
_PLUGIN_NAME = 1
_TENSOR_DTYPE, _TENSOR_SHAPE, _TENSOR_FLOAT_VAL = 1, 2, 5
_DT_FLOAT = 1  # tensorflow.DataType
_DATA_CLASS_SCALAR = 1  # tensorflow.DataClass

_CRC32C_POLY = 0x82F63B78  # Castagnoli, bit-reversed


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CRC32C_POLY if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of `data`, as TFRecord files checksum their records."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> bytes:
    crc = crc32c(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def tfrecord(payload: bytes) -> bytes:
    """`payload` framed as one TFRecord."""
    length = struct.pack("<Q", len(payload))
    return length + _masked_crc(length) + payload + _masked_crc(payload)


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 fields: negative values are their two's complement
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if not value:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def _varint_field(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _bytes_field(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _double_field(field: int, value: float) -> bytes:
    return _varint(field << 3 | 1) + struct.pack("<d", value)


_SCALAR_METADATA = _bytes_field(
    _VALUE_METADATA,
    _bytes_field(_METADATA_PLUGIN_DATA, _bytes_field(_PLUGIN_NAME, b"scalars"))
    + _varint_field(_METADATA_DATA_CLASS, _DATA_CLASS_SCALAR))


def _float32_bytes(value: float) -> bytes:
    # Out-of-range values become +-inf, as tf.constant(value, tf.float32) made them.
    with np.errstate(over="ignore"):
        return np.asarray(value, dtype=np.float64).astype("<f4").tobytes()


def scalar_event(step: int, scalars: Mapping[str, float], wall_time: float) -> bytes:
    """A serialized Event holding `scalars` (name -> value, stored as float32) at `step`."""
    values = b""
    for name, value in scalars.items():
        tensor = (_varint_field(_TENSOR_DTYPE, _DT_FLOAT) + _bytes_field(_TENSOR_SHAPE, b"")
                  + _bytes_field(_TENSOR_FLOAT_VAL, _float32_bytes(value)))
        value_msg = (_bytes_field(_VALUE_TAG, name.encode("utf-8")) + _SCALAR_METADATA
                     + _bytes_field(_VALUE_TENSOR, tensor))
        values += _bytes_field(_SUMMARY_VALUE, value_msg)
    return (_double_field(_EVENT_WALL_TIME, wall_time) + _varint_field(_EVENT_STEP, step)
            + _bytes_field(_EVENT_SUMMARY, values))


_file_ids = itertools.count()


class EventFileWriter:
    """Appends scalar events to a new event file in `logdir`.

    The file is named as TensorFlow names its own (`events.out.tfevents.<seconds>.<host>.
    <pid>.<n>.v2`), so several writers, processes or resumed runs never share one; TensorBoard
    reads every event file of a directory as one run. Each `scalars` call is written and
    flushed at once.
    """

    def __init__(self, logdir: str | os.PathLike):
        logdir = os.fspath(logdir)
        os.makedirs(logdir, exist_ok=True)
        now = time.time()
        name = (f"{FILE_PREFIX}{int(now):010d}.{socket.gethostname()}.{os.getpid()}."
                f"{next(_file_ids)}.v2")
        self.path = os.path.join(logdir, name)
        self._file = open(self.path, "ab")
        self._file.write(tfrecord(_double_field(_EVENT_WALL_TIME, now)
                                  + _bytes_field(_EVENT_FILE_VERSION, FILE_VERSION)))
        self._file.flush()

    def scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """Writes one event with every scalar of `scalars` at `step`, and flushes it."""
        if self._file is None:
            raise RuntimeError(f"EventFileWriter for {self.path} is closed")
        self._file.write(tfrecord(scalar_event(step, scalars, time.time())))
        self._file.flush()

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
