"""`evaluate` end to end on a tiny teacher and task; transfer data and augmentation."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hybridsearch.distill.recipe import DistillRecipe
from tests.distill_helpers import tiny_context, tiny_task


def _half_arch(context):
    from hybridsearch.students import arch_from_teacher_config

    arch = arch_from_teacher_config(context.teacher.model.config, context.teacher.tokenizer)
    arch.layers = arch.layers[:1]
    return arch


def test_evaluate_fills_metrics(tmp_path):
    from hybridsearch.distill import TrialHooks
    from hybridsearch.distill.evaluate import evaluate

    ctx = tiny_context(tmp_path)
    seen = []
    recipe = DistillRecipe(losses=["kd_ol", "kd_eo", "kd_am"], steps=4, batch_size=16, eval_every=2,
                           max_length=16, lr=1e-3)
    res = evaluate(_half_arch(ctx), recipe, ctx, TrialHooks(report=lambda s, d: seen.append(s)))
    m = res.metrics
    assert m.failure is None, m.failure
    assert res.student is not None
    assert seen == [2, 4]
    assert m.score == m.dev_score and 0 <= m.dev_score <= 1 and m.dev_se > 0
    assert 0 <= m.test_score <= 1 and m.test_se > 0 and 0 <= m.p_vs_teacher <= 1
    assert m.latency_ms > 0 and m.teacher_latency_ms > 0
    assert m.speedup == pytest.approx(m.teacher_latency_ms / m.latency_ms)
    assert m.size_bytes > 0 and m.params > 0 and m.steps == 4


def test_evaluate_skips_test_and_reports_invalid_and_nan(tmp_path):
    from hybridsearch.distill.evaluate import evaluate

    ctx = tiny_context(tmp_path, run_test=False, measure_speed=False)
    arch = _half_arch(ctx)
    m = evaluate(arch, DistillRecipe(steps=2, batch_size=16, max_length=16), ctx).metrics
    assert m.failure is None and m.test_score is None and m.p_vs_teacher is None and m.latency_ms is None
    bad_res = evaluate(arch, DistillRecipe(losses=["kd_eo"], layer_map=[5], steps=2), ctx)
    bad = bad_res.metrics
    assert bad_res.student is None
    assert bad.failure.startswith("invalid:") and "teacher layer 5" in bad.failure
    ctx.logits = dict(ctx.logits, train=np.full_like(ctx.logits["train"], np.nan))
    ctx._memo.clear()  # train rows are memoised with their logits
    nan = evaluate(arch, DistillRecipe(steps=2, batch_size=16, max_length=16), ctx).metrics
    assert "non-finite loss" in nan.failure


def test_transfer_and_augmentation_rows(tmp_path):
    from hybridsearch.distill.transfer import Augmenter, augment_texts, build_distill_data

    task = tiny_task(transfer=20)
    ctx = tiny_context(tmp_path, task=task)
    recipe = DistillRecipe(transfer=True, augment=2, max_length=16, seed=3)
    data = build_distill_data(task, ctx.teacher, ctx.logits["train"], recipe, ctx.cache_dir)
    assert data.sources["train"] == 64 and data.sources["transfer"] == 20 and data.sources["augmented"] > 0
    assert len(data) == len(data.labels) == len(data.logits)
    assert (data.labels[64:] == -100).all() and (data.labels[:64] >= 0).all()
    again = build_distill_data(task, ctx.teacher, ctx.logits["train"], recipe, ctx.cache_dir)
    assert again.texts == data.texts and np.array_equal(again.logits, data.logits)  # seeded, cached
    capped = build_distill_data(task, ctx.teacher, ctx.logits["train"], replace(recipe, transfer_limit=5, augment=0),
                                ctx.cache_dir)
    assert capped.sources == {"train": 64, "transfer": 5} and set(capped.texts[64:]) <= set(data.texts[64:84])

    emb = ctx.teacher.model.get_input_embeddings().weight.detach().numpy()
    aug = Augmenter(ctx.teacher.tokenizer, emb, p_mask=0.5, p_neighbour=0.5, p_ngram=0.0)
    assert "good" not in aug.neighbours("good") and len(aug.neighbours("good")) == 5
    assert aug.neighbours("zzzz") == []
    out = aug.augment("the movie was good", random.Random(0))
    assert len(out.split()) == 4 and out != "the movie was good"
    aug.p_mask, aug.p_neighbour, aug.p_ngram = 0.0, 0.0, 1.0
    texts, pairs, src = augment_texts(aug, ["the movie was very good"], 5, seed=1)
    assert pairs is None and src == [0] * len(texts) and len(texts) >= 1
    assert all(t in "the movie was very good" and t != "the movie was very good" for t in texts)  # n-grams


def test_teacher_labels_are_cached_in_the_default_cache_too(tmp_path, monkeypatch):
    """cache_dir=None means $HYBRIDSEARCH_CACHE (the conftest's temporary cache), not "no cache":
    search trials run in fresh worker processes and must not relabel the transfer set each time."""
    import os

    from hybridsearch.distill import transfer

    ctx = tiny_context(tmp_path)
    first = transfer.teacher_label(ctx.teacher, ["a good film", "a bad film"], max_length=16, cache_dir=None)
    cached = list((Path(os.environ["HYBRIDSEARCH_CACHE"]) / "transfer-logits").glob("*.npy"))
    assert len(cached) == 1
    monkeypatch.setattr(ctx.teacher, "model", None)  # a second call must not touch the teacher
    again = transfer.teacher_label(ctx.teacher, ["a good film", "a bad film"], max_length=16, cache_dir=None)
    assert np.array_equal(first, again)
