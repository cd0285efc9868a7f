"""The budgeted trainer on a tiny task with a tiny random teacher: it learns, fails cleanly, prunes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hybridsearch.distill import TrialPruned
from hybridsearch.distill.recipe import DistillRecipe
from hybridsearch.distill.trainer import _epoch_batches, distill, predict
from tests.conftest import TINY_WORDS
from tests.distill_helpers import tiny_bert


def _tiny_data(tokenizer, n=96, seed=0, max_length=12):
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(TINY_WORDS, size=rng.integers(3, 9))) for _ in range(n)]
    enc = tokenizer(texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    return {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}


def _setup(tmp_path):
    teacher, tok = tiny_bert(tmp_path / "t", layers=2, hidden=32, seed=0)
    student, _ = tiny_bert(tmp_path / "s", layers=1, hidden=16, heads=2, ffn=32, seed=1)
    for m in (teacher, student):
        m.set_attn_implementation("eager")
    train, dev = _tiny_data(tok, 96, 0), _tiny_data(tok, 32, 1)
    with torch.no_grad():
        t_train = teacher(**train).logits.numpy() * 4  # sharpen the random teacher's targets
        t_dev = teacher(**dev).logits.numpy() * 4
    return teacher, student, train, dev, t_train, t_train.argmax(-1), t_dev.argmax(-1)


def _kl(student, enc, t_logits):
    s = torch.log_softmax(torch.as_tensor(predict(student, enc)), -1)
    t = torch.log_softmax(torch.as_tensor(t_logits), -1)
    return float(torch.nn.functional.kl_div(s, t, log_target=True, reduction="batchmean"))


def test_trainer_lowers_the_distillation_loss(tmp_path):
    teacher, student, train, dev, t_train, y_train, y_dev = _setup(tmp_path)
    before = _kl(student, train, t_train)
    recipe = DistillRecipe(losses=["kd_ol"], alpha=0.0, temperature=1.0, steps=60, lr=3e-3, batch_size=16,
                           eval_every=20, warmup=0.1, eval_at_start=False)
    seen = []
    res = distill(student, recipe, train, np.full(96, -100), t_train, dev, y_dev, "accuracy",
                  report=lambda step, dev_score: seen.append((step, dev_score)), progress=False)
    assert res.failure is None and res.steps_done == 60
    assert [s for s, _ in seen] == [20, 40, 60]
    assert all(0.0 <= d <= 1.0 for _, d in seen) and res.best_dev == max(d for _, d in seen)
    after = _kl(student, train, t_train)
    assert after < 0.5 * before, (before, after)


def test_trainer_with_hidden_and_attention_losses(tmp_path):
    teacher, student, train, dev, t_train, y_train, y_dev = _setup(tmp_path)
    recipe = DistillRecipe(losses=["kd_ol", "kd_eo", "kd_am", "emb"], steps=6, lr=1e-3, batch_size=16,
                           eval_every=3, layer_map="uniform", eval_at_start=False)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    res = distill(student, recipe, train, y_train, t_train, dev, y_dev, "accuracy", teacher_model=teacher,
                  progress=False)
    assert res.failure is None and res.steps_done == 6
    changed = [k for k, v in student.state_dict().items() if not torch.equal(v, before[k])]
    assert any("attention" in k for k in changed)


def test_nan_run_fails_cleanly_with_its_reason(tmp_path):
    teacher, student, train, dev, t_train, y_train, y_dev = _setup(tmp_path)
    bad = t_train.copy()
    bad[:] = np.nan
    recipe = DistillRecipe(steps=5, batch_size=16, eval_every=2)
    res = distill(student, recipe, train, y_train, bad, dev, y_dev, "accuracy", progress=False)
    assert res.failure is not None and "non-finite loss at step 1" in res.failure
    assert res.steps_done == 0


def test_report_can_prune(tmp_path):
    teacher, student, train, dev, t_train, y_train, y_dev = _setup(tmp_path)

    def report(step, dev_score):
        raise TrialPruned(f"pruned at {step}")

    recipe = DistillRecipe(steps=10, batch_size=16, eval_every=2)
    with pytest.raises(TrialPruned, match="pruned at 2"):
        distill(student, recipe, train, y_train, t_train, dev, y_dev, "accuracy", report=report, progress=False)


def test_dev_picks_the_initial_weights_when_training_does_not_beat_them(tmp_path):
    teacher, student, train, dev, t_train, y_train, y_dev = _setup(tmp_path)
    start_preds = predict(student, dev).argmax(-1)  # dev labels the untrained student already gets right
    before = {k: v.clone() for k, v in student.state_dict().items()}
    recipe = DistillRecipe(steps=10, lr=1e-2, batch_size=16, eval_every=5)
    res = distill(student, recipe, train, y_train, t_train, dev, start_preds, "accuracy", progress=False)
    assert res.history[0]["step"] == 0 and res.history[0]["dev"] == 1.0
    assert res.best_step == 0 and res.steps_done == 10
    assert all(torch.equal(v, before[k]) for k, v in student.state_dict().items())


def test_initial_weights_stay_unless_training_beats_them_by_the_margin(tmp_path):
    """One-standard-error rule: a better trained checkpoint replaces the step-0 weights only when
    its dev score is more than `keep_initial_se` standard errors above theirs."""
    teacher, student, train, dev, t_train, y_train, y_dev = _setup(tmp_path)
    start = {k: v.clone() for k, v in student.state_dict().items()}
    labels = np.random.default_rng(0).integers(0, 2, size=len(y_train))
    runs = {}
    for margin in (0.0, 100.0):
        student.load_state_dict(start)
        recipe = DistillRecipe(steps=40, lr=1e-2, alpha=1.0, batch_size=16, eval_every=20, keep_initial_se=margin)
        # fitting random labels, scored on the same rows (the random tiny teacher labels everything one class)
        res = distill(student, recipe, train, labels, t_train, train, labels, "accuracy", progress=False)
        runs[margin] = (res, {k: v.clone() for k, v in student.state_dict().items()})
    plain, strict = runs[0.0][0], runs[100.0][0]
    assert plain.best_step > 0 and plain.best_dev > plain.history[0]["dev"]  # training did beat step 0
    assert not plain.kept_initial and [h["dev"] for h in plain.history] == [h["dev"] for h in strict.history]
    assert strict.kept_initial and strict.best_step == 0 and strict.best_dev == strict.history[0]["dev"]
    assert all(torch.equal(v, start[k]) for k, v in runs[100.0][1].items())
    assert not all(torch.equal(v, start[k]) for k, v in runs[0.0][1].items())
    with pytest.raises(Exception, match="keep_initial_se"):
        DistillRecipe(keep_initial_se=-1).validate()


def test_epoch_batches_are_disjoint_full_and_grouped_by_length():
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 40, size=200)
    mask = (torch.arange(40)[None, :] < torch.as_tensor(lengths)[:, None]).long()  # (200, 40)
    enc = {"input_ids": mask.clone(), "attention_mask": mask}
    recipe = DistillRecipe(batch_size=16)
    grouped = _epoch_batches(enc, 200, recipe, np.random.default_rng(1))
    plain = _epoch_batches(enc, 200, DistillRecipe(batch_size=16, group_by_length=False), np.random.default_rng(1))
    for batches in (grouped, plain):
        rows = torch.cat(batches)
        assert len(batches) == 200 // 16 and all(len(b) == 16 for b in batches)
        assert len(set(rows.tolist())) == len(rows)  # no row twice in an epoch

    def padded(batches):  # tokens after trimming each batch to its longest row
        return sum(int(lengths[b.numpy()].max()) * len(b) for b in batches)

    assert padded(grouped) < 0.75 * padded(plain)


@pytest.mark.parametrize("qat_from, extend, expected", [
    (0.5, 0, [False] * 4 + [True] * 4),
    (1.0, 4, [False] * 12),  # quantize after training: an extension trains the float model too
    (0.5, 4, [False] * 4 + [True] * 4 + [False] * 2 + [True] * 2),  # the extension keeps the float share
])
def test_late_qat_trains_float_first_and_scores_dev_quantized(tmp_path, monkeypatch, qat_from, extend, expected):
    """qat_from=0.5: the first half of the steps run with fake quantization off, the rest on; every
    dev score (step 0 included) is of the quantized student, which is what distill returns."""
    from hybridsearch.distill import trainer
    from hybridsearch.students import HybridStudent
    from hybridsearch.students.compress import prepare
    from tests.test_students_compress import small_arch

    torch.manual_seed(0)
    student = prepare(HybridStudent(small_arch(bits=8, act_bits=8, emb_bits=8)))
    train = {"input_ids": torch.randint(2, 40, (64, 9)), "attention_mask": torch.ones(64, 9, dtype=torch.long)}
    dev = {"input_ids": torch.randint(2, 40, (16, 9)), "attention_mask": torch.ones(16, 9, dtype=torch.long)}
    t_logits = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32) * 3
    query = student.layers["0"].mixer.query.parametrizations.weight[0]
    seen_train, seen_dev = [], []
    real_predict = trainer.predict

    def spy_predict(model, enc, **kw):
        seen_dev.append(query.enabled)
        return real_predict(model, enc, **kw)

    hook = student.layers["0"].mixer.query.register_forward_pre_hook(
        lambda m, a: seen_train.append(query.enabled) if m.training else None)
    monkeypatch.setattr(trainer, "predict", spy_predict)
    recipe = DistillRecipe(steps=8, lr=1e-3, batch_size=16, eval_every=2, qat_from=qat_from, seed=0)
    res = distill(student, recipe, train, t_logits.argmax(-1), t_logits, dev, np.zeros(16, int), "accuracy",
                  progress=False, extend=lambda *a: extend)
    hook.remove()
    assert res.failure is None and res.steps_done == 8 + extend
    # the training forwards, after the width probe before training (fake quantization on: its default)
    assert seen_train[-len(expected):] == expected
    assert seen_dev and all(seen_dev)  # step 0, 2, 4, 6, 8: always the quantized student
    assert query.enabled


def test_qat_from_outside_zero_one_is_a_user_error():
    from hybridsearch.errors import UserError

    with pytest.raises(UserError, match="qat_from"):
        DistillRecipe(qat_from=1.5).validate()


def test_extension_continues_from_the_best_weights_once(tmp_path):
    """extend is asked once, after the budget, with (step, best dev, best step); its answer adds steps."""
    teacher, student, train, dev, t_train, y_train, y_dev = _setup(tmp_path)
    asked = []

    def extend(step, best_dev, best_step):
        asked.append((step, best_dev, best_step))
        return 6

    recipe = DistillRecipe(steps=4, lr=1e-3, batch_size=16, eval_every=2, seed=0)
    res = distill(student, recipe, train, y_train, t_train, dev, y_dev, "accuracy", progress=False, extend=extend)
    assert res.failure is None and res.steps_done == 10 and res.extended_steps == 6
    assert len(asked) == 1 and asked[0][0] == 4 and asked[0][1] is not None
    assert [h["step"] for h in res.history] == [0, 2, 4, 6, 8, 10]


def test_no_extension_when_the_answer_is_zero(tmp_path):
    teacher, student, train, dev, t_train, y_train, y_dev = _setup(tmp_path)
    recipe = DistillRecipe(steps=4, lr=1e-3, batch_size=16, eval_every=2, seed=0)
    res = distill(student, recipe, train, y_train, t_train, dev, y_dev, "accuracy", progress=False,
                  extend=lambda *a: 0)
    assert res.steps_done == 4 and res.extended_steps == 0
