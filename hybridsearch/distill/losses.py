"""Knowledge-distillation losses (KD-OL, KD-EO, KD-AM, embedding output) and their sum.

Conventions: B batch, T tokens, C classes, H hidden width, h heads. `mask` is the
attention mask (B, T) with 1 for real tokens; padded positions never count.

Attention-map choice (KD-AM): when student and teacher layers have the same head
count the maps are compared head by head; when the counts differ, both sides are
averaged over heads first and the head-averaged maps are compared. (A student keeps
a subset of heads, so there is no meaningful head-to-head pairing.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hybridsearch.distill.recipe import DistillRecipe, resolve_layer_map

IGNORE = -100  # label of a row without a hard label (transfer / augmented data)
_EPS = 1e-12


def soft_label_loss(student_logits, teacher_logits, labels=None, temperature: float = 1.0, alpha: float = 0.0):
    """KD-OL: (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T)) + alpha * CE(s, y).

    logits (B, C); labels (B,) with IGNORE for unlabelled rows. KL is averaged over the
    batch; CE over labelled rows only (0 when none).
    """
    t = float(temperature)
    log_p_s = F.log_softmax(student_logits / t, dim=-1)  # (B, C)
    log_p_t = F.log_softmax(teacher_logits / t, dim=-1)  # (B, C)
    kl = F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean") * t * t
    if alpha == 0 or labels is None:
        return (1 - alpha) * kl
    labelled = labels != IGNORE
    if not bool(labelled.any()):
        return (1 - alpha) * kl
    ce = F.cross_entropy(student_logits[labelled], labels[labelled])
    return (1 - alpha) * kl + alpha * ce


def hidden_mse(student_h, teacher_h, mask=None, proj: nn.Module | None = None):
    """KD-EO / embedding loss: mean squared error over real tokens and hidden units.

    student_h (B, T, Hs), teacher_h (B, T, Ht); `proj` maps Hs -> Ht when they differ.
    """
    if proj is not None:
        student_h = proj(student_h)  # (B, T, Ht)
    if student_h.shape != teacher_h.shape:
        raise ValueError(f"hidden shapes differ: {tuple(student_h.shape)} vs {tuple(teacher_h.shape)}")
    sq = (student_h - teacher_h.to(student_h.dtype)) ** 2  # (B, T, H)
    if mask is None:
        return sq.mean()
    m = mask.to(sq.dtype).unsqueeze(-1)  # (B, T, 1)
    return (sq * m).sum() / (m.sum() * sq.shape[-1]).clamp_min(1.0)


def attention_kl(student_att, teacher_att, mask=None):
    """KD-AM: KL(teacher row || student row) of attention maps, mean over real query rows.

    maps (B, h, T, T), rows sum to 1 over the key axis. Head counts may differ: then
    both are averaged over heads to (B, 1, T, T) first.
    """
    if student_att.shape[1] != teacher_att.shape[1]:
        student_att = student_att.mean(dim=1, keepdim=True)  # (B, 1, T, T)
        teacher_att = teacher_att.mean(dim=1, keepdim=True)  # (B, 1, T, T)
    teacher_att = teacher_att.to(student_att.dtype)
    kl = teacher_att * (torch.log(teacher_att.clamp_min(_EPS)) - torch.log(student_att.clamp_min(_EPS)))
    if mask is not None:
        keys = mask.to(kl.dtype)[:, None, None, :]  # (B, 1, 1, T)
        kl = kl * keys
    row = kl.sum(-1)  # (B, h, T)
    if mask is None:
        return row.mean()
    q = mask.to(row.dtype)[:, None, :].expand_as(row)  # (B, h, T)
    return (row * q).sum() / q.sum().clamp_min(1.0)


class DistillLoss(nn.Module):
    """The recipe's weighted loss sum; owns the learned width projections (not exported).

    `student_widths[0]` is the embedding-output width, `student_widths[s]` the width of
    student layer s; `teacher_width` the teacher's hidden size.
    """

    def __init__(self, recipe: DistillRecipe, student_widths: list[int], teacher_width: int, teacher_layers: int):
        super().__init__()
        self.recipe = recipe
        self.losses = list(recipe.losses)
        student_layers = len(student_widths) - 1
        self.pairs = (
            resolve_layer_map(recipe.layer_map, student_layers, teacher_layers) if recipe.needs_layer_map() else []
        )
        self.proj = nn.ModuleDict()
        wanted = [0] if "emb" in self.losses else []
        if "kd_eo" in self.losses:
            wanted += [s for s, _ in self.pairs]
        for s in wanted:
            if student_widths[s] != teacher_width and str(s) not in self.proj:
                self.proj[str(s)] = nn.Linear(student_widths[s], teacher_width)

    def forward(self, student_out, teacher_logits, labels=None, teacher_out=None, mask=None):
        """Returns (total loss, {loss name: value}). `teacher_out` needed for kd_eo / kd_am / emb."""
        r = self.recipe
        parts: dict[str, torch.Tensor] = {}
        if "kd_ol" in self.losses:
            parts["kd_ol"] = soft_label_loss(student_out.logits, teacher_logits, labels, r.temperature, r.alpha)
        if "emb" in self.losses:
            parts["emb"] = hidden_mse(
                student_out.hidden_states[0], teacher_out.hidden_states[0], mask, self.proj["0"] if "0" in self.proj else None
            )
        if "kd_eo" in self.losses:
            terms = [
                hidden_mse(student_out.hidden_states[s], teacher_out.hidden_states[t], mask,
                           self.proj[str(s)] if str(s) in self.proj else None)
                for s, t in self.pairs
            ]
            if terms:
                parts["kd_eo"] = torch.stack(terms).mean()
        if "kd_am" in self.losses:
            s_atts = student_out.attentions or ()
            terms = [
                attention_kl(s_atts[s - 1], teacher_out.attentions[t - 1], mask)
                for s, t in self.pairs
                if s - 1 < len(s_atts) and s_atts[s - 1] is not None
            ]
            if terms:
                parts["kd_am"] = torch.stack(terms).mean()
        if not parts:
            raise ValueError("no loss term could be computed for this student; check the recipe's losses")
        total = sum(r.loss_weight(k) * v for k, v in parts.items())
        return total, parts
