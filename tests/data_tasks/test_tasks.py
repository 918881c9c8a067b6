"""The task table and the entry points' argument checks."""
import pytest

from bert_jax.config import ConfigError
from bert_jax.data import tasks


def test_table_is_consistent():
    assert set(tasks.TASKS) == {"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte",
                                "wnli", "squad_v1", "squad_v2", "conll2003"}
    for name, task in tasks.TASKS.items():
        assert task.name == name and task.main_metric in task.metric_keys
        assert task.family in ("glue", "squad", "conll")
        if task.kind in ("classification", "token"):
            assert task.num_labels == len(task.label_names)
    assert tasks.get_task("mnli").eval_splits == ("validation_matched",
                                                  "validation_mismatched")
    assert tasks.get_task("cola").main_metric == "matthews_corr"
    assert tasks.get_task("stsb").kind == "regression"
    assert tasks.get_task("stsb").num_labels == 1


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown task 'sst'.*sst2.*conll2003"):
        tasks.get_task("sst")


def test_unknown_split_and_missing_dir(tmp_path):
    with pytest.raises(ConfigError, match="squad_v1 has no split 'test'"):
        tasks.load_examples(tasks.get_task("squad_v1"), "test", sample=True)
    with pytest.raises(ConfigError, match="mnli has no split 'validation'.*validation_matched"):
        tasks.load_examples(tasks.get_task("mnli"), "validation", sample=True)
    missing = str(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="nowhere.*not a directory"):
        tasks.load_examples(tasks.get_task("rte"), "train", missing)


@pytest.mark.parametrize("name", ["sst2", "mnli", "squad_v2", "conll2003"])
def test_missing_file_names_path_and_expectation(tmp_path, name):
    task = tasks.get_task(name)
    with pytest.raises(ConfigError, match=f"{tmp_path}.* does not exist; expected"):
        tasks.load_examples(task, task.eval_splits[0], str(tmp_path))


def test_tfds_failure_says_what_to_do(monkeypatch):
    import tensorflow_datasets as tfds

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(tfds, "load", offline)
    with pytest.raises(ConfigError, match="glue/rte.*no network.*local_dir.*sample=True"):
        tasks.load_examples(tasks.get_task("rte"), "train")


def test_predictions_file_names():
    names = {(n, s): tasks.predictions_file_name(tasks.get_task(n), s) for n, s in (
        ("cola", "test"), ("sst2", "validation"), ("mnli", "test_matched"),
        ("mnli", "validation_mismatched"), ("squad_v2", "validation"), ("conll2003", "test"))}
    assert names == {("cola", "test"): "CoLA.tsv", ("sst2", "validation"): "SST-2.tsv",
                     ("mnli", "test_matched"): "MNLI-m.tsv",
                     ("mnli", "validation_mismatched"): "MNLI-mm.tsv",
                     ("squad_v2", "validation"): "predictions_validation.json",
                     ("conll2003", "test"): "test.conll"}
