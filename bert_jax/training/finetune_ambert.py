"""AMBERT's coarse inputs for fine-tuning features: the phrase tokenizer (data/phrases.py)
laid over each feature row's fine tokens, in the layout pretraining uses
(data/instances.py): `coarse_start` [N, L] 1 at the first fine token of each coarse token,
`coarse_ids` [N, L] the coarse token's id there and the coarse [PAD] elsewhere.

Rows are `[CLS] a [SEP] (b [SEP])`, already truncated by the task's featurize. Every
special token is a coarse token of its own with the coarse vocabulary's id of the same role
([CLS] -> [CLS], ...), and phrases never cross a special token, so the two texts of a pair
are matched separately, as pretraining's segments are.
"""

from __future__ import annotations

import numpy as np

from bert_jax.data.phrases import PhraseVocab


def coarse_inputs_fn(coarse_vocab_path: str, tokenizer):
    """A function features -> {"coarse_start", "coarse_ids"} int32 [N, L]."""
    phrases = PhraseVocab(coarse_vocab_path, tokenizer)
    starts_word_V = np.array([not tokenizer.id_to_token(i).startswith("##")
                              for i in range(tokenizer.vocab_size)], bool)
    fine_special = np.array(tokenizer.special_ids)  # roles pad, unk, cls, sep, mask
    starts_word_V[fine_special] = True
    special_V = np.zeros(tokenizer.vocab_size, np.int32)  # fine special -> coarse, same role
    special_V[fine_special] = phrases.special_ids

    def add(features: dict) -> dict:
        ids_NxL, mask_NxL = features["input_ids"], features["attention_mask"] != 0
        tokens_T = ids_NxL[mask_NxL]
        special_T = np.isin(tokens_T, fine_special)
        # A "sentence" ends before and after every special token (rows start with [CLS]).
        boundary_T = special_T | np.concatenate([[True], special_T[:-1]])
        coarse_start_T, coarse_tok_T = phrases.tokenize(
            tokens_T, starts_word_V[tokens_T].astype(np.int32), np.flatnonzero(boundary_T))
        coarse_tok_T = np.where(special_T, special_V[tokens_T], coarse_tok_T)
        coarse_start_T = np.where(special_T, 1, coarse_start_T)
        coarse_start_NxL = np.zeros(ids_NxL.shape, np.int32)
        coarse_ids_NxL = np.full(ids_NxL.shape, phrases.pad_id, np.int32)
        coarse_start_NxL[mask_NxL] = coarse_start_T
        coarse_ids_NxL[mask_NxL] = np.where(coarse_start_T != 0, coarse_tok_T, phrases.pad_id)
        return {"coarse_start": coarse_start_NxL, "coarse_ids": coarse_ids_NxL}

    return add
