"""Task metrics against cases worked out by hand (the expected numbers are in the comments)."""
import math

import numpy as np
import pytest

from bert_jax.metrics import tasks as m


def test_accuracy_and_binary_f1():
    labels = [1, 1, 1, 0, 0, 1]
    preds = [1, 0, 1, 0, 1, 1]
    assert m.accuracy(labels, preds) == pytest.approx(4 / 6)
    # tp=3, fp=1, fn=1: 2*3 / (2*3 + 1 + 1).
    assert m.f1_binary(labels, preds) == pytest.approx(6 / 8)
    assert m.f1_binary([0, 0], [0, 0]) == 0.0


def test_matthews_corr_by_hand():
    # tp=6, tn=3, fp=1, fn=2: (6*3 - 1*2) / sqrt((6+1)(6+2)(3+1)(3+2)) = 16 / sqrt(1120).
    labels = [1] * 8 + [0] * 4
    preds = [1] * 6 + [0] * 2 + [0] * 3 + [1]
    assert m.matthews_corr(labels, preds) == pytest.approx(16 / math.sqrt(1120))
    assert m.matthews_corr(labels, labels) == pytest.approx(1.0)
    assert m.matthews_corr([0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(-1.0)


def test_matthews_corr_degenerate_is_zero():
    assert m.matthews_corr([1, 0, 1, 1], [1, 1, 1, 1]) == 0.0  # One predicted class.
    assert m.matthews_corr([1, 1, 1], [1, 1, 1]) == 0.0  # One class at all.


def test_pearson_spearman_with_ties():
    x, y = [1.0, 2.0, 2.0, 10.0], [1.0, 3.0, 2.0, 4.0]
    # Centred x: (-2.75, -1.75, -1.75, 6.25), centred y: (-1.5, .5, -.5, 1.5):
    # sum xy = 13.5, sum x^2 = 52.75, sum y^2 = 5.
    assert m.pearson(x, y) == pytest.approx(13.5 / math.sqrt(52.75 * 5))
    # Average ranks: x -> (1, 2.5, 2.5, 4), y -> (1, 3, 2, 4); their Pearson is 3/sqrt(10).
    np.testing.assert_allclose(m.average_ranks(x), [1, 2.5, 2.5, 4])
    assert m.spearman(x, y) == pytest.approx(3 / math.sqrt(10))
    assert m.pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == 0.0


def test_average_ranks_runs():
    np.testing.assert_allclose(m.average_ranks([3, 1, 3, 3, 0]), [4, 2, 4, 4, 1])


def test_pearson_spearman_agree_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, 200).astype(float)  # Many ties.
    y = x + rng.normal(size=200)
    assert m.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0])
    assert m.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0])


def test_pair_shapes_checked():
    with pytest.raises(ValueError, match="one length"):
        m.accuracy([1, 0], [1])


@pytest.mark.parametrize("text, normal", [
    ("The  Cat!", "cat"),
    ("an apple, a pear and THE plum.", "apple pear and plum"),
    ("Theatre", "theatre"),  # Articles only as whole words.
    ("  U.S.-based ", "usbased"),
    ("the", ""),
])
def test_normalize_answer(text, normal):
    assert m.normalize_answer(text) == normal


def test_squad_exact_match_and_f1():
    assert m.exact_match("The Eiffel Tower.", "eiffel tower") == 1.0
    assert m.exact_match("Eiffel", "eiffel tower") == 0.0
    # pred (eiffel tower in paris) vs gold (eiffel tower): p = 2/4, r = 1, f1 = 2/3.
    assert m.token_f1("the Eiffel Tower in Paris", "Eiffel Tower") == pytest.approx(2 / 3)
    assert m.token_f1("Rome", "Eiffel Tower") == 0.0
    # Repeated tokens count as a bag: pred (x y y), gold (y y z) -> same 2, p = r = 2/3.
    assert m.token_f1("x y y", "y y z") == pytest.approx(2 / 3)


def test_squad_scores_max_over_golds_and_no_answer():
    answers = {
        "q1": ["Denver Broncos", "the Broncos"],  # pred "Broncos": EM max(0, 1); F1 max(2/3, 1).
        "q2": ["1879"],                            # pred "in 1879": EM 0; F1 2/3.
        "q3": [],                                  # v2 no-answer, predicted "": EM 1, F1 1.
        "q4": [],                                  # v2 no-answer, predicted text: 0, 0.
        "q5": ["Paris"],                           # no prediction: 0, 0.
    }
    preds = {"q1": "Broncos", "q2": "in 1879", "q3": "", "q4": "Paris"}
    scores = m.squad_scores(preds, answers)
    assert scores["exact_match"] == pytest.approx((1 + 0 + 1 + 0 + 0) / 5)
    assert scores["f1"] == pytest.approx((1 + 2 / 3 + 1 + 0 + 0) / 5)
    assert m.squad_golds(["", " . "]) == [""]


def test_chunks_iob1_and_iob2_agree():
    iob1 = ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "O", "I-ORG"]
    iob2 = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "O", "B-ORG"]
    want = {("PER", 0, 1), ("LOC", 3, 3), ("LOC", 4, 4), ("ORG", 6, 6)}
    assert m.chunks(iob1) == want
    assert m.chunks(iob2) == want


def test_chunks_rules():
    # I- after O starts a chunk; a type change starts one; B- in IOB1 splits same-type runs.
    assert m.chunks(["O", "I-MISC", "I-MISC"]) == {("MISC", 1, 2)}
    assert m.chunks(["I-PER", "I-ORG"]) == {("PER", 0, 0), ("ORG", 1, 1)}
    assert m.chunks(["B-PER", "I-ORG", "I-ORG"]) == {("PER", 0, 0), ("ORG", 1, 2)}
    assert m.chunks(["I-LOC", "I-LOC", "B-LOC", "I-LOC"]) == {("LOC", 0, 1), ("LOC", 2, 3)}
    # The same tags read as IOB2 and IOB1 differ where IOB1 uses I- to continue:
    assert m.chunks(["B-PER", "B-PER"]) == {("PER", 0, 0), ("PER", 1, 1)}
    assert m.chunks(["I-PER", "I-PER"]) == {("PER", 0, 1)}
    # IOBES.
    assert m.chunks(["S-PER", "B-LOC", "E-LOC", "S-LOC"]) == {
        ("PER", 0, 0), ("LOC", 1, 2), ("LOC", 3, 3)}
    assert m.chunks([]) == set()


def test_conll_scores_micro_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-MISC", "I-MISC"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "B-MISC", "O"]]
    # gold 4 entities, predicted 4, right 2 (PER, ORG): P = R = F1 = 0.5.
    # Tags: 2 of 8 differ (B-LOC/B-ORG, I-MISC/O) -> accuracy 6 / 8.
    scores = m.conll_scores(gold, pred)
    assert scores == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5,
                                    "accuracy": 6 / 8})
    # Unequal P and R: one extra predicted entity -> P = 2/5, R = 2/4, F1 = 4/9.
    pred[0][2] = "B-LOC"
    scores = m.conll_scores(gold, pred)
    assert scores["f1"] == pytest.approx(2 * 0.4 * 0.5 / 0.9)
    assert m.conll_scores(gold, gold)["f1"] == 1.0
