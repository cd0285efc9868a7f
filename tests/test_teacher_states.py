"""Stored teacher hidden states: equal to a live forward on real tokens, cached on disk, used by the trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hybridsearch.distill.losses import DistillLoss
from hybridsearch.distill.recipe import DistillRecipe
from hybridsearch.distill.teacher_states import TeacherStates, rows_key, teacher_states
from hybridsearch.distill.trainer import _slice, distill
from tests.distill_helpers import tiny_bert
from tests.test_distill_trainer import _setup, _tiny_data


def test_stored_states_equal_a_live_forward_on_real_tokens(tmp_path):
    teacher, tok = tiny_bert(tmp_path / "t", layers=2, hidden=32, seed=0)
    enc = _tiny_data(tok, 40, 0)
    states = TeacherStates.compute(teacher, enc, batch_size=7)
    idx = torch.tensor([5, 0, 33, 12])
    batch = _slice(enc, idx, "cpu")  # trimmed to the longest of these rows
    T = batch["input_ids"].shape[1]
    with torch.no_grad():
        live = teacher.eval()(**batch, output_hidden_states=True).hidden_states
    out = states.outputs(idx, T)
    real = batch["attention_mask"].bool()  # (B, T)
    assert len(out.hidden_states) == len(live) == 3
    for got, want in zip(out.hidden_states, live):
        assert got.shape == want.shape
        torch.testing.assert_close(got[real], want[real], atol=2e-2, rtol=2e-3)  # float16 storage
        assert not got[~real].any()  # padding is zero
    only = states.outputs(idx, T, layers=[2]).hidden_states
    assert only[0] is None and only[1] is None and only[2] is not None


def test_loss_from_stored_states_matches_the_live_teacher(tmp_path):
    teacher, student, train, dev, t_train, y_train, y_dev = _setup(tmp_path)
    recipe = DistillRecipe(losses=["kd_ol", "kd_eo", "emb"], layer_map="uniform")
    states = TeacherStates.compute(teacher, train)
    idx = torch.arange(16)
    batch = _slice(train, idx, "cpu")
    student.eval()
    with torch.no_grad():
        s_out = student(**batch, output_hidden_states=True)
        t_out = teacher.eval()(**batch, output_hidden_states=True)
    widths = [h.shape[-1] for h in s_out.hidden_states]
    torch.manual_seed(0)
    loss_fn = DistillLoss(recipe, widths, 32, 2)
    logits = torch.as_tensor(t_train[:16])
    live, _ = loss_fn(s_out, logits, None, t_out, batch["attention_mask"])
    stored, parts = loss_fn(s_out, logits, None, states.outputs(idx, batch["input_ids"].shape[1]),
                            batch["attention_mask"])
    assert set(parts) == {"kd_ol", "kd_eo", "emb"}
    assert float(stored.detach()) == pytest.approx(float(live.detach()), rel=1e-3)


def test_trainer_runs_kd_eo_without_the_teacher_when_states_are_stored(tmp_path):
    teacher, student, train, dev, t_train, y_train, y_dev = _setup(tmp_path)
    states = TeacherStates.compute(teacher, train)
    recipe = DistillRecipe(losses=["kd_ol", "kd_eo"], steps=6, lr=1e-3, batch_size=16, eval_every=3,
                           eval_at_start=False)
    res = distill(student, recipe, train, y_train, t_train, dev, y_dev, "accuracy", teacher_model=None,
                  teacher_states=states, progress=False)
    assert res.failure is None and res.steps_done == 6
    with pytest.raises(ValueError, match="no teacher model"):  # attention maps are never stored
        am = DistillRecipe(losses=["kd_ol", "kd_am"], steps=2, batch_size=16, eval_at_start=False)
        distill(student, am, train, y_train, t_train, dev, y_dev, "accuracy", teacher_model=None,
                teacher_states=states, progress=False)


def test_states_are_cached_on_disk_by_teacher_and_rows(tmp_path):
    teacher, tok = tiny_bert(tmp_path / "t", layers=2, hidden=32, seed=0)
    enc = _tiny_data(tok, 24, 0)
    first = teacher_states(teacher, "fp-a", enc, tmp_path / "cache", verbose=False)
    folder = tmp_path / "cache" / "teacher-states" / rows_key("fp-a", enc)
    assert (folder / "index.pt").exists() and (folder / "layer2.pt").exists()
    stamp = (folder / "layer2.pt").stat().st_mtime_ns
    again = teacher_states(teacher, "fp-a", enc, tmp_path / "cache", verbose=False)
    assert (folder / "layer2.pt").stat().st_mtime_ns == stamp  # loaded, not recomputed
    assert torch.equal(first.layers[2], again.layers[2]) and torch.equal(first.offsets, again.offsets)
    other = _tiny_data(tok, 24, 1)
    assert rows_key("fp-a", other) != rows_key("fp-a", enc) != rows_key("fp-b", enc)
    (folder / "index.pt").write_bytes(b"corrupt")
    rebuilt = teacher_states(teacher, "fp-a", enc, tmp_path / "cache", verbose=False)
    assert torch.equal(rebuilt.layers[1], first.layers[1])
    assert np.isfinite(rebuilt.layers[0].float().numpy()).all()
