"""Corpora, tokenizers, pretraining instances and the input pipeline."""


class DataError(ValueError):
    """Input data that cannot be used (empty corpus, undecodable bytes, a split too small, a
    vocab without its special tokens, ...); the message says what, where and how to fix it."""
