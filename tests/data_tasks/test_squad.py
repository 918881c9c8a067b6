"""SQuAD: readers, sliding windows and max context, answer positions, span decoding."""
import json

import numpy as np
import pytest

from bert_jax.data import DataError, tasks
from bert_jax.data.tasks import common, squad

V1, V2 = tasks.get_task("squad_v1"), tasks.get_task("squad_v2")


def test_samples():
    counts = {(t.name, s): len(tasks.load_examples(t, s, sample=True))
              for t in (V1, V2) for s in t.splits}
    assert counts == {("squad_v1", "train"): 10, ("squad_v1", "validation"): 8,
                      ("squad_v2", "train"): 12, ("squad_v2", "validation"): 10}
    for task in (V1, V2):
        for example in tasks.load_examples(task, "validation", sample=True):
            assert example.is_impossible == (not example.answers)
            for text, start in zip(example.answers, example.answer_starts):
                assert example.context[start:start + len(text)] == text
    dev_v2 = tasks.load_examples(V2, "validation", sample=True)
    assert sum(e.is_impossible for e in dev_v2) == 2


def test_reader_on_temp_file(tmp_path):
    data = {"version": "v2.0", "data": [{"title": "T", "paragraphs": [{
        "context": "Ada was born in 1815.",
        "qas": [{"id": "q1", "question": "When?", "is_impossible": False,
                 "answers": [{"text": "1815", "answer_start": 16}]},
                {"id": "q2", "question": "Where?", "is_impossible": True, "answers": [],
                 "plausible_answers": [{"text": "Ada", "answer_start": 0}]}]}]}]}
    (tmp_path / "dev-v2.0.json").write_text(json.dumps(data))
    examples = tasks.load_examples(V2, "validation", str(tmp_path))
    assert examples == [
        squad.SquadExample("q1", "When?", "Ada was born in 1815.", ("1815",), (16,), False, "T"),
        squad.SquadExample("q2", "Where?", "Ada was born in 1815.", (), (), True, "T")]
    (tmp_path / "train-v2.0.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="train-v2.0.json is not a SQuAD JSON file"):
        tasks.load_examples(V2, "train", str(tmp_path))


def test_tfds_records(monkeypatch):
    calls = []

    def records(name, split, data_dir=""):
        calls.append((name, split))
        return [{"id": b"q9", "title": b"T", "context": b"Rome is old.", "question": b"What?",
                 "is_impossible": True, "answers": {"text": np.array([], object),
                                                    "answer_start": np.array([], np.int32)}}]

    monkeypatch.setattr(common, "tfds_records", records)
    assert tasks.load_examples(V2, "validation") == [
        squad.SquadExample("q9", "What?", "Rome is old.", (), (), True, "T")]
    assert calls == [("squad/v2.0", "validation")]


def test_windows_and_max_context_by_hand():
    assert squad.windows(10, 4, 3) == [(0, 4), (3, 4), (6, 4)]
    assert squad.windows(10, 4, 8) == [(0, 4), (4, 4), (8, 2)]  # Stride > window: no gap.
    assert squad.windows(3, 4, 2) == [(0, 3)]
    assert squad.windows(0, 4, 2) == [(0, 0)]
    # Score = min(left, right) + 0.01 * length; ties go to the first window.
    best = squad.max_context_window([(0, 4), (3, 4), (6, 4)], 10)
    assert best.tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]


