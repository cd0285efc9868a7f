"""The real objective: sample -> freeze -> `distill.evaluate` on a teacher and task.

`DistillObjective` holds only plain settings (`TaskSource`, `TeacherSource`, `LatencyProtocol`:
picklable, JSON-able), so a worker process rebuilds the task, teacher and cached teacher logits
once in `setup()` (`distill.context.build_context`). `precheck` times the untrained candidate's
deployed form interleaved with the teacher (`precheck_repeats` calls each: a second or two), so
its speed-up follows the trial's own protocol, and sizes it from the arch; with a latency table
it predicts instead (`latency_source: predicted`). `evaluate` distils and measures it against
the teacher and saves the trained student to `weights_dir/<sample key>/` so front members can be
exported without retraining. `state()` / `from_state()` are what run.json keeps.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from hybridsearch.distill.context import LatencyProtocol, TaskSource, TeacherSource
from hybridsearch.search.objective import Objective


def sample_key(sample: dict) -> str:
    return hashlib.sha256(json.dumps(sample, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _teacher_flops(config) -> int | None:
    """One teacher forward at (1, 64), analytic (None when the config cannot be counted)."""
    from hybridsearch.measure.flops import model_flops

    try:
        return int(model_flops(config, 64, 1))
    except Exception:  # noqa: BLE001 - no compute scaling then
        return None


class DistillObjective(Objective):
    """latency_table: None = time the untrained candidate in precheck; "auto" = the cached latency model of
    this device (calibrated now if missing); a path = that table (refused if built elsewhere)."""

    def __init__(self, space_path: str, task: TaskSource, teacher: TeacherSource,
                 latency: LatencyProtocol | None = None, *, cache_dir=None, steps: int | None = None,
                 weights_dir: str | None = None, precheck_repeats: int = 20, latency_table: str | None = None):
        self.space_path, self.task, self.teacher = space_path, task, teacher
        self.latency = latency or LatencyProtocol()
        self.cache_dir, self.steps, self.weights_dir = cache_dir, steps, weights_dir
        self.precheck_repeats, self.latency_table = precheck_repeats, latency_table
        self._ctx = self._space = self._base = self._table = None

    # -- what run.json keeps -------------------------------------------------------------------
    def state(self) -> dict:
        return {"space_path": self.space_path, "task": asdict(self.task), "teacher": asdict(self.teacher),
                "latency": asdict(self.latency), "cache_dir": self.cache_dir, "steps": self.steps,
                "weights_dir": self.weights_dir, "precheck_repeats": self.precheck_repeats,
                "latency_table": self.latency_table}

    @classmethod
    def from_state(cls, state: dict) -> DistillObjective:
        """From `state()`, or from the flat settings runs made before the settings dataclasses."""
        if "task" not in state or not isinstance(state["task"], dict):  # older run.json
            latency = LatencyProtocol(device=state.get("device", "cpu"), shape=tuple(state.get("shape", (1, 64))),
                                      threads=state.get("threads"), repeats=state.get("repeats", 30),
                                      dtype=state.get("dtype", "float32"))
            return cls(state["space_path"], TaskSource.from_dict(state.get("task_args") or {}),
                       TeacherSource(state["teacher_source"]), latency, cache_dir=state.get("cache_dir"),
                       steps=state.get("steps"), weights_dir=state.get("weights_dir"),
                       precheck_repeats=state.get("precheck_repeats", 20), latency_table=state.get("latency_table"))
        return cls(state["space_path"], TaskSource.from_dict(state["task"]), TeacherSource(**state["teacher"]),
                   LatencyProtocol.from_dict(state["latency"]), cache_dir=state.get("cache_dir"),
                   steps=state.get("steps"), weights_dir=state.get("weights_dir"),
                   precheck_repeats=state.get("precheck_repeats", 20), latency_table=state.get("latency_table"))

    def __getstate__(self):
        return self.state()

    def __setstate__(self, state):
        self.__dict__.update(DistillObjective.from_state(state).__dict__)

    # -- the objective contract ---------------------------------------------------------------
    def setup(self) -> None:
        from hybridsearch.baselines import kept_vocabulary
        from hybridsearch.distill.context import build_context
        from hybridsearch.search.freeze import FreezeBase
        from hybridsearch.search.space import load_space

        self._space = load_space(self.space_path)
        max_length = int(self._space._fixed("recipe", "max_length", 64))
        self._ctx = build_context(self.task, self.teacher, self.latency, cache_dir=self.cache_dir,
                                  max_length=max_length)
        task, teacher = self._ctx.task, self._ctx.teacher
        cfg, tok = teacher.model.config, teacher.tokenizer
        self._base = FreezeBase(
            vocab_size=cfg.vocab_size, num_labels=task.spec.num_labels, id2label=dict(task.spec.id2label),
            max_positions=cfg.max_position_embeddings, type_vocab=getattr(cfg, "type_vocab_size", 2),
            unk_id=tok.unk_token_id if tok.unk_token_id is not None else 0, pad_id=tok.pad_token_id or 0,
            task_tokens=kept_vocabulary(tok, list(task.splits["train"]["text"])),
            teacher_layers=cfg.num_hidden_layers, teacher_flops=_teacher_flops(cfg),
        )
        if self.latency_table:
            from hybridsearch.measure.latency_model import get_table

            path = None if self.latency_table == "auto" else self.latency_table
            p = self.latency
            self._table = get_table(teacher.model, self._space, tuple(p.shape), p.threads, p.device,
                                    self.cache_dir, table_path=path, dtype=p.dtype)[0]

    def freeze(self, sample: dict):
        return self._space.freeze(sample, self._base, steps=self.steps)

    def reference(self) -> dict:
        """The teacher's own metrics (dev / test score, latency, size) as a plain dict."""
        from hybridsearch.distill.evaluate import teacher_metrics
        from hybridsearch.search.objective import metrics_dict

        return metrics_dict(teacher_metrics(self._ctx))

    def precheck(self, sample: dict) -> dict:
        import torch

        from hybridsearch.distill.evaluate import time_against_teacher
        from hybridsearch.students import HybridStudent
        from hybridsearch.students.size import size_bytes

        arch, _ = self.freeze(sample)
        arch.validate(is_pair=self._ctx.task.spec.is_pair)
        if self._table is not None:  # predicted from the arch alone: no model is built
            return self._table.cost(arch)
        torch.manual_seed(0)
        s, t = time_against_teacher(HybridStudent(arch).eval(), self._ctx, repeats=self.precheck_repeats)
        student, ref = s.median_ms, t.median_ms
        return {"latency_ms": student, "speedup": ref / student if student > 0 else None,
                "size_mb": size_bytes(arch) / 1e6, "latency_source": "measured"}

    def evaluate(self, sample: dict, hooks):
        from hybridsearch.distill.evaluate import evaluate
        from hybridsearch.students.export import save_student

        arch, recipe = self.freeze(sample)
        res = evaluate(arch, recipe, self._ctx, hooks)
        m = res.metrics
        m.extra["arch"] = arch.to_dict()
        m.extra["recipe"] = recipe.to_dict()
        m.extra.pop("history", None)
        if res.student is not None and self.weights_dir:
            out = Path(self.weights_dir) / sample_key(sample)
            save_student(res.student, out, tokenizer=self._ctx.teacher.tokenizer)
            (out / "recipe.json").write_text(recipe.to_json())  # for `hybridsearch retrain`
            (out / "sample.json").write_text(json.dumps(sample, sort_keys=True, indent=1))
            m.extra["weights"] = str(out)
        return m
