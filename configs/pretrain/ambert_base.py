"""AMBERT-base (Zhang & Li 2020): BERT-base's encoder (12 layers, hidden 768, 12 heads)
shared by a fine (WordPiece) and a coarse (phrase) sequence, each with its own embeddings;
pretrained with fine + coarse MLM, no next-sentence prediction.

What is the paper's: the architecture, the two granularities, 15% of coarse tokens masked
with all their fine tokens, MLM at both levels, English Wikipedia among its corpora. What is
a guess (the paper's numbers were not at hand when this file was written): the optimisation
recipe, which is BERT-base's (1M steps of 256 sequences of 128 tokens, Adam 1e-4, 10k
warm-up, dropout 0.1); the coarse vocabulary size (30,000, like the fine one); packed
single-segment rows. The coarse vocabulary must be made from the training corpus with
`python -m bert_jax.data.make_vocab --kind phrases --corpus wikipedia/20230601.en
--fine_vocab uncased_L-12_H-768_A-12/vocab.txt --vocab_size 30000 --max_phrases 10000
--out phrases_wikipedia_30k.txt`, and the fine one is Google's uncased vocab.txt.
"""

from configs.pretrain import bert_base
from bert_jax.config import model_config_dict


def get_config():
    config = bert_base.get_config()
    config.model = model_config_dict("base", family="ambert", vocab_size=30522,
                                     coarse_vocab_size=30000, ambert_variant="shared")
    config.data.coarse_vocab_path = "phrases_wikipedia_30k.txt"  # see the docstring
    config.data.sentence_task = "none"
    config.data.packing = "full_sentences"
    config.masking.strategy = "coarse"
    config.masking.replace_unit = "word"
    return config
