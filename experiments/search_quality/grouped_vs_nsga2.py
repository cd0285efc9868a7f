"""Optuna's NSGA-II against `GroupedNSGAIISampler` (the product's "nsga2"), without BERT.

    python experiments/search_quality/grouped_vs_nsga2.py [--seeds 40] [--trials 12]   # ~3 min

Two problems, every sampler run with the same seeds:

1. **The hybrid space on a surrogate of mr** (`search_spaces/hybrid.yaml`, its seeds enqueued
   first, score up / latency down / size down, `--trials` trials). The surrogate stands in for
   distillation; its numbers are assumptions taken from measured rows, stated in `surrogate()`:
   teacher 82.5 test, a student that keeps 3 of 6 teacher layers loses 1 point (the table's
   kd-eo: 80.8 at 400 steps), fresh cnn / bilstm blocks count half a kept layer and cost a point
   each, int8 0.3 (dq8: -0.33), sparsity 0.5 two points, factorized embeddings four, the
   keep-all learning rate on a student that dropped layers 2.5; noise sd 0.8. Latency: 3 ms
   fixed, a full transformer layer 10.3 ms (0.55x at int8), narrower ones less. Printed: how
   often a *sampled* trial reaches the issue-6 target (>= 3x faster than the 64.8 ms teacher
   and >= 80.5), and the median of the best such trial's score.
2. **The toy problem** of `hybridsearch.search.toy` (known optimum, no seeds): the median
   hypervolume (reference point score 0, latency 7 ms, size 7 MB), so the new operator is also
   checked where diversity matters and labels are cheap.

Samplers: "optuna" = `optuna.samplers.NSGAIISampler` (the product's sampler before session 5,
population max(4, trials // 3)); "grouped" = `hybridsearch.search.sampler.GroupedNSGAIISampler`
with the product's population max(3, trials // 4). Results: RESULTS.md.
"""

from __future__ import annotations

import argparse
import math
import statistics
import warnings

import numpy as np

TEACHER_MS, TARGET_SPEEDUP, TARGET_SCORE = 64.8, 3.0, 80.5
LOST = {6: 0.0, 5: 0.3, 4: 0.6, 3: 1.0, 2: 3.5, 1: 8.0, 0: 25.0}  # points lost by kept layers (effective)


def surrogate(sample: dict, rng) -> tuple[float, float, float]:
    """(test score in points, latency ms, size MB) of a hybrid-space sample: see the module docstring."""
    layers = [{k.split(".", 1)[1]: v for k, v in sample.items() if k.startswith(f"layer_{i}.")} for i in range(6)]
    kept = [x for x in layers if x.get("block") == "transformer"]
    fresh = [x for x in layers if x.get("block") in ("cnn", "bilstm")]
    depth = len(kept) + 0.5 * len(fresh)
    lo, hi = math.floor(depth), math.ceil(depth)
    lost = LOST[lo] + (LOST[hi] - LOST[lo]) * (depth - lo) + 1.0 * len(fresh)
    if len(kept) < 6:
        lost += 2.5 * (sample.get("recipe.lr") == 5e-5) + 1.0 * (sample.get("recipe.losses") == "kd_ol")
    lost += sum(0.4 * (x.get("heads", 12) == 6) + 0.4 * (x.get("ffn", 1536) == 768) for x in kept)
    int8 = sample.get("arch.weight_bits", 32) == 8
    lost += 0.3 * int8 + 2.0 * (sample.get("arch.sparsity", 0.0) == 0.5) + 4.0 * (sample.get("emb.size") == 128)
    lost += 0.2 * (sample.get("recipe.temperature") == 1.0) + 0.2 * (sample.get("recipe.alpha") == 0.0)
    latency = 3.0
    for x in layers:
        block = x.get("block")
        if block == "transformer":
            width = 0.35 + 0.35 * x.get("heads", 12) / 12 + 0.3 * x.get("ffn", 1536) / 1536
            latency += 10.3 * width * (0.55 if int8 else 1.0)
        elif block == "cnn":
            latency += 4.0 * (0.5 + 0.5 * x.get("ffn", 1536) / 1536) * (0.6 if int8 else 1.0)
        elif block == "bilstm":
            latency += {96: 5.0, 192: 9.0}[x["lstm"]]
    size = 12.0 + 7.0 * len(kept) * (0.25 if int8 else 1.0)
    return 82.5 - lost + rng.normal(0.0, 0.8), latency, size


