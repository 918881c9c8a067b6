"""A tiny AMBERT (2 layers, hidden 128, the "shared" variant) on the embedded corpus:
bert_tiny's budget (steps, batch, schedule, sequence length) with AMBERT's choices, so the
two compare at equal data.

AMBERT (Zhang & Li 2020) reads the text at two granularities: the fine WordPiece tokens
(the project's 8k vocab) and coarse tokens, phrases or words from the project's 8k phrase
vocabulary of this corpus (bert_jax/data/vocab/embedded_uncased_phrases_8k.txt, made by
`python -m bert_jax.data.make_vocab --kind phrases`; data/phrases.py has the method). Both
sequences go through one shared encoder with their own embeddings; pretraining is fine MLM +
coarse MLM, no sentence task, so rows are packed single segments (as RoBERTa's). Masking
picks 15% of the coarse tokens and masks all their WordPieces; the phrase and its pieces get
the same [MASK]/random/keep decision (replace_unit "word"). A step runs the encoder twice, so
it costs about twice bert_tiny's.
"""

from bert_jax.config import model_config_dict
from bert_jax.data.phrases import DEFAULT_PATH as PHRASES_PATH
from configs.pretrain import bert_tiny


def get_config():
    config = bert_tiny.get_config()
    config.model = model_config_dict("tiny", family="ambert", vocab_size=8192,
                                     coarse_vocab_size=8192, ambert_variant="shared",
                                     max_position_embeddings=64, hidden_dropout=0.0,
                                     attention_dropout=0.0)
    config.data.coarse_vocab_path = PHRASES_PATH
    config.data.sentence_task = "none"  # MLM only: packed rows, no sentence pairs
    config.data.packing = "full_sentences"
    config.masking.strategy = "coarse"  # 15% of coarse tokens, all their pieces
    config.masking.replace_unit = "word"  # one 80/10/10 draw per coarse token
    return config
