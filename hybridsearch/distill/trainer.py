"""Budgeted distillation of one student.

`distill(...)` trains for `recipe.steps` optimizer steps: AdamW (fused kernel; weight decay on
matrices only), linear warm-up then linear decay to 0, gradient clipping, a seeded
data order. The soft targets are the *cached* teacher logits; the teacher itself runs
(per batch, no grad) only when a loss needs its hidden states or attention maps, and
not even then when `teacher_states` (`distill.teacher_states`, the hidden states of
every training row computed once) is given and no loss needs attention maps.
Batches are drawn epoch by epoch in a seeded order; with `recipe.group_by_length`
each batch holds rows of similar length (HF Trainer's group_by_length idea), so a
batch is padded to its own longest row, not the task's: about half the tokens on mr.
Every `eval_every` steps and at the end it scores dev and calls `report(step, dev)`;
whatever `report` raises (a prune signal) propagates to the caller. With
`recipe.eval_at_start` dev is also scored before step 1 (recorded as step 0, not
reported): a student that starts at the teacher's function (quantized, pruned) keeps
its initial weights unless the best trained checkpoint beats their dev score by more
than `recipe.keep_initial_se` standard errors of it (the one-standard-error rule: a
600-row dev set cannot tell a 0.5-point gain from noise, and picking on noise moved
the 8-bit row's test score by 1.5 points between two numerically equivalent runs).
Otherwise the best-dev weights are restored at the end ("dev picks"). A NaN / inf loss stops the run
with `TrainResult.failure` set, never an exception.
With `recipe.qat_from` > 0 (late QAT) the first qat_from x steps train with the student's
fake quantization switched off (`students.quant.set_quantization`); every dev score is of
the quantized student, its deployed function.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from hybridsearch.distill.losses import DistillLoss, loss_info
from hybridsearch.distill.recipe import DistillRecipe
from hybridsearch.students.quant import set_quantization


@dataclass
class TrainResult:
    steps_done: int = 0
    best_dev: float | None = None
    best_step: int | None = None
    history: list[dict] = field(default_factory=list)  # {"step", "loss", "dev"}
    failure: str | None = None
    wall_s: float = 0.0
    kept_initial: bool = False  # a better trained checkpoint existed, within keep_initial_se of step 0
    extended_steps: int = 0  # steps added after the budget (`distill(extend=...)`)


def encode_rows(tokenizer, texts, text_pairs=None, max_length=64, batch_size=4096) -> dict:
    """Tokenize once into padded LongTensors (N, max_length) using the teacher's `encode`."""
    from hybridsearch.teacher import encode

    parts = []
    for start in range(0, len(texts), batch_size):
        pair = list(text_pairs[start:start + batch_size]) if text_pairs else None
        parts.append(encode(tokenizer, list(texts[start:start + batch_size]), pair, max_length=max_length))
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def _slice(enc: dict, idx, device) -> dict:
    """Rows `idx` of encoded inputs, trimmed to the longest real sequence in the batch."""
    batch = {k: v[idx] for k, v in enc.items()}  # (b, T)
    mask = batch.get("attention_mask")
    if mask is not None:
        length = int(mask.sum(1).max().item()) or 1
        batch = {k: v[:, :length] for k, v in batch.items()}  # (b, t)
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def predict(model, enc: dict, batch_size=128, device="cpu") -> np.ndarray:
    """Logits (N, C) of `model` on encoded inputs, in eval mode (training mode restored)."""
    was_training = model.training
    model.eval()
    n = next(iter(enc.values())).shape[0]
    out = []
    for start in range(0, n, batch_size):
        idx = torch.arange(start, min(n, start + batch_size))
        out.append(model(**_slice(enc, idx, device)).logits.float().cpu())
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def _epoch_batches(enc: dict, n: int, recipe: DistillRecipe, rng) -> list:
    """One epoch of row-index batches (LongTensor each) in a seeded order, to be consumed with `pop()`.

    Full batches only (a ragged last batch is dropped, as before); with `group_by_length`
    the rows of each batch have similar lengths (`length_grouped_batches`).
    """
    bs = min(recipe.batch_size, n)
    mask = enc.get("attention_mask")
    if recipe.group_by_length and mask is not None:
        from hybridsearch.teacher.finetune import length_grouped_batches

        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        batches = [b for b in length_grouped_batches(mask[:n].sum(1), bs, gen) if len(b) == bs]
    else:
        order = torch.as_tensor(rng.permutation(n))
        batches = [order[i:i + bs] for i in range(0, n - bs + 1, bs)]
    return batches[::-1]  # pop() from the end yields them in order


