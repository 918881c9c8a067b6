"""Fixtures of the task-data tests: the project's WordPiece vocab (committed, offline)."""
import pytest

from bert_jax.data.tokenizer import load_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return load_tokenizer()  # bert_jax/data/vocab/embedded_uncased_8k.txt, lowercased.
