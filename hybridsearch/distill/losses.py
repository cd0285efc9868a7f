"""Knowledge-distillation losses (KD-OL, KD-EO, KD-AM, embedding output), their registry and their sum.

    @register_loss("kd_eo", hidden=lambda pairs: list(pairs), layer_map=True)
    def kd_eo(b: LossBatch) -> Tensor | None: ...     # one term of the recipe's weighted sum

A loss declares what it reads (`LossInfo`): the (student, teacher) hidden-state pairs it
compares (`hidden`; width projections are made for the student side), whether it reads
attention maps (`attention`) and whether it pairs layers through `recipe.layer_map`.
`DistillRecipe` (validation, `needs_teacher_states`, ...), the search space's `losses` /
`weight_<name>` keys and the trainer read the registry; a new loss = one function here.

Conventions: B batch, T tokens, C classes, H hidden width, h heads. `mask` is the
attention mask (B, T) with 1 for real tokens; padded positions never count.

Attention-map choice (KD-AM): when student and teacher layers have the same head
count the maps are compared head by head; when the counts differ, both sides are
averaged over heads first and the head-averaged maps are compared. (A student keeps
a subset of heads, so there is no meaningful head-to-head pairing.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hybridsearch.distill.recipe import DistillRecipe, resolve_layer_map
from hybridsearch.errors import UserError

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


# ---- the registry ----------------------------------------------------------------------------------
@dataclass
class LossBatch:
    """What one loss term sees for one batch.

    student: StudentOutput (logits (B, C), hidden_states, attentions); teacher: the teacher's output
    (hidden_states, attentions) when a loss needs it, else None; teacher_logits (B, C); labels (B,)
    with IGNORE for unlabelled rows; mask (B, T); pairs: (student layer, teacher layer), 1-based;
    proj(s): the width projection of student hidden state s (None when widths match).
    """

    student: Any
    teacher_logits: torch.Tensor
    labels: torch.Tensor | None
    teacher: Any
    mask: torch.Tensor | None
    recipe: DistillRecipe
    pairs: list[tuple[int, int]]
    proj: Callable[[int], nn.Module | None]


@dataclass(frozen=True)
class LossInfo:
    """A registered loss: fn(batch: LossBatch) -> scalar tensor, or None when no term applies.

    hidden(pairs) -> [(student hidden-state index, teacher hidden-state index)] it compares (index 0 =
        embedding output); None: it reads no hidden states.
    attention: it reads student and teacher attention maps (the teacher runs every step; the student
        needs a block with `BlockInfo.attention`).
    layer_map: it pairs layers through `recipe.layer_map` (validated against both depths).
    """

    name: str
    fn: Callable[[LossBatch], torch.Tensor | None]
    hidden: Callable[[list], list[tuple[int, int]]] | None = None
    attention: bool = False
    layer_map: bool = False

    @property
    def needs_teacher(self) -> bool:
        """Whether it reads the teacher's hidden states or attention maps (more than its logits)."""
        return self.hidden is not None or self.attention


_LOSSES: dict[str, LossInfo] = {}  # registration order = summation order


def register_loss(name: str, *, hidden=None, attention: bool = False, layer_map: bool = False):
    """Function decorator registering a loss term under `name` (see `LossInfo`)."""

    def deco(fn):
        if name in _LOSSES and _LOSSES[name].fn is not fn:
            raise ValueError(f"loss {name!r} registered twice")
        _LOSSES[name] = LossInfo(name, fn, hidden, attention, layer_map)
        return fn

    return deco


def unregister_loss(name: str) -> None:
    """Remove a registered loss (for tests that register a toy loss)."""
    _LOSSES.pop(name, None)


def list_losses() -> list[str]:
    """Names of the registered losses, in registration order."""
    return list(_LOSSES)


def loss_info(name: str) -> LossInfo:
    """The registered loss; UserError for an unknown name."""
    if name not in _LOSSES:
        raise UserError(f"unknown loss {name!r}; choose from {list_losses()}")
    return _LOSSES[name]


