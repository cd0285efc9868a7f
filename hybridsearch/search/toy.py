"""A toy search problem with a known optimum (no BERT): tests every backend in seconds.

Space (`TOY_SPACE`): depth 1-3; per layer block transformer (heads 2/4) | cnn
(kernel 3/5) | skip; recipe temperature 1/2 — 310 points. Score is additive:
transformer heads=4 -> 1.0 (heads 2 0.7), cnn kernel 5 -> 0.5 (kernel 3 0.3),
skip 0, temperature 2 -> +0.5. Latency: transformer 1 + heads/4 ms, cnn 0.5 ms,
skip 0. The unique score optimum is `TOY_OPTIMUM` (score 3.5).
"""

from __future__ import annotations

import json
import os
import time

from hybridsearch.search.objective import Objective

TOY_SPACE = """
name: toy
depth: [1, 2, 3]
layer:
  block: [transformer, cnn, skip]
  heads: {choices: [2, 4], when: {block: transformer}}
  kernel: {choices: [3, 5], when: {block: cnn}}
recipe:
  temperature: [1.0, 2.0]
seeds:
  - name: one-cnn
    sample: {depth: 1, layer_0.block: cnn, layer_0.kernel: 3, recipe.temperature: 1.0}
"""
TOY_OPTIMUM = {"depth": 3, "recipe.temperature": 2.0,
               **{f"layer_{i}.{k}": v for i in range(3) for k, v in (("block", "transformer"), ("heads", 4))}}
TOY_BEST_SCORE = 3.5


def toy_layers(sample: dict) -> list[dict]:
    return [{k.split(".", 1)[1]: v for k, v in sample.items() if k.startswith(f"layer_{i}.")}
            for i in range(int(sample.get("depth", 1)))]


def toy_score(sample: dict) -> float:
    score = 0.5 if sample.get("recipe.temperature") == 2.0 else 0.0
    for layer in toy_layers(sample):
        if layer["block"] == "transformer":
            score += 1.0 if layer["heads"] == 4 else 0.7
        elif layer["block"] == "cnn":
            score += 0.5 if layer["kernel"] == 5 else 0.3
    return score


def toy_latency(sample: dict) -> float:
    lat = 0.1
    for layer in toy_layers(sample):
        lat += {"transformer": 1.0 + layer.get("heads", 0) / 4, "cnn": 0.5}.get(layer["block"], 0.0)
    return lat


def toy_size_mb(sample: dict) -> float:
    return 0.1 + sum({"transformer": 2.0, "cnn": 1.0}.get(x["block"], 0.0) for x in toy_layers(sample))


class ToyObjective(Objective):
    """Toy metrics; options for tests: `sleep` seconds per trial, `log` file (one line per finished
    evaluation), `crash` = "kill" | "raise" | "nan" when the sample's depth is 2, `steps` reports,
    `pidfile` (the evaluating process writes its pid there)."""

    def __init__(self, sleep: float = 0.0, log: str | None = None, crash: str | None = None, steps: int = 0,
                 pidfile: str | None = None):
        self.sleep, self.log, self.crash, self.steps, self.pidfile = sleep, log, crash, steps, pidfile

    def precheck(self, sample):
        return {"latency_ms": toy_latency(sample), "size_mb": toy_size_mb(sample)}

    def evaluate(self, sample, hooks):
        if self.pidfile:
            with open(self.pidfile, "w") as f:
                f.write(str(os.getpid()))
        if self.crash and sample.get("depth") == 2:
            if self.crash == "kill":
                os.kill(os.getpid(), 9)
            if self.crash == "raise":
                raise RuntimeError("toy crash")
        score = toy_score(sample)
        for step in range(1, self.steps + 1):
            hooks.report(step, score * step / self.steps)
        if self.sleep:
            time.sleep(self.sleep)
        if self.crash == "nan" and sample.get("depth") == 2:
            score = float("nan")
        if self.log:
            with open(self.log, "a") as f:
                f.write(json.dumps(sample, sort_keys=True) + "\n")
        return {"dev_score": score, "score": score, "metric": "toy", "latency_ms": toy_latency(sample),
                "size_mb": toy_size_mb(sample), "failure": None}


TOY_TEACHER = {"dev_score": 0.83, "score": 0.83, "metric": "toy", "latency_ms": 10.0, "speedup": 1.0,
               "size_mb": 7.0}
TOY_DRIFT = 1.3  # the toy machine runs trials 30% slower than when the teacher was timed


class ToyTeacherObjective(ToyObjective):
    """The toy problem with a teacher (`TOY_TEACHER`: dev 0.83, 10 ms), timed like the real objective:
    each latency comes with a same-run speed-up (teacher / candidate) on a machine slowed by `TOY_DRIFT`,
    so the drift-free latency is exactly `toy_latency(sample)` and the raw one `TOY_DRIFT` x that.
    dev = 0.78 + 0.015 x the toy score, best at the last of 100 steps, and evaluate asks for more
    steps like `distill` does (`hooks.extend`); the extra steps are in the metrics. `near=True`: every
    candidate scores dev 0.825, within reach of the teacher, so promotion ranks them by latency alone
    (whichever samples a backend picks)."""

    def __init__(self, *args, near: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.near = near

    def reference(self):
        return dict(TOY_TEACHER)

    def _timed(self, sample) -> dict:
        lat = toy_latency(sample)
        return {"latency_ms": lat * TOY_DRIFT, "speedup": TOY_TEACHER["latency_ms"] / lat}

    def precheck(self, sample):
        return {**super().precheck(sample), **self._timed(sample)}

    def evaluate(self, sample, hooks):
        metrics = super().evaluate(sample, hooks)
        dev = 0.825 if self.near else 0.78 + 0.015 * metrics["score"]
        extra = hooks.extend(100, dev, 100) if hooks.extend else 0
        return dict(metrics, **self._timed(sample), score=dev, dev_score=dev, steps=100 + extra)
