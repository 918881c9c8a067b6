"""The fill-in-the-blank printout shows text people can read, whatever the tokenizer; the
steady-state timing behind summary.json."""

import json

import pytest

from bert_jax.data.tokenizer import DEFAULT_PATHS, load_tokenizer
from bert_jax.training import report
from bert_jax.training.report import _join_pieces, _piece

TEXT = "The debugger \u2013 extensible, isn't it."


@pytest.mark.parametrize("kind,expected", [
    ("bpe", f"<s> {TEXT} </s>"),  # byte-level symbols ("Ġ", "âĢĵ") decoded
    ("unigram", f"[CLS] {TEXT.lower()} [SEP]"),  # "▁" word marks become spaces
    ("wordpiece", "[CLS] the debugger \u2013 extensible , isn ' t it . [SEP]"),
])
def test_pieces_read_as_text(kind, expected):
    tok = load_tokenizer(DEFAULT_PATHS[kind], kind != "bpe", kind=kind)
    ids, _ = tok.encode_batch([TEXT])[0]
    assert _join_pieces([_piece(tok, i) for i in [tok.cls_id, *ids, tok.sep_id]]) == expected


def test_steady_timer_leaves_out_the_first_step_and_evaluations_within_the_span(
        tmp_path, monkeypatch):
    """Steps 1..5 finish at t = 10..50; an evaluation of 4 s ends at 33 (inside the span) and
    the final one of 7 s at 60 (after the last step): train_s = 50 - 10 - 4 over 4 steps."""
    now = [0.0]
    monkeypatch.setattr(report.time, "time", lambda: now[0])
    timer = report.SteadyTimer()
    assert timer.record(str(tmp_path), num_params=1, num_steps=5, tokens_per_step=100,
                        start_step=0, end_step=0, wall_s=1.0) is None
    assert not (tmp_path / report.RUN_SUMMARY_FILE).exists()
    for step in range(1, 6):
        now[0] = 10.0 * step
        timer.step_finished(step)
        if step == 3:
            now[0] = 33.0
            timer.evaluated(4.0)
    now[0] = 60.0
    timer.evaluated(7.0)
    timer.record(str(tmp_path), num_params=1, num_steps=5, tokens_per_step=100, start_step=0,
                 end_step=5, wall_s=61.0)
    summary = json.loads((tmp_path / report.RUN_SUMMARY_FILE).read_text())
    (run,) = summary["invocations"]
    assert (run["train_s"], run["timed_steps"]) == (36.0, 4)
    assert summary["tokens_per_sec"] == round(4 * 100 / 36.0, 1)
