"""Slow: the loaders on the real benchmark files in ../shared/data (see its README), when present.

The counts are the README's verified ones; gold labels used as predictions must score 1.0.
"""
import os
import time

import numpy as np
import pytest

from bert_jax.data import tasks
from bert_jax.metrics.tasks import chunks

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared",
                    "data")
pytestmark = pytest.mark.slow


def _need(*parts):
    path = os.path.join(DATA, *parts)
    if not os.path.exists(path):
        pytest.skip(f"{path} is not here")
    return os.path.dirname(path) if os.path.isfile(path) else path


@pytest.mark.parametrize("name, folder, count", [
    ("sst2", "SST-2", 872), ("mrpc", "MRPC", 408), ("cola", "CoLA", 1043),
    ("stsb", "STS-B", 1500), ("rte", "RTE", 277), ("qnli", "QNLI", 5463)])
def test_glue_dev(name, folder, count):
    glue_dir = os.path.dirname(_need("glue", folder, "dev.tsv"))
    task = tasks.get_task(name)
    examples = tasks.load_examples(task, "validation", glue_dir)
    assert len(examples) == count
    gold = [e.label for e in examples]
    assert tasks.evaluate(task, examples, gold) == {k: 1.0 for k in task.metric_keys}


def test_glue_train_counts():
    glue_dir = os.path.dirname(_need("glue", "SST-2", "train.tsv"))
    for name, count in (("sst2", 67349), ("mrpc", 3668), ("cola", 8551), ("stsb", 5749),
                        ("rte", 2490)):
        assert len(tasks.load_examples(tasks.get_task(name), "train", glue_dir)) == count


def test_conll():
    conll_dir = _need("conll2003", "eng.testa")
    task = tasks.get_task("conll2003")
    for split, sentences, entities in (("validation", 3250, 5942), ("test", 3453, 5648),
                                       ("train", 14041, 23499)):
        examples = tasks.load_examples(task, split, conll_dir)
        assert len(examples) == sentences
        assert sum(len(chunks(e.tags)) for e in examples) == entities
        gold = [list(e.tags) for e in examples]
        assert tasks.evaluate(task, examples, gold)["f1"] == 1.0


def test_squad_v1_dev(tokenizer):
    squad_dir = _need("squad", "dev-v1.1.json")
    task = tasks.get_task("squad_v1")
    examples = tasks.load_examples(task, "validation", squad_dir)
    assert len(examples) == 10570
    assert sum(len(e.answers) for e in examples) == 34726
    assert tasks.evaluate(task, examples, {e.id: e.answers[0] for e in examples}) == {
        "exact_match": 1.0, "f1": 1.0}
    # The whole path with the first gold's positions as logits: windows, labels, decoding.
    # With no answer-length limit, the only misses are the ~30 golds whose answer_start
    # points inside a longer word ("8" in "18"); the default limit of 30 pieces of this
    # 8k vocab also drops the longest answers.
    started = time.perf_counter()
    features = tasks.featurize(task, examples, tokenizer, 384, doc_stride=128)
    onehot = np.eye(384, dtype=np.float32)
    outputs = {"start_logits": onehot[features["start_position"]],
               "end_logits": onehot[features["end_position"]]}
    unlimited = tasks.evaluate(task, examples, tasks.postprocess(
        task, examples, features, outputs, max_answer_length=384))
    default = tasks.evaluate(task, examples, tasks.postprocess(
        task, examples, features, outputs))
    print(f"SQuAD v1.1 dev, gold spans through features: {unlimited} without a length limit, "
          f"{default} with 30; {time.perf_counter() - started:.1f}s")
    assert unlimited["exact_match"] > 0.995 and unlimited["f1"] > 0.995
    assert default["exact_match"] > 0.98
