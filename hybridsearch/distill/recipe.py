"""`DistillRecipe`: how a student is distilled (the model itself is a `StudentArch`).

Plain dataclass with a JSON round trip. `validate()` checks the recipe alone;
`validate(student_layers=..., teacher_layers=..., has_attention=...)` also checks it
against a student and teacher (layer map inside both depths, KD-AM only with
attention layers). Every problem is a one-line `UserError`.

Losses (combinable, each scaled by `weights.get(name, 1.0)`; the registry in `distill.losses`,
`register_loss`, is the list, and what each reads decides `needs_teacher_states` and friends):
- ``kd_ol``: soft-label KL at temperature T (times T^2), mixed with hard-label CE:
  ``(1 - alpha) * T^2 * KL + alpha * CE`` (Hinton et al.; CE only on labelled rows);
- ``kd_eo``: hidden-state MSE between mapped student / teacher layers;
- ``kd_am``: attention-map KL between mapped transformer layers;
- ``emb``: embedding-output MSE.

Layer maps pair each student layer s (1-based, kept layers in order) with a teacher
layer t (1-based): ``"uniform"`` (s -> round(s * L_t / L_s)), ``"last_k"`` (the student's
layers onto the teacher's last L_s layers, PKD-Last), or an explicit list: one teacher
layer per student layer (``-1`` = not distilled) or ``[s, t]`` pairs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from hybridsearch.errors import UserError

LAYER_MAPS = ("uniform", "last_k")


@dataclass
class DistillRecipe:
    """Distillation settings. Defaults: KD-OL only, 1000 steps, AdamW lr 1e-4."""

    losses: list[str] = field(default_factory=lambda: ["kd_ol"])
    weights: dict[str, float] = field(default_factory=dict)
    temperature: float = 2.0
    alpha: float = 0.5
    layer_map: str | list = "uniform"
    steps: int = 1000
    lr: float = 1e-4
    batch_size: int = 32
    warmup: float = 0.1  # fraction of steps (< 1) or a step count (>= 1)
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    eval_every: int = 200
    transfer: bool = False  # add the task's unlabeled transfer set, teacher-labelled
    transfer_limit: int = 0  # use at most this many transfer sentences (a fixed subset); 0 = all
    augment: int = 0  # augmented copies of each training sentence (Tang et al. 2019)
    qat_from: float = 0.0  # late QAT: the first qat_from x steps train the float model, the rest with fake
    #                        quantization (0 = QAT throughout; 1 = quantize after training). Dev always scores
    #                        the quantized student, so "dev picks" and the initial score see the deployed form
    max_length: int = 64
    group_by_length: bool = True  # batches of similar-length rows (less padding; ~2x faster on mr)
    eval_at_start: bool = True  # score dev before step 1 too: "dev picks" may keep the initial weights
    keep_initial_se: float = 1.0  # ...and keeps them unless training beats their dev by > this many SEs
    seed: int = 0

    # -- JSON -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DistillRecipe:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"unknown recipe field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> DistillRecipe:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"recipe is not valid JSON ({exc}); pass a JSON object") from exc
        if not isinstance(data, dict):
            raise UserError("recipe JSON must be an object; pass {\"losses\": [...], ...}")
        return cls.from_dict(data)

    # -- checks ---------------------------------------------------------------
    def loss_weight(self, name: str) -> float:
        return float(self.weights.get(name, 1.0))

    def _infos(self) -> list:
        """Registry entries of the recipe's losses (unknown names are skipped; `validate` names them)."""
        from hybridsearch.distill.losses import list_losses, loss_info

        return [loss_info(name) for name in self.losses if name in list_losses()]

    def needs_teacher_states(self) -> bool:
        """True when a loss needs teacher hidden states or attention (a teacher forward per step)."""
        return any(info.needs_teacher for info in self._infos())

    def needs_attention(self) -> bool:
        """True when a loss reads attention maps (the teacher runs every step; stored states do not do)."""
        return any(info.attention for info in self._infos())

    def warmup_steps(self) -> int:
        return int(round(self.warmup * self.steps)) if self.warmup < 1 else int(self.warmup)

    def validate(
        self,
        *,
        student_layers: int | None = None,
        teacher_layers: int | None = None,
        has_attention: bool | None = None,
    ) -> DistillRecipe:
        """Raise `UserError` on a bad recipe; returns self. Optional arguments add cross-checks."""
        from hybridsearch.distill.losses import list_losses

        known = list_losses()
        if not self.losses:
            raise UserError(f"recipe has no losses; choose from {known}")
        for name in self.losses:
            if name not in known:
                raise UserError(f"unknown loss {name!r}; choose from {known}")
        for name in self.weights:
            if name not in known:
                raise UserError(f"weight given for unknown loss {name!r}; choose from {known}")
        if not isinstance(self.steps, int) or self.steps <= 0:
            raise UserError(f"recipe steps must be a positive integer, got {self.steps!r}; set steps >= 1")
        if self.temperature <= 0:
            raise UserError(f"temperature must be > 0, got {self.temperature}; use e.g. 2.0")
        if not 0.0 <= self.alpha <= 1.0:
            raise UserError(f"alpha (hard-label weight) must be in [0, 1], got {self.alpha}")
        if self.lr <= 0 or self.batch_size <= 0 or self.eval_every <= 0 or self.max_length <= 0:
            raise UserError("lr, batch_size, eval_every and max_length must be positive; fix the recipe")
        if self.warmup < 0 or self.augment < 0 or self.transfer_limit < 0 or self.keep_initial_se < 0:
            raise UserError("warmup, augment, transfer_limit and keep_initial_se must be >= 0; fix the recipe")
        if not 0.0 <= self.qat_from <= 1.0:
            raise UserError(f"qat_from (the float share of the steps before QAT) must be in [0, 1], "
                            f"got {self.qat_from}; use 0 for QAT throughout")
        if isinstance(self.layer_map, str) and self.layer_map not in LAYER_MAPS:
            raise UserError(f"unknown layer_map {self.layer_map!r}; use one of {list(LAYER_MAPS)} or a list")
        attn = [info.name for info in self._infos() if info.attention]
        if attn and has_attention is False:
            raise UserError(f"attention-map (KD-AM) loss {', '.join(attn)} needs a student with at least one "
                            f"attention (transformer) layer; drop it from the losses or add an attention layer")
        if student_layers is not None and teacher_layers is not None and self.needs_layer_map():
            resolve_layer_map(self.layer_map, student_layers, teacher_layers)
        return self

    def needs_layer_map(self) -> bool:
        """True when a loss pairs student and teacher layers through `layer_map`."""
        return any(info.layer_map for info in self._infos())


