"""`evaluate(arch, recipe, context, hooks=None) -> EvalResult`: the one function every backend calls.

Steps: validate arch + recipe (an invalid pair is a failed `Metrics`, not an exception);
cost from the arch alone (bytes as exported, parameters, analytic FLOPs); build the
student from the teacher (`init_from_teacher`); distil for the recipe's budget on train
(+ transfer / augmented) rows against cached teacher logits; score dev (the best dev
checkpoint is kept); optionally score test once and compare with the teacher by McNemar;
time the deployed form (`students.deploy.for_deployment`) interleaved with the teacher
in the same run (`measure.latency`).

`EvalResult.metrics.score` is the dev score: what a search optimizes. `test_score` is filled only
when `context.run_test` (or the `test` argument) is true: test is touched once per
reported model, never for selection. Scores are fractions (accuracy 0.81), not percent.

Failures (divergence, out of memory, an error inside a block) are returned as
`Metrics.failure` (and `EvalResult.student` None); a prune signal raised by `hooks.report`
(ours or optuna's `TrialPruned`) propagates unchanged. Every latency measurement runs
inside `hooks.measuring()` (a node lock passed in by the caller; none by default).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hybridsearch.distill import NO_HOOKS, TrialHooks, TrialPruned
from hybridsearch.distill.recipe import DistillRecipe
from hybridsearch.errors import UserError


@dataclass
class Metrics:
    """What one evaluation measured. Scores are fractions; None = not measured."""

    score: float | None = None  # = dev_score (selection)
    metric: str = "accuracy"
    dev_score: float | None = None
    dev_se: float | None = None
    test_score: float | None = None
    test_se: float | None = None
    p_vs_teacher: float | None = None  # exact McNemar on test, student vs teacher
    latency_ms: float | None = None  # median, deployed form
    latency_p10_ms: float | None = None
    latency_p90_ms: float | None = None
    teacher_latency_ms: float | None = None  # same run, interleaved
    speedup: float | None = None  # teacher median / student median
    size_bytes: int | None = None
    params: int | None = None
    flops: int | None = None
    steps: int = 0
    train_s: float | None = None
    failure: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EvalContext:
    """Everything fixed across evaluations: task, teacher, cached teacher logits, device, protocol.

    teacher: a `hybridsearch.teacher.Teacher` (model, tokenizer, fingerprint, path).
    logits: {"train", "dev", "test"} -> np (N, C) teacher logits (`teacher_logits(...)`).
    shape / threads / repeats / warmup / dtype: the latency protocol (`measure.latency`).
    """

    task: Any
    teacher: Any
    logits: dict[str, np.ndarray]
    device: str = "cpu"
    shape: tuple[int, int] = (1, 64)
    threads: int | None = None
    repeats: int = 30
    warmup: int = 5
    dtype: str = "float32"  # compute dtype of latency (float16 / bfloat16 for GPUs)
    cache_dir: Any = None
    run_test: bool = True
    progress: bool = True
    measure_speed: bool = True
    store_teacher_states: bool = True  # KD-EO / emb losses read stored teacher states (no teacher forward per step)
    _memo: dict = field(default_factory=dict, repr=False)

    def encoded(self, split: str, max_length: int) -> dict:
        """Tokenized split (padded LongTensors), computed once per (split, max_length)."""
        from hybridsearch.distill.trainer import encode_rows

        key = ("enc", split, max_length)
        if key not in self._memo:
            texts, pairs = self.task.texts(split)
            self._memo[key] = encode_rows(self.teacher.tokenizer, texts, pairs, max_length)
        return self._memo[key]

    def train_rows(self, recipe: DistillRecipe):
        """(encoded inputs, labels, teacher logits) of train + transfer + augmented rows, memoised."""
        from hybridsearch.distill.trainer import encode_rows
        from hybridsearch.distill.transfer import build_distill_data

        key = ("train", recipe.transfer, recipe.transfer_limit if recipe.transfer else 0, recipe.augment,
               recipe.seed if recipe.augment else 0, recipe.max_length)
        if key not in self._memo:
            if not recipe.transfer and not recipe.augment:
                enc = self.encoded("train", recipe.max_length)
                self._memo[key] = (enc, self.task.labels("train"), self.logits["train"], {"train": len(enc["input_ids"])})
            else:
                data = build_distill_data(self.task, self.teacher, self.logits["train"], recipe, self.cache_dir,
                                          device=self.device)
                enc = encode_rows(self.teacher.tokenizer, data.texts, data.text_pairs, recipe.max_length)
                self._memo[key] = (enc, data.labels, data.logits, data.sources)
        return self._memo[key]

    def teacher_states(self, recipe: DistillRecipe):
        """Stored teacher hidden states of `train_rows(recipe)` (`distill.teacher_states`), or None
        when the recipe needs none, needs attention maps (KD-AM), or storing is switched off."""
        if not (self.store_teacher_states and recipe.needs_teacher_states() and not recipe.needs_attention()):
            return None
        from hybridsearch.distill.teacher_states import teacher_states

        enc = self.train_rows(recipe)[0]
        key = ("states", id(enc))
        if key not in self._memo:
            self._memo[key] = teacher_states(self.teacher.model, self.teacher.fingerprint, enc, self.cache_dir,
                                             device=self.device, verbose=self.progress)
        return self._memo[key]

    def teacher_preds(self, split: str) -> np.ndarray:
        return np.asarray(self.logits[split]).argmax(-1)


def _is_prune(exc: BaseException) -> bool:
    return isinstance(exc, TrialPruned) or type(exc).__name__ in ("TrialPruned", "Pruned")


def arch_cost(arch, seq_len: int = 64, batch: int = 1) -> dict:
    """{"size_bytes", "params", "flops"} from the arch alone (flops None if it cannot be counted)."""
    from hybridsearch.students import size as ssize

    out = {"size_bytes": int(ssize.size_bytes(arch)), "params": int(ssize.param_count(arch)), "flops": None}
    try:
        from hybridsearch.measure.flops import model_flops

        out["flops"] = int(model_flops(arch, seq_len, batch))
    except Exception as exc:  # noqa: BLE001 - FLOPs are informative, never a reason to fail a trial
        out["flops_error"] = f"{type(exc).__name__}: {exc}"
    return out


@dataclass
class EvalResult:
    """One evaluation: what it measured, and the trained student (None when it failed before or in training)."""

    metrics: Metrics
    student: Any = None


def evaluate(arch, recipe: DistillRecipe, context: EvalContext, hooks: TrialHooks | None = None,
             test: bool | None = None) -> EvalResult:
    """Distil and measure one student; see the module docstring and `distill.TrialHooks`."""
    from hybridsearch.students.blocks import block_info

    hooks = hooks or NO_HOOKS
    spec = context.task.spec
    m = Metrics(metric=spec.metric)
    t_cfg = context.teacher.model.config
    try:
        arch.validate(is_pair=spec.is_pair)
        recipe.validate(
            student_layers=len(arch.layers),
            teacher_layers=t_cfg.num_hidden_layers,
            has_attention=any(block_info(layer.block).attention for layer in arch.layers),
        )
        if arch.num_labels != spec.num_labels:
            raise UserError(f"arch has {arch.num_labels} labels, task {spec.name} has {spec.num_labels}")
    except UserError as exc:
        m.failure = f"invalid: {exc}"
        return EvalResult(m)
    batch, seq = context.shape
    student = None
    try:
        cost = arch_cost(arch, seq, batch)
        m.size_bytes, m.params, m.flops = cost["size_bytes"], cost["params"], cost["flops"]
        if "flops_error" in cost:
            m.extra["flops_error"] = cost["flops_error"]
        student = _train_and_score(arch, recipe, context, hooks, m, context.run_test if test is None else test)
        if m.failure is None and context.measure_speed:
            _time_against_teacher(m, student, context, hooks.measuring)
    except Exception as exc:
        if _is_prune(exc):
            raise
        if isinstance(exc, UserError):
            m.failure = f"invalid: {exc}"
        else:
            msg = " ".join(str(exc).split())[:300]
            kind = "out of memory" if "out of memory" in msg.lower() else type(exc).__name__
            m.failure = f"error ({kind}): {msg}"
    return EvalResult(m, None if m.failure else student)


def _train_and_score(arch, recipe, context: EvalContext, hooks: TrialHooks, m: Metrics, run_test: bool):
    """Distil, then fill the scores into `m`; returns the trained student."""
    import torch

    from hybridsearch.distill.trainer import distill
    from hybridsearch.students import init_from_teacher

    spec, teacher = context.task.spec, context.teacher
    from hybridsearch.students.compress import prepare

    torch.manual_seed(recipe.seed)
    enc, labels, logits, sources = context.train_rows(recipe)
    student = init_from_teacher(arch, teacher.model, batch=_importance_batch(context, recipe))
    prepare(student)  # magnitude masks at each layer's sparsity, fake quantization at its bits
    dev_enc = context.encoded("dev", recipe.max_length)
    dev_labels = context.task.labels("dev")
    res = distill(student, recipe, enc, labels, logits, dev_enc, dev_labels, spec.metric,
                  teacher_model=teacher.model if recipe.needs_teacher_states() else None,
                  report=hooks.report, device=context.device, progress=context.progress,
                  teacher_states=context.teacher_states(recipe), extend=hooks.extend)
    m.steps, m.train_s = res.steps_done, round(res.wall_s, 2)
    m.extra.update({"train_rows": sources, "best_step": res.best_step, "kept_initial": res.kept_initial,
                    "history": res.history, "extended_steps": res.extended_steps})
    if res.failure:
        m.failure = res.failure
        return student
    _score_into(m, student, context, recipe.max_length, run_test)
    return student


def _score_into(m: Metrics, student, context: EvalContext, max_length: int, run_test: bool) -> None:
    """Fill dev score (= `m.score`) and, when `run_test`, test score and McNemar p vs the teacher."""
    from hybridsearch.data.metrics import mcnemar, score
    from hybridsearch.distill.trainer import predict

    metric = context.task.spec.metric
    dev_pred = predict(student, context.encoded("dev", max_length), device=context.device).argmax(-1)
    m.dev_score, m.dev_se = score(metric, dev_pred, context.task.labels("dev"))
    m.score = m.dev_score
    if run_test:
        test_labels = context.task.labels("test")
        pred = predict(student, context.encoded("test", max_length), device=context.device).argmax(-1)
        m.test_score, m.test_se = score(metric, pred, test_labels)
        m.p_vs_teacher = mcnemar(pred == test_labels, context.teacher_preds("test") == test_labels)


def _importance_batch(context: EvalContext, recipe: DistillRecipe, n: int = 64) -> dict:
    """A fixed labelled train batch (first `n` rows) for Taylor importance of heads / FFN neurons."""
    import torch

    enc = context.encoded("train", recipe.max_length)
    rows = min(n, len(enc["input_ids"]))
    batch = {k: v[:rows] for k, v in enc.items()}
    batch["labels"] = torch.as_tensor(context.task.labels("train")[:rows])
    return batch


def time_against_teacher(student, context: EvalContext, repeats: int | None = None, measuring=None) -> tuple:
    """(student, teacher) `LatencyStats` of `student`'s deployed form timed interleaved with the teacher,
    by the context's protocol (`repeats` overrides its call count), inside `measuring()` when given."""
    from contextlib import nullcontext

    from hybridsearch.measure.latency import example_inputs, int8_kernels, measure_latency
    from hybridsearch.students.deploy import for_deployment

    deployed = for_deployment(student, int8=int8_kernels(context.device, context.dtype))
    teacher = context.teacher.model.eval()
    inputs = example_inputs(context.shape, teacher.config.vocab_size, "cpu")
    with (measuring or nullcontext)():
        stats = measure_latency({"teacher": teacher, "student": deployed}, shape=context.shape,
                                device=context.device, threads=context.threads, repeats=repeats or context.repeats,
                                warmup=context.warmup, inputs=inputs, dtype=context.dtype)
    return stats["student"], stats["teacher"]