def make(name: str, seed: int, trials: int):
    from optuna.samplers import NSGAIISampler

    from hybridsearch.search.sampler import GroupedNSGAIISampler

    if name == "optuna":
        return NSGAIISampler(seed=seed, population_size=min(50, max(4, trials // 3)))
    return GroupedNSGAIISampler(seed=seed, population_size=min(50, max(3, trials // 4)))


def hybrid_run(name: str, seed: int, trials: int) -> tuple[int, float | None]:
    """(sampled trials meeting the target, best score of a sampled trial >= 3x or None)."""
    import optuna

    from hybridsearch.search.space import load_space

    space = load_space("hybrid")
    rng = np.random.default_rng(seed)
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"], sampler=make(name, seed, trials))
    for s in space.seeds:
        study.enqueue_trial(s["sample"], user_attrs={"seeded": True})
    hits, best = 0, None
    for _ in range(trials):
        trial = study.ask()
        sample = space.sample(trial)
        score, latency, size = surrogate(sample, rng)
        study.tell(trial, (score, latency, size))
        if not trial.user_attrs.get("seeded") and TEACHER_MS / latency >= TARGET_SPEEDUP:
            hits += score >= TARGET_SCORE
            best = score if best is None else max(best, score)
    return hits, best


def toy_run(name: str, seed: int, trials: int) -> float:
    import yaml
    from optuna._hypervolume import compute_hypervolume

    import hybridsearch.search.study as backend
    from hybridsearch.search.backends import run_backend
    from hybridsearch.search.space import parse_space
    from hybridsearch.search.study import SearchSettings
    from hybridsearch.search.toy import TOY_SPACE, ToyObjective, toy_latency, toy_score, toy_size_mb

    space = parse_space(yaml.safe_load(TOY_SPACE), "toy.yaml")
    original = backend.make_sampler
    backend.make_sampler = lambda s, *_: make(name, s.seed, trials)
    try:
        study = run_backend("optuna", space, ToyObjective(), None, SearchSettings(
            trials=trials, objective="multi", sampler="nsga2", seed=seed, isolation="inline"))
    finally:
        backend.make_sampler = original
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    points = np.array([[-toy_score(t.params), toy_latency(t.params), toy_size_mb(t.params)] for t in done])
    return float(compute_hypervolume(points, np.array([0.0, 7.0, 7.0])))


def main(argv=None) -> str:
    import optuna

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=40)
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--toy-trials", type=int, nargs="+", default=[24, 40])
    args = p.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    lines = []
    for name in ("optuna", "grouped"):
        runs = [hybrid_run(name, seed, args.trials) for seed in range(args.seeds)]
        found = sum(h > 0 for h, _ in runs)
        bests = [b for _, b in runs if b is not None]
        lines.append(f"hybrid surrogate, {args.trials} trials, {name}: target met in {found} of {args.seeds} runs; "
                     f"median best sampled >=3x score {statistics.median(bests) if bests else float('nan'):.1f} "
                     f"({len(bests)} runs had one)")
        print(lines[-1], flush=True)
    for trials in args.toy_trials:
        for name in ("optuna", "grouped"):
            hv = [toy_run(name, seed, trials) for seed in range(min(args.seeds, 10))]
            lines.append(f"toy, {trials} trials, {name}: median hypervolume {statistics.median(hv):.1f}  "
                         + " ".join(f"{v:.1f}" for v in hv))
            print(lines[-1], flush=True)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
