"""Shared fixtures: an isolated cache directory and tiny random BERT teachers.

Nothing here touches the network or the user's cache.
"""

from __future__ import annotations

import pytest

TINY_WORDS = (
    "the a an movie film story plot actor good great bad awful boring fun funny "
    "dull is was not very and but of to it this that i love hate best worst "
    "cat dog sat on mat yes no same different question answer"
).split()


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own cache dir and run root; the network hubs are off."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("HYBRIDSEARCH_CACHE", str(cache))
    monkeypatch.setenv("HYBRIDSEARCH_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    return cache


def write_tiny_vocab(path) -> str:
    """A WordPiece vocab with BERT's special tokens and a few words; returns the file path."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    path.write_text("\n".join(specials + TINY_WORDS) + "\n")
    return str(path)


def make_tiny_bert(tmp_path, *, num_labels=2, layers=2, hidden=32, heads=4, ffn=64, seed=0, save=True):
    """A tiny random `BertForSequenceClassification` and its tokenizer.

    Returns (model, tokenizer, directory); with save=True both are saved to
    `directory` in Hugging Face format so code under test can load them by path.
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    vocab = write_tiny_vocab(tmp_path / "vocab.txt")
    tokenizer = BertTokenizerFast(vocab=vocab, do_lower_case=True)  # transformers 5: `vocab=`, not `vocab_file=`
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        max_position_embeddings=64,
        num_labels=num_labels,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = BertForSequenceClassification(config).eval()
    directory = tmp_path / "tiny-bert"
    if save:
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
    return model, tokenizer, directory


@pytest.fixture
def tiny_bert(tmp_path):
    """(model, tokenizer, dir) of a saved tiny random BERT classifier with 2 labels."""
    return make_tiny_bert(tmp_path)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (2 CPUs, no dashboard, a custom resource `hs_target` to pin trials to) per test module;
    `run_backend("ray", ...)` reuses it. Yields the `ray` module."""
    import os

    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024 * 1024, log_to_driver=False,
             resources={"hs_target": 1})
    yield ray
    ray.shutdown()
