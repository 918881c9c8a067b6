"""Event files written without TensorFlow, read back with TensorFlow's own reader and protos."""

import glob
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from bert_jax.metrics import tensorboard


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_crc32c_check_values():
    # The CRC-32C check value (RFC 3720's polynomial, the catalogue's "123456789") and iSCSI's
    # 32 zero bytes; zlib's CRC-32 gives other values for both.
    assert tensorboard.crc32c(b"123456789") == 0xE3069283
    assert tensorboard.crc32c(bytes(32)) == 0x8A9136AA
    assert tensorboard.crc32c(b"") == 0


def _events(path):
    import tensorflow as tf

    return list(tf.compat.v1.train.summary_iterator(path))


def test_events_parse_as_tensorflow_wrote_them(tmp_path):
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    writer = tensorboard.EventFileWriter(tmp_path / "mine")
    scalars = {"loss": 2.5, "mlm_accuracy": np.float32(0.25), "big": 1e300, "nan": math.nan,
               "neg_inf": -math.inf}
    writer.scalars(7, scalars)
    writer.scalars(2**40, {"loss": -1.0})
    writer.close()
    first, event, later = _events(writer.path)
    assert first.file_version == "brain.Event:2"
    assert event.step == 7 and later.step == 2**40
    assert abs(event.wall_time - first.wall_time) < 60
    got = {v.tag: float(tf.make_ndarray(v.tensor)) for v in event.summary.value}
    assert list(got) == list(scalars)
    assert got["loss"] == 2.5 and got["mlm_accuracy"] == 0.25
    assert got["big"] == math.inf and got["neg_inf"] == -math.inf and math.isnan(got["nan"])
    assert float(tf.make_ndarray(later.summary.value[0].tensor)) == -1.0

    # The same scalar written by TensorFlow the way tf.summary.scalar does (the writer this
    # module replaced): equal tensors and metadata, so TensorBoard treats both alike.
    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
        data_class=summary_pb2.DATA_CLASS_SCALAR)
    tf_writer = tf.summary.create_file_writer(str(tmp_path / "tf"))
    with tf_writer.as_default():
        tf.summary.write("loss", tf.constant(2.5, tf.float32), step=7, metadata=metadata)
    tf_writer.close()
    (tf_file,) = glob.glob(str(tmp_path / "tf" / "events.out.tfevents.*"))
    tf_first, tf_event = _events(tf_file)
    assert tf_first.file_version == first.file_version
    theirs, ours = tf_event.summary.value[0], event.summary.value[0]
    assert ours.metadata == theirs.metadata
    assert ours.tensor.dtype == theirs.tensor.dtype == tf.float32.as_datatype_enum
    assert ours.tensor.tensor_shape == theirs.tensor.tensor_shape
    assert tf.make_ndarray(ours.tensor) == tf.make_ndarray(theirs.tensor)


def test_tensorflow_reader_checks_the_crcs(tmp_path):
    # TensorFlow's reader verifies both CRCs of every record, so the reads above also check
    # ours; a flipped payload byte must be refused.
    import tensorflow as tf

    writer = tensorboard.EventFileWriter(tmp_path)
    writer.scalars(1, {"loss": 1.0})
    writer.close()
    data = bytearray(open(writer.path, "rb").read())
    data[-8] ^= 0x01
    open(writer.path, "wb").write(bytes(data))
    with pytest.raises(tf.errors.DataLossError):
        _events(writer.path)


def test_writers_get_their_own_files_and_closed_ones_refuse(tmp_path):
    a, b = tensorboard.EventFileWriter(tmp_path), tensorboard.EventFileWriter(tmp_path)
    assert a.path != b.path and os.path.basename(a.path).startswith("events.out.tfevents.")
    a.scalars(1, {"x": 1.0})  # flushed at once: readable before close
    assert [e.step for e in _events(a.path)][1:] == [1]
    a.close()
    a.close()
    with pytest.raises(RuntimeError, match="closed"):
        a.scalars(2, {"x": 2.0})
    b.close()


def test_training_process_writes_events_without_importing_tensorflow(tmp_path):
    code = ("import sys\n"
            "from bert_jax.metrics.writers import MetricsWriter\n"
            f"with MetricsWriter({str(tmp_path)!r}) as w:\n"
            "    w.write(1, 'train', {'loss': 3.0})\n"
            "    w.write(1, 'eval', {'mlm_loss': 2.0})\n"
            "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO,
                   env={**os.environ, "PYTHONPATH": REPO})
    (train,) = glob.glob(str(tmp_path / "tensorboard" / "train" / "events.out.tfevents.*"))
    assert [(e.step, e.summary.value[0].tag) for e in _events(train)[1:]] == [(1, "loss")]