def _optimizer(params_student, params_loss, recipe: DistillRecipe):
    decay, no_decay = [], []
    for p in list(params_student) + list(params_loss):
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:  # one fused kernel for all tensors: ~6x faster than the per-tensor loop on CPU, same update rule
        return torch.optim.AdamW(groups, lr=recipe.lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # a device / dtype without the fused kernel
        return torch.optim.AdamW(groups, lr=recipe.lr)


def _schedule(optimizer, recipe: DistillRecipe, steps: int | None = None, peak: float = 1.0):
    """Linear warm-up to `peak` x recipe.lr, then linear decay to 0 at `steps` (default recipe.steps)."""
    total = recipe.steps if steps is None else steps
    warm = recipe.warmup_steps() if steps is None else int(round(recipe.warmup * total)) if recipe.warmup < 1 else 0

    def factor(step: int) -> float:
        if warm > 0 and step < warm:
            return peak * (step + 1) / warm
        return peak * max(0.0, (total - step) / max(1, total - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


RESTART_PEAK = 0.5  # an extension's warm restart peaks at half the recipe's learning rate


def _student_widths(student, probe: dict, want_att: bool) -> tuple[list[int], bool]:
    """Widths of the student's hidden states (embedding output first) and whether it yields attention maps."""
    with torch.no_grad():
        out = student(**probe, output_hidden_states=True, output_attentions=want_att)
    has_att = bool(out.attentions) and any(a is not None for a in out.attentions)
    return [h.shape[-1] for h in out.hidden_states], has_att


def _set_attention(model, impl: str) -> None:
    """Switch a transformers model's attention implementation ("eager" returns attention maps)."""
    setter = getattr(model, "set_attn_implementation", None)
    if setter is not None:
        try:
            setter(impl)
            return
        except Exception:  # noqa: BLE001 - older transformers
            pass
    if getattr(model, "config", None) is not None:
        model.config._attn_implementation = impl


def distill(
    student,
    recipe: DistillRecipe,
    train_enc: dict,
    train_labels,
    train_logits,
    dev_enc: dict,
    dev_labels,
    metric: str,
    teacher_model=None,
    report=None,
    device="cpu",
    progress: bool = True,
    teacher_states=None,
    extend=None,
) -> TrainResult:
    """Distil `student` in place for `recipe.steps` steps; see the module docstring.

    extend: asked once, after the budget, as `extend(step, best_dev, best_step) -> int`; a positive
    answer continues from the best-dev weights for that many more steps (a warm restart: the
    schedule again, peaking at RESTART_PEAK x lr, the same float share under late QAT), with the
    same evaluations and dev picks.
    """
    from tqdm.auto import tqdm

    from hybridsearch.data.metrics import score

    t0 = time.perf_counter()
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    student.to(device).train()
    labels_t = torch.as_tensor(np.asarray(train_labels), dtype=torch.long)
    logits_t = torch.as_tensor(np.asarray(train_logits), dtype=torch.float32)
    n = labels_t.shape[0]
    if n == 0:
        return TrainResult(failure="no training rows", wall_s=time.perf_counter() - t0)
    want_states, want_att = recipe.needs_teacher_states(), recipe.needs_attention()
    stored = teacher_states if want_states and not want_att else None  # no teacher forward per step
    if want_states and teacher_model is None and stored is None:
        raise ValueError("recipe needs teacher hidden states / attention but no teacher model was given")
    widths, has_att = _student_widths(student, _slice(train_enc, torch.arange(min(2, n)), device), want_att)
    if want_att and not has_att:
        names = ", ".join(n for n in recipe.losses if loss_info(n).attention)
        return TrainResult(failure=f"{names} needs attention maps but the student returned none",
                           wall_s=time.perf_counter() - t0)
    restore_attn = None
    if stored is not None:
        loss_fn = DistillLoss(recipe, widths, stored.hidden_size, stored.num_hidden_layers).to(device)
        stored_layers = loss_fn.teacher_layers()
    elif want_states:
        teacher_model.to(device).eval()
        if want_att:
            restore_attn = getattr(teacher_model.config, "_attn_implementation", None)
            _set_attention(teacher_model, "eager")
        t_cfg = teacher_model.config
        loss_fn = DistillLoss(recipe, widths, t_cfg.hidden_size, t_cfg.num_hidden_layers).to(device)
    else:
        loss_fn = DistillLoss(recipe, widths, widths[-1], max(1, len(widths) - 1)).to(device)
    optimizer = _optimizer(student.parameters(), loss_fn.parameters(), recipe)
    scheduler = _schedule(optimizer, recipe)
    result = TrainResult()
    best_state = None
    initial = None  # (dev, se, weights) at step 0, for the one-standard-error rule
    dev_labels = np.asarray(dev_labels)

    float_until = int(round(recipe.qat_from * recipe.steps))  # late QAT: training steps <= this one are float

    def evaluate_dev(step: int, loss_value: float | None, send: bool = True):
        nonlocal best_state, initial
        set_quantization(student, True)  # dev scores the deployed (quantized) function
        preds = predict(student, dev_enc, device=device).argmax(-1)
        set_quantization(student, step >= float_until)
        dev, se = (float(v) for v in score(metric, preds, dev_labels))
        result.history.append({"step": step, "loss": loss_value, "dev": dev})
        if result.best_dev is None or dev > result.best_dev:
            result.best_dev, result.best_step = dev, step
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in student.state_dict().items()})
            if step == 0 and not result.steps_done:
                initial = (dev, se, best_state)
        if report is not None and send:
            report(step, dev)  # may raise a prune signal: let it through

    batches = _epoch_batches(train_enc, n, recipe, rng)
    if recipe.eval_at_start:
        evaluate_dev(0, None, send=False)
    set_quantization(student, float_until == 0)
    bar = tqdm(total=recipe.steps, desc="distill", disable=not progress, leave=False, unit="step")
    running = None
    total, step, asked = recipe.steps, 0, extend is None
    try:
        while step < total:
            step += 1
            if step == float_until + 1:
                set_quantization(student, True)  # late QAT: the rest of the steps train the quantized function
            if not batches:
                batches = _epoch_batches(train_enc, n, recipe, rng)
            idx = batches.pop()
            batch = _slice(train_enc, idx, device)
            mask = batch.get("attention_mask")
            out = student(**batch, output_hidden_states=want_states, output_attentions=want_att)
            t_out = None
            if stored is not None:
                t_out = stored.outputs(idx, batch["input_ids"].shape[1], device, layers=stored_layers)
            elif want_states:
                with torch.no_grad():
                    t_out = teacher_model(**batch, output_hidden_states=True, output_attentions=want_att)
            loss, parts = loss_fn(out, logits_t[idx].to(device), labels_t[idx].to(device), t_out, mask)
            if not torch.isfinite(loss):
                detail = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in parts.items())
                result.failure = f"diverged: non-finite loss at step {step} ({detail}); lower lr or check the inputs"
                result.steps_done = step - 1
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], recipe.max_grad_norm)
            optimizer.step()
            scheduler.step()
            after = getattr(student, "after_optimizer_step", None)  # e.g. re-apply sparsity masks
            if callable(after):
                after()
            result.steps_done = step
            value = float(loss.detach())
            running = value if running is None else 0.9 * running + 0.1 * value
            bar.update(1)
            bar.set_postfix(loss=f"{running:.4f}")
            if step % recipe.eval_every == 0 or step == total:
                evaluate_dev(step, value)
            if step == total and not asked:
                asked = True
                more = int(extend(step, result.best_dev, result.best_step) or 0)
                if more > 0:  # a warm restart from the best-dev weights
                    student.load_state_dict(best_state)
                    scheduler = _schedule(optimizer, recipe, steps=more, peak=RESTART_PEAK)
                    float_until = step + int(round(recipe.qat_from * more))  # the same float share
                    set_quantization(student, float_until == step)
                    total += more
                    result.extended_steps = more
                    bar.total = total
                    bar.refresh()
    finally:
        bar.close()
        set_quantization(student, True)
        if restore_attn is not None and restore_attn != "eager":
            _set_attention(teacher_model, restore_attn)  # the teacher is timed later in its usual form
    if result.failure is None and best_state is None:
        evaluate_dev(result.steps_done, None)
    if (result.failure is None and initial is not None and result.best_step
            and result.best_dev - initial[0] <= recipe.keep_initial_se * initial[1]):
        result.kept_initial = True  # training did not beat the initial weights by more than the margin
        result.best_dev, result.best_step, best_state = initial[0], 0, initial[2]
    if best_state is not None:
        student.load_state_dict(best_state)
    if result.failure is None and result.best_dev is not None and not math.isfinite(result.best_dev):
        result.failure = "dev score is not finite"
    result.wall_s = time.perf_counter() - t0
    student.eval()
    return result