@register_loss("kd_ol")
def kd_ol(b: LossBatch):
    """Soft labels (+ hard labels by alpha): `soft_label_loss`."""
    return soft_label_loss(b.student.logits, b.teacher_logits, b.labels, b.recipe.temperature, b.recipe.alpha)


@register_loss("emb", hidden=lambda pairs: [(0, 0)])
def emb(b: LossBatch):
    """Embedding-output MSE (hidden state 0 of both)."""
    return hidden_mse(b.student.hidden_states[0], b.teacher.hidden_states[0], b.mask, b.proj(0))


@register_loss("kd_eo", hidden=lambda pairs: list(pairs), layer_map=True)
def kd_eo(b: LossBatch):
    """Hidden-state MSE of the mapped layers, averaged over pairs."""
    terms = [hidden_mse(b.student.hidden_states[s], b.teacher.hidden_states[t], b.mask, b.proj(s))
             for s, t in b.pairs]
    return torch.stack(terms).mean() if terms else None


@register_loss("kd_am", attention=True, layer_map=True)
def kd_am(b: LossBatch):
    """Attention-map KL of the mapped layers whose student block returns maps, averaged over pairs."""
    s_atts = b.student.attentions or ()
    terms = [attention_kl(s_atts[s - 1], b.teacher.attentions[t - 1], b.mask)
             for s, t in b.pairs if s - 1 < len(s_atts) and s_atts[s - 1] is not None]
    return torch.stack(terms).mean() if terms else None


# ---- the recipe's sum ------------------------------------------------------------------------------
class DistillLoss(nn.Module):
    """The recipe's weighted loss sum; owns the learned width projections (not exported).

    `student_widths[0]` is the embedding-output width, `student_widths[s]` the width of
    student layer s; `teacher_width` the teacher's hidden size.
    """

    def __init__(self, recipe: DistillRecipe, student_widths: list[int], teacher_width: int, teacher_layers: int):
        super().__init__()
        self.recipe = recipe
        self.losses = list(recipe.losses)
        self.terms = [info for name, info in _LOSSES.items() if name in self.losses]  # registration order
        student_layers = len(student_widths) - 1
        self.pairs = (
            resolve_layer_map(recipe.layer_map, student_layers, teacher_layers) if recipe.needs_layer_map() else []
        )
        self.proj = nn.ModuleDict()
        for s, _ in self.hidden_pairs():
            if student_widths[s] != teacher_width and str(s) not in self.proj:
                self.proj[str(s)] = nn.Linear(student_widths[s], teacher_width)

    def hidden_pairs(self) -> list[tuple[int, int]]:
        """(student, teacher) hidden-state indices the losses compare, in order, without repeats."""
        out: list[tuple[int, int]] = []
        for info in self.terms:
            out += [p for p in (info.hidden(self.pairs) if info.hidden else []) if p not in out]
        return out

    def teacher_layers(self) -> list[int]:
        """Teacher hidden-state indices the losses read (what a stored-states run must load)."""
        return sorted({t for _, t in self.hidden_pairs()})

    def forward(self, student_out, teacher_logits, labels=None, teacher_out=None, mask=None):
        """Returns (total loss, {loss name: value}). `teacher_out` needed when a loss reads the teacher."""
        batch = LossBatch(student_out, teacher_logits, labels, teacher_out, mask, self.recipe, self.pairs,
                          lambda s: self.proj[str(s)] if str(s) in self.proj else None)
        parts: dict[str, torch.Tensor] = {}
        for info in self.terms:
            value = info.fn(batch)
            if value is not None:
                parts[info.name] = value
        if not parts:
            raise ValueError("no loss term could be computed for this student; check the recipe's losses")
        total = sum(self.recipe.loss_weight(k) * v for k, v in parts.items())
        return total, parts