def resolve_layer_map(layer_map: str | list, student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """Pairs (student layer, teacher layer), both 1-based; `UserError` when a layer is out of range."""
    ls, lt = int(student_layers), int(teacher_layers)
    if ls <= 0:
        return []
    if layer_map == "uniform":
        return [(s, max(1, min(lt, round(s * lt / ls)))) for s in range(1, ls + 1)]
    if layer_map == "last_k":
        if ls > lt:
            raise UserError(f"layer_map last_k: student has {ls} layers, teacher only {lt}; use 'uniform'")
        return [(s, lt - ls + s) for s in range(1, ls + 1)]
    if not isinstance(layer_map, (list, tuple)):
        raise UserError(f"layer_map must be 'uniform', 'last_k' or a list, got {layer_map!r}")
    pairs: list[tuple[int, int]] = []
    if all(isinstance(x, int) for x in layer_map):
        if len(layer_map) != ls:
            raise UserError(f"layer_map list has {len(layer_map)} entries but the student has {ls} layers; "
                            "give one teacher layer per student layer (-1 to skip)")
        pairs = [(s, t) for s, t in enumerate(layer_map, start=1) if t != -1]
    else:
        for item in layer_map:
            if not (isinstance(item, (list, tuple)) and len(item) == 2):
                raise UserError(f"layer_map entry {item!r} is not [student_layer, teacher_layer]")
            pairs.append((int(item[0]), int(item[1])))
    for s, t in pairs:
        if not 1 <= t <= lt:
            raise UserError(f"layer_map points at teacher layer {t}, but the teacher has {lt} layers (1..{lt})")
        if not 1 <= s <= ls:
            raise UserError(f"layer_map names student layer {s}, but the student has {ls} layers (1..{ls})")
    return pairs
