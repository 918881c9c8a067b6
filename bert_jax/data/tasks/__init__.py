"""Fine-tuning tasks: GLUE (9 tasks), SQuAD v1.1 / v2.0, CoNLL-2003 NER.

One interface for all twelve, each step a function of the `Task`:

    task = get_task("mrpc")
    examples = load_examples(task, "validation")              # TFDS glue/mrpc (internet)
    examples = load_examples(task, "validation", "/data/glue")  # GLUE's original TSVs
    examples = load_examples(task, "validation", sample=True)   # the project's samples
    features = featurize(task, examples, tokenizer, max_seq_len=128)
    predictions = postprocess(task, examples, features, model_outputs)
    scores = evaluate(task, examples, predictions)   # {"f1": ..., "accuracy": ...}, fractions
    write_predictions(task, examples, predictions, path)

Examples are small frozen dataclasses, each with a stable `id`: `glue.GlueExample` (id = row
number = TFDS idx), `squad.SquadExample` (id = the question id), `conll.ConllExample` (id =
sentence number in the file). Feature arrays are numpy, one row per model input; keys starting
with "_" are for decoding on the host and are not model inputs. Every metric is a fraction in
[0, 1] (`bert_jax.metrics.tasks`).

Local files (`local_dir`): GLUE: `<local_dir>/<GLUE folder, e.g. SST-2>/{train,dev,test}.tsv`
(MNLI: `dev_matched.tsv`, `dev_mismatched.tsv`, `test_matched.tsv`, `test_mismatched.tsv`),
or `local_dir` the task folder itself; SQuAD: `{train,dev}-v1.1.json` / `-v2.0.json`; CoNLL:
`eng.train`, `eng.testa` (validation), `eng.testb` (test).

The samples (`samples/`, see its README) are made by this project, in the original file
formats: about a dozen training examples per task, for the no-argument demo and the tests.
They are not the benchmarks, and scores on them mean nothing.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import numpy as np

from bert_jax.config import ConfigError
from bert_jax.data.tasks import conll, glue, squad

SAMPLES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "samples")


@dataclasses.dataclass(frozen=True)
class Task:
    """What the trainer and the data code need to know about a task.

    name: "cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli", "squad_v1",
      "squad_v2", "conll2003".
    family: "glue" | "squad" | "conll".
    kind: "classification" | "regression" | "token" | "span".
    num_labels: classes; 1 for regression; tags for token; 2 (start, end) for span.
    label_names: class names as GLUE's files and leaderboard write them ("0"/"1" for the
      binary tasks but QNLI/RTE), or the tag names; () for regression and span.
    eval_splits: the labelled held-out splits ("validation", or MNLI's two).
    test_splits: the unlabelled splits ("test", or MNLI's two; () for SQuAD).
    main_metric: the key that picks the best checkpoint.
    metric_keys: the keys `evaluate` returns.
    tfds_name: the TFDS dataset the data comes from when there is no local_dir.
    """
    name: str
    family: str
    kind: str
    num_labels: int
    label_names: tuple[str, ...]
    eval_splits: tuple[str, ...]
    main_metric: str
    metric_keys: tuple[str, ...]
    test_splits: tuple[str, ...] = ("test",)
    tfds_name: str = ""

    @property
    def splits(self) -> tuple[str, ...]:
        return ("train",) + self.eval_splits + self.test_splits


def _glue(name, labels=("0", "1"), metric_keys=("accuracy",), main="accuracy", **kwargs):
    kind = "regression" if not labels else "classification"
    return Task(name, "glue", kind, len(labels) or 1, tuple(labels),
                kwargs.pop("eval_splits", ("validation",)), main, metric_keys,
                tfds_name=f"glue/{name}", **kwargs)


_NLI = ("entailment", "not_entailment")
_MNLI_LABELS = ("entailment", "neutral", "contradiction")  # TFDS's class order.
TASKS: dict[str, Task] = {t.name: t for t in (
    _glue("cola", metric_keys=("matthews_corr",), main="matthews_corr"),
    _glue("sst2"),
    _glue("mrpc", metric_keys=("f1", "accuracy"), main="f1"),
    _glue("stsb", labels=(), metric_keys=("pearson", "spearman"), main="pearson"),
    _glue("qqp", metric_keys=("accuracy", "f1"), main="f1"),
    _glue("mnli", labels=_MNLI_LABELS,
          eval_splits=("validation_matched", "validation_mismatched"),
          test_splits=("test_matched", "test_mismatched")),
    _glue("qnli", labels=_NLI),
    _glue("rte", labels=_NLI),
    _glue("wnli"),
    Task("squad_v1", "squad", "span", 2, (), ("validation",), "f1", ("exact_match", "f1"),
         test_splits=(), tfds_name="squad/v1.1"),
    Task("squad_v2", "squad", "span", 2, (), ("validation",), "f1", ("exact_match", "f1"),
         test_splits=(), tfds_name="squad/v2.0"),
    Task("conll2003", "conll", "token", len(conll.TAGS), conll.TAGS, ("validation",), "f1",
         ("f1", "precision", "recall", "accuracy"), tfds_name="conll2003"),
)}
_FAMILIES = {"glue": glue, "squad": squad, "conll": conll}
# Where each family's samples live under SAMPLES_DIR.
_SAMPLE_DIRS = {"glue": "glue", "squad": "squad", "conll": "conll2003"}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; the tasks are {', '.join(TASKS)}.")
    return TASKS[name]


def load_examples(task: Task, split: str, local_dir: str = "", *, sample: bool = False,
                  tfds_data_dir: str = "") -> list:
    """The examples of `split` ("train", one of `task.eval_splits` or `task.test_splits`).

    sample=True: the project's samples (no network, no TFDS). local_dir: the original files
    (module docstring). Otherwise TFDS `task.tfds_name`, prepared under `tfds_data_dir`
    ("" = TFDS's default).
    """
    if split not in task.splits:
        raise ConfigError(f"{task.name} has no split {split!r}; its splits are "
                          f"{', '.join(task.splits)}.")
    family = _FAMILIES[task.family]
    if sample:
        local_dir = os.path.join(SAMPLES_DIR, _SAMPLE_DIRS[task.family])
    if local_dir:
        if not os.path.isdir(local_dir):
            raise ConfigError(f"local_dir={local_dir!r} is not a directory; it must hold "
                              f"{task.name}'s original files (see bert_jax.data.tasks).")
        return family.read_local(task, split, local_dir)
    return family.read_tfds(task, split, tfds_data_dir)


def featurize(task: Task, examples: Sequence, tokenizer, max_seq_len: int, *,
              doc_stride: int = 128, max_query_length: int = 64) -> dict[str, np.ndarray]:
    """Model inputs, labels and host-side decoding arrays (see each family's `featurize`).

    Always: int32 `input_ids`, `attention_mask`, `token_type_ids` [N, max_seq_len] framed as
    `[CLS] a [SEP] (b [SEP])`, and int32 `example_index` [N] (row -> example; SQuAD makes
    several windows per long example). Labels: classification `label` int32 [N]; regression
    `label` float32 [N]; token `labels` int32 [N, L] + `label_weights` float32 [N, L]; span
    `start_position`, `end_position` int32 [N].
    """
    if task.family == "squad":
        return squad.featurize(task, examples, tokenizer, max_seq_len, doc_stride=doc_stride,
                               max_query_length=max_query_length)
    return _FAMILIES[task.family].featurize(task, examples, tokenizer, max_seq_len)


def postprocess(task: Task, examples: Sequence, features: dict, outputs: dict, *,
                n_best_size: int = 20, max_answer_length: int = 30,
                null_score_diff_threshold: float = 0.0):
    """Per-example predictions from model outputs aligned with `features`' rows.

    outputs: classification `logits` [N, C]; regression `logits` [N, 1]; token `logits`
    [N, L, T]; span `start_logits`, `end_logits` [N, L]. Returns: class ids / floats (a list
    in example order); token: one tag-name list per example (one tag per word); span:
    {question id: answer text}, "" = no answer.
    """
    rows = len(features["example_index"])
    for key, value in outputs.items():
        if len(value) != rows:
            raise ValueError(f"outputs[{key!r}] has {len(value)} rows but the features have "
                             f"{rows}; run the model on every feature row (pad the last "
                             "batch and drop the padding's outputs).")
    if task.family == "squad":
        return squad.postprocess(task, examples, features, outputs, n_best_size=n_best_size,
                                 max_answer_length=max_answer_length,
                                 null_score_diff_threshold=null_score_diff_threshold)
    return _FAMILIES[task.family].postprocess(task, examples, features, outputs)


def evaluate(task: Task, examples: Sequence, predictions) -> dict[str, float]:
    """{key: fraction} for each of `task.metric_keys`."""
    return _FAMILIES[task.family].evaluate(task, examples, predictions)


def predictions_file_name(task: Task, split: str) -> str:
    """A file name for `split`'s predictions: GLUE's leaderboard names ("SST-2.tsv",
    "MNLI-m.tsv", ...), SQuAD's "predictions_<split>.json", CoNLL's "<split>.conll"."""
    if task.family == "glue":
        return glue.leaderboard_name(task, split)
    return f"predictions_{split}.json" if task.family == "squad" else f"{split}.conll"


def write_predictions(task: Task, examples: Sequence, predictions, path: str) -> None:
    """GLUE: the leaderboard TSV; SQuAD: the official predictions JSON {qid: text}; CoNLL:
    conlleval's input ("word gold predicted" lines, a blank line after each sentence)."""
    _FAMILIES[task.family].write_predictions(task, examples, predictions, path)
