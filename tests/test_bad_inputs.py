"""Every bad input of tests/bad_inputs.py stops with a clear one-line error before anything
compiles, and nothing already saved is lost; the README's table is these cases' messages."""

import os

import pytest

from bert_jax.metrics.writers import read_metrics
from bert_jax.training import loop
from tests import bad_inputs
from tests.training.test_loop import corpus, make_config  # noqa: F401 - the corpus fixture

_MESSAGES = {}  # case name -> normalised message, for the README check at the end


@pytest.fixture(scope="module")
def finished(corpus, tmp_path_factory):  # noqa: F811
    workdir = str(tmp_path_factory.mktemp("finished") / "w")
    loop.train_and_evaluate(make_config(corpus), workdir)
    return workdir


def _train_rows(workdir):
    return [r for r in read_metrics(os.path.join(workdir, "metrics.jsonl"))
            if r["split"] == "train"]


@pytest.mark.parametrize("case", bad_inputs.CASES, ids=lambda c: c.name)
def test_bad_input(case, corpus, finished, tmp_path, monkeypatch):  # noqa: F811
    if case.before_compile and not case.cli:
        def no_compile(*args, **kwargs):
            raise AssertionError("the error must come before the train step is built")
        monkeypatch.setattr(loop, "Parallel", no_compile)
    saved = bad_inputs.snapshot(finished) if case.workdir.startswith("finished") else None
    message = bad_inputs.run_case(case, tmp_path, corpus, finished, make_config)
    assert case.expect in message, message
    assert "\n" not in message.strip()
    workdir = str(tmp_path / "w")
    if case.workdir == "finished":
        assert bad_inputs.snapshot(workdir) == saved  # not a byte changed
    elif case.workdir == "finished_damaged":
        damaged = {k: v for k, v in saved.items() if "/state/" not in k}
        assert bad_inputs.snapshot(workdir) == damaged
    elif case.fault == "disk_full":
        # The first checkpoint (step 4) was written before the disk filled; the failed step 8
        # never became a step. Rerunning the same command resumes from step 4 and ends with
        # exactly the numbers of the run that never failed.
        steps = [d for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit()]
        assert steps == ["4"]
        assert "steps saved before (4) are intact" in message
        loop.train_and_evaluate(make_config(corpus), workdir)
        assert _train_rows(workdir) == _train_rows(finished)
    elif case.workdir == "fresh":
        checkpoints = os.path.join(workdir, "checkpoints")
        assert not os.path.isdir(checkpoints) or not os.listdir(checkpoints)
    _MESSAGES[case.name] = bad_inputs.normalise(message, tmp_path)


def test_at_least_fifteen_kinds():
    assert len({c.name for c in bad_inputs.CASES}) == len(bad_inputs.CASES) >= 15


def test_readme_table_is_these_cases_messages():
    """The README block between the bad-inputs markers is generated from the cases above
    (`python -m tests.bad_inputs --readme`); it must match what they print now."""
    if len(_MESSAGES) < len(bad_inputs.CASES):
        pytest.skip("needs every case of test_bad_input to have run in this session")
    assert bad_inputs.readme_block() == bad_inputs.table(_MESSAGES), (
        "README's bad-input table is stale: run `python -m tests.bad_inputs --readme`")
