"""grain pipeline: determinism, epochs, process sharding, resume, eval batches, errors."""
import json

import numpy as np
import pytest

from bert_jax.data import pipeline

from tests.data.conftest import write_google_corpus


def take(it, n):
    return [next(it) for _ in range(n)]


def rows(batches):
    return np.concatenate([b["input_ids"] for b in batches])


def assert_same(xs, ys):
    assert len(xs) == len(ys)
    for x, y in zip(xs, ys):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])


def test_batch_format(make_cfg):
    b = next(pipeline.make_train_iterator(make_cfg(), seed=0, global_batch_size=8))
    assert set(b) == {"input_ids", "attention_mask", "token_type_ids", "next_sentence_label",
                      "word_start", "example_index", "epoch"}
    assert all(type(v) is np.ndarray and v.dtype == np.int32 for v in b.values())
    assert b["input_ids"].shape == b["attention_mask"].shape == (8, 32)
    assert b["next_sentence_label"].shape == (8,)
    real = b["attention_mask"].astype(bool)
    assert (b["input_ids"][~real] == 0).all() and (b["input_ids"][real] != 0).all()
    assert (b["attention_mask"][:, 0] == 1).all() and (b["token_type_ids"][~real] == 0).all()


def test_packed_documents_batches_carry_pack_ids(make_cfg):
    cfg = make_cfg(sentence_task="none", packing="packed_documents")
    b = next(pipeline.make_train_iterator(cfg, seed=0, global_batch_size=8))
    assert b["pack_ids"].dtype == np.int32 and b["pack_ids"].shape == (8, 32)
    np.testing.assert_array_equal(b["attention_mask"], b["pack_ids"] > 0)
    assert b["pack_ids"].max() > 1  # short lines: several sequences share a row


def test_seeds(make_cfg):
    cfg = make_cfg()
    a = take(pipeline.make_train_iterator(cfg, seed=0, global_batch_size=8), 4)
    b = take(pipeline.make_train_iterator(cfg, seed=0, global_batch_size=8), 4)
    c = take(pipeline.make_train_iterator(cfg, seed=1, global_batch_size=8), 4)
    assert_same(a, b)
    assert not np.array_equal(rows(a), rows(c))