@pytest.mark.parametrize("max_seq_len, doc_stride", [(40, 8), (48, 16), (64, 128), (256, 32)])
def test_windows_cover_context_and_answers_map_back(tokenizer, max_seq_len, doc_stride):
    examples = tasks.load_examples(V2, "train", sample=True)
    f = tasks.featurize(V2, examples, tokenizer, max_seq_len, doc_stride=doc_stride,
                        max_query_length=16)
    n = len(f["input_ids"])
    assert f["input_ids"].shape == (n, max_seq_len) and f["_offsets"].shape == (n, max_seq_len, 2)
    hf = tokenizer.hf
    for i, example in enumerate(examples):
        rows = np.flatnonzero(f["example_index"] == i)
        context_pieces = [tuple(o) for o in hf.encode(example.context,
                                                      add_special_tokens=False).offsets]
        seen, max_owner = {}, {}
        for row in rows:
            in_context = f["_offsets"][row, :, 0] >= 0
            assert (f["token_type_ids"][row][in_context] == 1).all()
            for pos in np.flatnonzero(in_context):
                piece = tuple(f["_offsets"][row, pos])
                seen[piece] = seen.get(piece, 0) + 1
                if f["_token_is_max_context"][row, pos]:
                    assert piece not in max_owner
                    max_owner[piece] = row
            s, e = f["start_position"][row], f["end_position"][row]
            if s or e:
                text = example.context[f["_offsets"][row, s, 0]:f["_offsets"][row, e, 1]]
                assert text == example.answers[0]
        assert set(seen) == set(context_pieces)        # Every piece in some window,
        assert set(max_owner) == set(context_pieces)   # and decided in exactly one.
        answered = [r for r in rows if f["start_position"][r]]
        assert bool(answered) == (not example.is_impossible)
    assert f["_token_is_max_context"].sum() == sum(
        len(hf.encode(e.context, add_special_tokens=False).ids) for e in examples)
    if max_seq_len < 64:
        assert n > 2 * len(examples)  # Several windows per example.


def _single_window(tokenizer, task, example, max_seq_len=128):
    f = tasks.featurize(task, [example], tokenizer, max_seq_len)
    assert len(f["input_ids"]) == 1
    return f


def _span(f, text, row=0):
    """Row positions of the first and last context pieces of `text` in CONTEXT."""
    off = f["_offsets"][row]
    start = CONTEXT.index(text)
    inside = np.flatnonzero((off[:, 1] > start) & (off[:, 0] < start + len(text)))
    return int(inside[0]), int(inside[-1])


CONTEXT = "The Vatna glacier has retreated by roughly two kilometres since 1930."


def _outputs(f, null=0.0):
    """Start/end logits [1, L]: -5 everywhere, null / 2 at [CLS] for each."""
    start = np.full(f["input_ids"].shape, -5.0, np.float32)
    start[0, 0] = null / 2
    return {"start_logits": start, "end_logits": start.copy()}


def test_postprocess_best_span_and_limits(tokenizer):
    example = squad.SquadExample("q", "How far?", CONTEXT, ("roughly two kilometres",),
                                 (CONTEXT.index("roughly"),))
    f = _single_window(tokenizer, V1, example)
    outputs = _outputs(f)
    first, last = _span(f, "roughly two kilometres")
    assert last - first >= 2
    outputs["start_logits"][0, first] = outputs["end_logits"][0, last] = 4.0
    assert tasks.postprocess(V1, [example], f, outputs) == {"q": "roughly two kilometres"}
    # Too long for max_answer_length: the next best span that fits wins.
    outputs["start_logits"][0, _span(f, "two")[0]] = 3.0
    assert tasks.postprocess(V1, [example], f, outputs,
                             max_answer_length=last - first) == {"q": "two kilometres"}
    # An end before its start is never a span: the best start is now after every good end.
    outputs["start_logits"][0, _span(f, "since")[0]] = 9.0
    assert tasks.postprocess(V1, [example], f, outputs) == {"q": "roughly two kilometres"}
    # n_best_size=1 keeps only that start and the best end: no valid span is left.
    assert tasks.postprocess(V1, [example], f, outputs, n_best_size=1) == {"q": ""}