def _time_against_teacher(m: Metrics, student, context: EvalContext, measuring=None) -> None:
    t0 = time.perf_counter()
    s, t = time_against_teacher(student, context, measuring=measuring)
    m.latency_ms, m.latency_p10_ms, m.latency_p90_ms = s.median_ms, s.p10_ms, s.p90_ms
    m.teacher_latency_ms = t.median_ms
    m.speedup = t.median_ms / s.median_ms if s.median_ms > 0 else None
    m.extra["latency_s"] = round(time.perf_counter() - t0, 2)


def teacher_metrics(context: EvalContext, test: bool = True, measuring=None) -> Metrics:
    """The teacher's own row: scores from its cached logits, its size as exported at fp32, its latency
    (inside `measuring()` when given)."""
    from contextlib import nullcontext

    from hybridsearch.data.metrics import score
    from hybridsearch.measure.latency import measure_latency
    from hybridsearch.students import arch_from_teacher_config

    spec = context.task.spec
    m = Metrics(metric=spec.metric)
    m.dev_score, m.dev_se = score(spec.metric, context.teacher_preds("dev"), context.task.labels("dev"))
    m.score = m.dev_score
    if test:
        m.test_score, m.test_se = score(spec.metric, context.teacher_preds("test"), context.task.labels("test"))
        m.p_vs_teacher = 1.0
    arch = arch_from_teacher_config(context.teacher.model.config)
    cost = arch_cost(arch, context.shape[1], context.shape[0])
    m.size_bytes, m.params, m.flops = cost["size_bytes"], cost["params"], cost["flops"]
    if context.measure_speed:
        with (measuring or nullcontext)():
            stats = measure_latency({"teacher": context.teacher.model.eval()}, shape=context.shape,
                                    device=context.device, threads=context.threads, repeats=context.repeats,
                                    warmup=context.warmup, dtype=context.dtype)["teacher"]
        m.latency_ms, m.latency_p10_ms, m.latency_p90_ms = stats.median_ms, stats.p10_ms, stats.p90_ms
        m.teacher_latency_ms, m.speedup = stats.median_ms, 1.0
    return m


def modules_reference_metrics(context: EvalContext, max_length: int = 64) -> Metrics:
    """The teacher's own weights in hybridsearch's student modules, untrained: its scores (the
    teacher's, up to float rounding), size and latency interleaved with the teacher. The speed-up of
    this row is what the student implementation alone gains over the teacher's Hugging Face modules
    (fewer kernel launches, no unused outputs); every compressed row's speed-up includes it."""
    from hybridsearch.students import arch_from_teacher_config
    from hybridsearch.students.init import init_from_teacher

    teacher = context.teacher
    m = Metrics(metric=context.task.spec.metric)
    arch = arch_from_teacher_config(teacher.model.config)
    cost = arch_cost(arch, context.shape[1], context.shape[0])
    m.size_bytes, m.params, m.flops = cost["size_bytes"], cost["params"], cost["flops"]
    student = init_from_teacher(arch, teacher.model).eval()
    _score_into(m, student, context, max_length, run_test=True)
    if context.measure_speed:
        _time_against_teacher(m, student, context)
    return m