def test_every_epoch_is_a_new_permutation(make_cfg):
    cfg = make_cfg()
    from bert_jax.data import instances
    n = len(instances.load_instances(cfg, "train", seed=0)["length"])
    it = pipeline.make_train_iterator(cfg, seed=0, global_batch_size=8)
    stream = rows(take(it, -(-2 * n // 8)))
    epoch0, epoch1 = stream[:n], stream[n:2 * n]
    key = lambda r: r.tobytes()
    assert sorted(map(key, epoch0)) == sorted(map(key, epoch1))  # Same instances...
    assert not np.array_equal(epoch0, epoch1)  # ...in a new order.


def test_example_index_and_epoch_name_the_row_and_its_pass(make_cfg):
    """Static masking keys on them: each row is its instance, each epoch a full pass."""
    cfg = make_cfg()
    from bert_jax.data import instances
    stored = instances.load_instances(cfg, "train", seed=0)
    n = len(stored["length"])
    batches = take(pipeline.make_train_iterator(cfg, seed=0, global_batch_size=8),
                   -(-2 * n // 8) + 1)
    index = np.concatenate([b["example_index"] for b in batches])
    epoch = np.concatenate([b["epoch"] for b in batches])
    np.testing.assert_array_equal(rows(batches), stored["input_ids"][index].astype(np.int32))
    np.testing.assert_array_equal(epoch, np.arange(len(index)) // n)
    for e in (0, 1):  # Every instance exactly once per epoch.
        np.testing.assert_array_equal(np.sort(index[epoch == e]), np.arange(n))
    evals = pipeline.make_eval_batches(cfg, seed=0, batch_size=4, num_batches=2)
    assert [b["example_index"].tolist() for b in evals] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert all((b["epoch"] == 0).all() for b in evals)


def test_process_shards_concatenate_to_the_global_batch(make_cfg):
    cfg = make_cfg()
    steps = 60  # > one epoch of the ~350 instances at 8 per step: crosses an epoch boundary.
    whole = take(pipeline.make_train_iterator(cfg, seed=5, global_batch_size=8), steps)
    parts = [take(pipeline.make_train_iterator(cfg, seed=5, global_batch_size=8,
                                               process_index=p, process_count=2), steps)
             for p in range(2)]
    for s in range(steps):
        for k in whole[s]:
            assert parts[0][s][k].shape[0] == 4
            np.testing.assert_array_equal(np.concatenate([parts[0][s][k], parts[1][s][k]]),
                                          whole[s][k])


def test_resume_from_json_state(make_cfg):
    cfg = make_cfg()
    it = pipeline.make_train_iterator(cfg, seed=0, global_batch_size=8, process_index=1,
                                      process_count=2)
    take(it, 3)
    state = json.loads(json.dumps(it.get_state()))
    expected = take(it, 3)
    fresh = pipeline.make_train_iterator(cfg, seed=0, global_batch_size=8, process_index=1,
                                         process_count=2)
    fresh.set_state(state)
    assert_same(take(fresh, 3), expected)


def test_resume_on_another_process_count(make_cfg):
    # The state counts steps, so a run may come back on a different number of hosts.
    cfg = make_cfg()
    whole = pipeline.make_train_iterator(cfg, seed=0, global_batch_size=8)
    take(whole, 5)
    state = whole.get_state()
    expected = next(whole)
    halves = []
    for p in range(2):
        it = pipeline.make_train_iterator(cfg, seed=0, global_batch_size=8, process_index=p,
                                          process_count=2)
        it.set_state(state)
        halves.append(next(it))
    for k in expected:
        np.testing.assert_array_equal(np.concatenate([h[k] for h in halves]), expected[k])


def test_eval_batches(make_cfg):
    cfg = make_cfg(max_seq_len=16)
    a = pipeline.make_eval_batches(cfg, seed=0, batch_size=4, num_batches=3)
    assert len(a) == 3 and a[0]["input_ids"].shape == (4, 16)
    assert_same(a, pipeline.make_eval_batches(cfg, seed=0, batch_size=4, num_batches=3))
    many = pipeline.make_eval_batches(cfg, seed=0, batch_size=4, num_batches=10_000)
    assert 3 < len(many) < 10_000 and all(b["input_ids"].shape == (4, 16) for b in many)
    halves = [pipeline.make_eval_batches(cfg, seed=0, batch_size=4, num_batches=3,
                                         process_index=p, process_count=2) for p in range(2)]
    for i in range(3):
        for k in a[i]:
            np.testing.assert_array_equal(
                np.concatenate([halves[0][i][k], halves[1][i][k]]), a[i][k])
    with pytest.raises(ValueError, match="fewer than one eval batch"):
        pipeline.make_eval_batches(cfg, seed=0, batch_size=100_000, num_batches=1)


def test_bad_inputs(make_cfg, tmp_path):
    with pytest.raises(ValueError, match="multiple of process_count=3"):
        pipeline.make_train_iterator(make_cfg(), seed=0, global_batch_size=8, process_count=3)
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n   \n\n")
    with pytest.raises(ValueError, match="zero instances"):
        pipeline.make_train_iterator(make_cfg(text_files=[str(blank)]), seed=0, global_batch_size=8)
    with pytest.raises(FileNotFoundError, match="data.vocab_path"):
        pipeline.make_train_iterator(make_cfg(vocab_path=str(tmp_path / "v.txt")), seed=0,
                                     global_batch_size=8)


def test_worker_processes_give_the_same_batches(make_cfg, tmp_path):
    from absl import flags
    flags.FLAGS.mark_as_parsed()  # As absl.app.run would (grain's own tests do the same).
    cfg = make_cfg(text_files=[str(write_google_corpus(tmp_path / "w.txt", 60, 3))])
    a = take(pipeline.make_train_iterator(cfg, seed=0, global_batch_size=4), 3)
    it = pipeline.make_train_iterator(make_cfg(text_files=cfg.text_files, worker_count=1),
                                      seed=0, global_batch_size=4)
    assert_same(take(it, 3), a)
    json.dumps(it.get_state())


@pytest.mark.parametrize("kind,fields", [
    ("wordpiece", dict(sentence_task="sop")),
    ("bpe", dict(sentence_task="none", packing="full_sentences")),
    ("bpe", dict(sentence_task="none", packing="doc_sentences")),
    ("unigram", dict(sentence_task="sop")),
    ("unigram", dict(sentence_task="nsp")),
])
def test_every_tokenizer_and_task(make_cfg, kind, fields):
    from bert_jax.data import tokenizer as tokenizer_lib
    lowercase = kind != "bpe"
    tok = tokenizer_lib.load_tokenizer(tokenizer_lib.DEFAULT_PATHS[kind], lowercase)
    cfg = make_cfg(tokenizer=kind, vocab_path=tokenizer_lib.DEFAULT_PATHS[kind],
                   lowercase=lowercase, **fields)
    b = next(pipeline.make_train_iterator(cfg, seed=0, global_batch_size=64))
    assert set(b) == {"input_ids", "attention_mask", "token_type_ids", "next_sentence_label",
                      "word_start", "example_index", "epoch"}
    assert all(type(v) is np.ndarray and v.dtype == np.int32 for v in b.values())
    assert b["input_ids"].shape == b["word_start"].shape == (64, 32)
    ids, real = b["input_ids"], b["attention_mask"].astype(bool)
    length = real.sum(1)
    assert (ids[:, 0] == tok.cls_id).all() and (ids[np.arange(64), length - 1] == tok.sep_id).all()
    assert (ids[~real] == tok.pad_id).all() and not (ids[real] == tok.pad_id).any()
    assert not np.isin(ids[:, 1:][real[:, 1:]], [tok.cls_id, tok.mask_id, tok.unk_id]).any()
    seps = (ids == tok.sep_id).sum(1)
    if fields["sentence_task"] != "none":  # [CLS] A [SEP] B [SEP]; about half the labels are 1.
        assert (seps == 2).all() and 0.2 < b["next_sentence_label"].mean() < 0.8
        assert b["token_type_ids"].any()
    else:  # One segment; a [SEP] inside only between documents, with full_sentences.
        assert (b["next_sentence_label"] == 0).all() and not b["token_type_ids"].any()
        assert (seps > 1).any() == (fields["packing"] == "full_sentences")
    # word_start: the tokenizer's marker, plus specials and each segment's first piece.
    marker = {"wordpiece": lambda t: not t.startswith("##"), "bpe": lambda t: t[0] == "Ġ",
              "unigram": lambda t: t[0] == "▁"}[kind]
    for r in range(64):
        for j in range(length[r]):
            token = tok.id_to_token(ids[r, j])
            first = j > 0 and ids[r, j - 1] in (tok.cls_id, tok.sep_id)
            expected = int(ids[r, j] in tok.special_ids or marker(token) or first)
            assert b["word_start"][r, j] == expected, (r, j, token)
        assert not b["word_start"][r, length[r]:].any()
    if kind != "wordpiece":  # The corpus is whole words of the WordPiece vocab; others split some.
        assert 0.3 < b["word_start"][real].mean() < 0.95
