"""The real objective: sample -> freeze -> `distill.evaluate` on a teacher and task.

`DistillObjective` holds only plain settings (picklable), so a worker process rebuilds
the task, teacher and cached teacher logits once in `setup()`. `precheck` times the
untrained candidate's deployed form interleaved with the teacher (`precheck_repeats` calls
each: a second or two), so its speed-up is the trial's own protocol, and sizes it from the arch;
`evaluate` distils and measures it against the teacher, and saves the trained student
to `weights_dir/<sample key>/` so front members can be exported without retraining.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

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
    def __init__(self, space_path: str, task_args: dict, teacher_source: str, cache_dir=None, device: str = "cpu",
                 shape=(1, 64), threads: int | None = None, repeats: int = 30, steps: int | None = None,
                 weights_dir: str | None = None, precheck_repeats: int = 20, latency_table: str | None = None,
                 dtype: str = "float32"):
        self.space_path, self.task_args, self.teacher_source = space_path, task_args, teacher_source
        self.cache_dir, self.device, self.shape, self.threads = cache_dir, device, tuple(shape), threads
        self.repeats, self.steps, self.weights_dir, self.precheck_repeats = repeats, steps, weights_dir, precheck_repeats
        # latency_table: None = time the untrained candidate in precheck; "auto" = the cached latency model
        # of this device (calibrated now if missing); a path = that table (refused if built elsewhere)
        self.latency_table = latency_table
        self.dtype = dtype  # latency compute dtype (float16 / bfloat16 for GPUs)
        self._ctx = self._space = self._base = self._table = None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_ctx", "_space", "_base", "_table")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.shape = tuple(self.shape)
        self.latency_table = state.get("latency_table")
        self.dtype = state.get("dtype", "float32")  # runs made before the dtype option
        self._ctx = self._space = self._base = self._table = None

    def setup(self) -> None:
        from hybridsearch.baselines import kept_vocabulary
        from hybridsearch.commands.data import task_from_args
        from hybridsearch.distill.evaluate import EvalContext
        from hybridsearch.search.freeze import FreezeBase
        from hybridsearch.search.space import load_space
        from hybridsearch.teacher import load_teacher, teacher_logits

        self._space = load_space(self.space_path)
        task = task_from_args(argparse.Namespace(cache_dir=self.cache_dir, **self.task_args))
        teacher = load_teacher(self.teacher_source)
        max_length = int(self._space._fixed("recipe", "max_length", 64))
        logits = teacher_logits(teacher, task, max_length=max_length, cache_dir=self.cache_dir, device=self.device)
        self._ctx = EvalContext(task=task, teacher=teacher, logits=logits, device=self.device, shape=self.shape,
                                threads=self.threads, repeats=self.repeats, dtype=self.dtype,
                                cache_dir=self.cache_dir, progress=False)
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
            self._table = get_table(teacher.model, self._space, self.shape, self.threads, self.device,
                                    self.cache_dir, table_path=path, dtype=self.dtype)[0]

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
                "size_mb": size_bytes(arch) / 1e6}

    def evaluate(self, sample: dict, report):
        from hybridsearch.distill.evaluate import evaluate
        from hybridsearch.students.export import save_student

        arch, recipe = self.freeze(sample)
        m = evaluate(arch, recipe, self._ctx, report=report, extend=getattr(report, "extend", None))
        m.extra["arch"] = arch.to_dict()
        m.extra["recipe"] = recipe.to_dict()
        m.extra.pop("history", None)
        if m.failure is None and self.weights_dir and self._ctx.last_student is not None:
            out = Path(self.weights_dir) / sample_key(sample)
            save_student(self._ctx.last_student, out, tokenizer=self._ctx.teacher.tokenizer)
            (out / "recipe.json").write_text(recipe.to_json())  # for `hybridsearch retrain`
            (out / "sample.json").write_text(json.dumps(sample, sort_keys=True, indent=1))
            m.extra["weights"] = str(out)
        self._ctx.last_student = None
        return m
