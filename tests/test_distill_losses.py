"""Each KD loss against a hand computation on tiny tensors; layer maps; the recipe's checks."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from hybridsearch.distill.losses import IGNORE, DistillLoss, attention_kl, hidden_mse, soft_label_loss
from hybridsearch.distill.recipe import DistillRecipe, resolve_layer_map
from hybridsearch.errors import UserError


def _softmax(xs):
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    return [v / sum(e) for v in e]


def test_soft_label_loss_matches_hand_computation():
    s = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    labels = torch.tensor([0, IGNORE])
    T, alpha = 2.0, 0.25
    kl = 0.0
    for srow, trow in zip(s.tolist(), t.tolist()):
        ps, pt = _softmax([x / T for x in srow]), _softmax([x / T for x in trow])
        kl += sum(b * (math.log(b) - math.log(a)) for a, b in zip(ps, pt))
    kl = kl / 2 * T * T
    ce = -math.log(_softmax([1.0, 0.0])[0])  # only row 0 has a label
    expected = (1 - alpha) * kl + alpha * ce
    got = soft_label_loss(s, t, labels, temperature=T, alpha=alpha)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    # identical logits, no hard labels -> zero
    assert soft_label_loss(t, t, None, temperature=3.0).item() == pytest.approx(0.0, abs=1e-7)


def test_hidden_mse_masks_padding_and_projects():
    s = torch.tensor([[[1.0, 2.0], [9.0, 9.0]]])  # (1, 2, 2); token 2 is padding
    t = torch.tensor([[[0.0, 0.0], [0.0, 0.0]]])
    mask = torch.tensor([[1, 0]])
    assert hidden_mse(s, t, mask).item() == pytest.approx((1 + 4) / 2)
    proj = torch.nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        proj.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    t3 = torch.zeros(1, 2, 3)
    assert hidden_mse(s, t3, mask, proj).item() == pytest.approx((1 + 4 + 9) / 3)


def test_attention_kl_same_heads_and_head_averaged():
    # one batch, T = 2, second token is padding (its key and query rows do not count)
    t = torch.tensor([[[[0.5, 0.5], [0.5, 0.5]], [[1.0, 0.0], [1.0, 0.0]]]])  # (1, 2, 2, 2)
    s = torch.tensor([[[[0.25, 0.75], [0.5, 0.5]], [[0.5, 0.5], [1.0, 0.0]]]])
    mask = torch.tensor([[1, 1]])
    row_h0 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    row_h1 = 1.0 * math.log(1.0 / 0.5)
    expected = (row_h0 + 0 + row_h1 + 0) / 4
    assert attention_kl(s, t, mask).item() == pytest.approx(expected, rel=1e-5)
    # student with one head: compare with the teacher's head average
    s1 = torch.tensor([[[[0.5, 0.5], [0.5, 0.5]]]])  # (1, 1, 2, 2)
    t_avg = [[0.75, 0.25], [0.75, 0.25]]
    expected1 = sum(sum(p * math.log(p / 0.5) for p in row) for row in t_avg) / 2
    assert attention_kl(s1, t, mask).item() == pytest.approx(expected1, rel=1e-5)
    # padding query rows and keys are ignored
    mask_pad = torch.tensor([[1, 0]])
    only_first = (0.5 * math.log(0.5 / 0.25) + 1.0 * math.log(1.0 / 0.5)) / 2  # key 2 masked out of the sum
    assert attention_kl(s, t, mask_pad).item() == pytest.approx(only_first, rel=1e-5)


def test_distill_loss_sums_weighted_parts():
    recipe = DistillRecipe(losses=["kd_ol", "kd_eo", "emb"], weights={"kd_eo": 2.0}, temperature=1.0, alpha=0.0,
                           layer_map="last_k")
    loss = DistillLoss(recipe, student_widths=[2, 2], teacher_width=3, teacher_layers=2)
    assert loss.pairs == [(1, 2)] and set(loss.proj) == {"0", "1"}
    torch.manual_seed(0)
    s_out = SimpleNamespace(logits=torch.randn(2, 2), hidden_states=(torch.randn(2, 3, 2), torch.randn(2, 3, 2)))
    t_out = SimpleNamespace(hidden_states=tuple(torch.randn(2, 3, 3) for _ in range(3)))
    t_logits = torch.randn(2, 2)
    mask = torch.ones(2, 3, dtype=torch.long)
    total, parts = loss(s_out, t_logits, None, t_out, mask)
    assert set(parts) == {"kd_ol", "kd_eo", "emb"}
    assert parts["kd_eo"].item() == pytest.approx(
        hidden_mse(s_out.hidden_states[1], t_out.hidden_states[2], mask, loss.proj["1"]).item())
    assert total.item() == pytest.approx(parts["kd_ol"].item() + 2 * parts["kd_eo"].item() + parts["emb"].item(),
                                         rel=1e-6)
    total.backward()
    assert loss.proj["1"].weight.grad is not None


def test_layer_maps():
    assert resolve_layer_map("uniform", 2, 4) == [(1, 2), (2, 4)]
    assert resolve_layer_map("uniform", 3, 6) == [(1, 2), (2, 4), (3, 6)]
    assert resolve_layer_map("last_k", 2, 6) == [(1, 5), (2, 6)]
    assert resolve_layer_map([1, -1, 6], 3, 6) == [(1, 1), (3, 6)]
    assert resolve_layer_map([[2, 3]], 2, 6) == [(2, 3)]
    with pytest.raises(UserError, match="teacher layer 7"):
        resolve_layer_map([1, 7], 2, 6)
    with pytest.raises(UserError, match="one teacher layer per student layer"):
        resolve_layer_map([1, 2, 3], 2, 6)


def test_recipe_json_round_trip_and_checks():
    r = DistillRecipe(losses=["kd_ol", "kd_am"], layer_map=[1, 3], steps=7, transfer=True, augment=2)
    assert DistillRecipe.from_json(r.to_json()) == r
    with pytest.raises(UserError, match="unknown loss"):
        DistillRecipe(losses=["kd_xx"]).validate()
    with pytest.raises(UserError, match="positive integer"):
        DistillRecipe(steps=0).validate()
    with pytest.raises(UserError, match="teacher has 2 layers"):
        DistillRecipe(losses=["kd_eo"], layer_map=[1, 3]).validate(student_layers=2, teacher_layers=2)
    with pytest.raises(UserError, match="KD-AM"):
        DistillRecipe(losses=["kd_am"]).validate(has_attention=False)
    with pytest.raises(UserError, match="unknown recipe field"):
        DistillRecipe.from_dict({"bogus": 1})
    with pytest.raises(UserError, match="not valid JSON"):
        DistillRecipe.from_json("{")
    assert DistillRecipe(warmup=0.1, steps=50).warmup_steps() == 5
