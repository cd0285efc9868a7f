"""A tiny synthetic sentiment task and a tiny random teacher, for distill / baselines tests."""

from __future__ import annotations

import numpy as np

from tests.conftest import write_tiny_vocab

POS, NEG = ["good", "great", "fun", "best", "love"], ["bad", "awful", "boring", "worst", "hate"]
FILL = ["the", "movie", "film", "story", "plot", "actor", "is", "was", "very", "and", "it", "this"]


def tiny_texts(n: int, seed: int):
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        y = int(rng.integers(0, 2))
        words = list(rng.choice(FILL, size=int(rng.integers(3, 7)))) + [str(rng.choice(POS if y else NEG))]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(y)
    return texts, labels


def tiny_task(n_train=64, n_dev=32, n_test=32, transfer: int = 0):
    from hybridsearch.data.task import TaskSpec, make_task

    splits = {}
    for i, (name, n) in enumerate((("train", n_train), ("dev", n_dev), ("test", n_test))):
        texts, labels = tiny_texts(n, seed=i)
        splits[name] = {"text": texts, "label": labels}
    extra = tiny_texts(transfer, seed=99)[0] if transfer else None
    spec = TaskSpec(name="tiny", is_pair=False, id2label={0: "neg", 1: "pos"})
    return make_task(spec, splits, transfer=(lambda cache: list(extra)) if extra else None)


def tiny_bert(tmp_path, layers=2, hidden=32, heads=4, ffn=64, seed=0):
    """(model, tokenizer) like conftest.make_tiny_bert, but with a tokenizer that really holds the
    tiny vocabulary (transformers 5 ignores `BertTokenizerFast(vocab_file=...)`, leaving 5 tokens)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    tmp_path.mkdir(parents=True, exist_ok=True)
    write_tiny_vocab(tmp_path / "vocab.txt")
    tok = BertTokenizer.from_pretrained(str(tmp_path))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=ffn, max_position_embeddings=64,
                        num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertForSequenceClassification(config).eval(), tok


def tiny_context(tmp_path, task=None, **kw):
    """EvalContext with a tiny random 2-layer BERT teacher and its logits on `task`."""
    from hybridsearch.distill.evaluate import EvalContext
    from hybridsearch.teacher import Teacher, predict_logits, teacher_fingerprint

    task = task or tiny_task()
    model, tok = tiny_bert(tmp_path / "teacher")
    teacher = Teacher(model=model, tokenizer=tok, fingerprint=teacher_fingerprint(model, tok), path="tiny")
    logits = {s: predict_logits(model, tok, task.texts(s)[0], None, 16) for s in ("train", "dev", "test")}
    opts = dict(shape=(1, 16), threads=1, repeats=3, warmup=1, cache_dir=tmp_path / "cache", progress=False)
    opts.update(kw)
    return EvalContext(task=task, teacher=teacher, logits=logits, **opts)