def test_postprocess_v2_null_threshold(tokenizer):
    example = squad.SquadExample("q", "When?", CONTEXT, ("1930",), (CONTEXT.index("1930"),))
    f = _single_window(tokenizer, V2, example)
    outputs = _outputs(f, null=4.0)
    first, last = _span(f, "1930")
    outputs["start_logits"][0, first] = outputs["end_logits"][0, last] = 1.5
    # Best span 3.0, null 4.0: null - best = 1.
    assert tasks.postprocess(V2, [example], f, outputs) == {"q": ""}
    assert tasks.postprocess(V2, [example], f, outputs, null_score_diff_threshold=0.99) == {
        "q": ""}
    assert tasks.postprocess(V2, [example], f, outputs, null_score_diff_threshold=1.01) == {
        "q": "1930"}
    assert tasks.postprocess(V1, [example], f, outputs) == {"q": "1930"}  # v1: no null.


def test_postprocess_start_needs_max_context(tokenizer):
    examples = tasks.load_examples(V1, "validation", sample=True)[:1]
    f = tasks.featurize(V1, examples, tokenizer, 40, doc_stride=8, max_query_length=16)
    assert len(f["input_ids"]) > 2
    shape = f["input_ids"].shape
    start, end = np.full(shape, -5.0, np.float32), np.full(shape, -5.0, np.float32)
    # Row 1's first context piece also lies in row 0, where it has more context: as a start
    # it only counts in row 0. Make it the best start in row 1 only.
    first = int(np.flatnonzero(f["_offsets"][1, :, 0] >= 0)[0])
    assert not f["_token_is_max_context"][1, first]
    start[1, first] = end[1, first] = 10.0
    later = int(np.flatnonzero(f["_token_is_max_context"][1])[0])  # A weaker span there.
    start[1, later] = end[1, later] = 1.0
    want = examples[0].context[f["_offsets"][1, later, 0]:f["_offsets"][1, later, 1]]
    got = tasks.postprocess(V1, examples, f, {"start_logits": start, "end_logits": end})
    assert got == {examples[0].id: want}


def test_gold_spans_decode_to_full_scores(tmp_path, tokenizer):
    for task in (V1, V2):
        examples = tasks.load_examples(task, "validation", sample=True)
        f = tasks.featurize(task, examples, tokenizer, 48, doc_stride=16, max_query_length=16)
        onehot = np.eye(48, dtype=np.float32)
        outputs = {"start_logits": 10 * onehot[f["start_position"]],
                   "end_logits": 10 * onehot[f["end_position"]]}
        predictions = tasks.postprocess(task, examples, f, outputs)
        assert tasks.evaluate(task, examples, predictions) == {"exact_match": 1.0, "f1": 1.0}
        path = tmp_path / f"{task.name}.json"
        tasks.write_predictions(task, examples, predictions, str(path))
        assert json.loads(path.read_text()) == predictions


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_bpe_and_unigram_spans_are_exact(kind):
    """Their pieces carry the space before a word ("Ġ", "▁"); offsets must not."""
    from bert_jax.data.tokenizer import DEFAULT_PATHS, load_tokenizer

    tokenizer = load_tokenizer(DEFAULT_PATHS[kind], lowercase=kind == "unigram")
    examples = tasks.load_examples(V1, "validation", sample=True)
    f = tasks.featurize(V1, examples, tokenizer, 160)
    assert len(f["input_ids"]) == len(examples)  # One window each: all answers inside.
    assert (f["input_ids"][:, 0] == tokenizer.cls_id).all()
    for row, example in enumerate(examples):
        s, e = f["start_position"][row], f["end_position"][row]
        assert example.context[f["_offsets"][row, s, 0]:f["_offsets"][row, e, 1]] == \
            example.answers[0]
    onehot = np.eye(160, dtype=np.float32)
    outputs = {"start_logits": onehot[f["start_position"]],
               "end_logits": onehot[f["end_position"]]}
    predictions = tasks.postprocess(V1, examples, f, outputs)
    assert predictions == {e.id: e.answers[0] for e in examples}
