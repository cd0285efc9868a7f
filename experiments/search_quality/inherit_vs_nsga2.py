"""Does NSGA-II search a conditional space better when children inherit the labels crossover skips?

    python experiments/search_quality/inherit_vs_nsga2.py [--seeds 10] [--trials 24 40]

Optuna's NSGAIISampler crosses over only the labels every finished trial has (the intersection
search space); in a conditional space (depth, per-layer blocks and their options) it draws the
other labels at random, so a child of two three-layer parents gets random layers. The variant
here (`InheritingNSGAIISampler`) copies such a label from the child's closest parent instead,
re-drawing it with probability 1 / (parent's labels). Both samplers run the toy problem of
`hybridsearch.search.toy` (no BERT; score up, latency down, size down) with the same population
size as `hybridsearch search` (trials // 3, at least 4); printed: the hypervolume of each run
(reference point: score 0, latency 7 ms, size 7 MB) and the median per sampler. Recorded in
RESULTS.md: the variant is *worse* on the toy problem, so the product keeps Optuna's NSGA-II.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import NSGAIISampler

from hybridsearch.search.backends import run_backend
from hybridsearch.search.space import parse_space
from hybridsearch.search.study import SearchSettings
from hybridsearch.search.toy import TOY_SPACE, ToyObjective, toy_latency, toy_score, toy_size_mb

PARENT_ATTR = "hs:parent"


class InheritingNSGAIISampler(NSGAIISampler):
    """NSGA-II whose children inherit conditional labels from their closest parent (module docstring)."""

    def __init__(self, *, inherit_mutation_prob: float | None = None, seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if inherit_mutation_prob is not None and not 0.0 <= inherit_mutation_prob <= 1.0:
            raise ValueError(f"inherit_mutation_prob must be in [0, 1], got {inherit_mutation_prob}")
        self._inherit_p = inherit_mutation_prob
        self._inherit_rng = np.random.RandomState(seed)
        self._parent: dict[int, dict[str, Any]] = {}  # trial id -> the closest parent's params
        self._crossed: dict[int, set[str]] = {}  # trial id -> labels Optuna's crossover decided

    def sample_relative(self, study, trial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        child = super().sample_relative(study, trial, search_space)
        if not child:
            return child  # generation 0 (or no parents yet): everything is drawn at random
        parents = self.get_parent_population(study, self.get_trial_generation(study, trial))
        parent = max(parents, key=lambda p: _agreement(child, p.params))  # first of the best on ties
        self._parent[trial._trial_id] = dict(parent.params)
        self._crossed[trial._trial_id] = set(search_space)
        study._storage.set_trial_system_attr(trial._trial_id, PARENT_ATTR, parent.number)
        return child

    def sample_independent(self, study, trial, param_name: str, param_distribution: BaseDistribution) -> Any:
        parent = self._parent.get(trial._trial_id)
        if parent is not None and param_name not in self._crossed.get(trial._trial_id, ()):
            value = parent.get(param_name)
            p_mut = self._inherit_p if self._inherit_p is not None else 1.0 / max(1, len(parent))
            if _contains(param_distribution, value) and self._inherit_rng.rand() >= p_mut:
                return value
        return super().sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self._parent.pop(trial._trial_id, None)
        self._crossed.pop(trial._trial_id, None)
        super().after_trial(study, trial, state, values)


def _agreement(child: dict[str, Any], parent: dict[str, Any]) -> tuple[bool, int]:
    """(same depth, number of crossed-over labels with the same value): the closest parent is the max."""
    same_depth = child.get("depth", parent.get("depth")) == parent.get("depth")
    return same_depth, sum(1 for k, v in child.items() if parent.get(k) == v)


def _contains(distribution: BaseDistribution, value: Any) -> bool:
    if value is None:
        return False
    if isinstance(distribution, CategoricalDistribution):
        return value in distribution.choices
    try:
        return distribution._contains(distribution.to_internal_repr(value))
    except (TypeError, ValueError):
        return False


def toy_hypervolume(study) -> float:
    from optuna._hypervolume import compute_hypervolume

    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    points = np.array([[-toy_score(t.params), toy_latency(t.params), toy_size_mb(t.params)] for t in done])
    return float(compute_hypervolume(points, np.array([0.0, 7.0, 7.0])))


def run(trials: int, seed: int, inherit: bool) -> tuple[float, list[float]]:
    """(hypervolume, per child: the share of its per-layer labels equal to its recorded parent's)."""
    import yaml

    import hybridsearch.search.study as backend

    space = parse_space(yaml.safe_load(TOY_SPACE), "toy.yaml")
    pop = min(50, max(4, trials // 3))
    original = backend.make_sampler
    if inherit:
        backend.make_sampler = lambda s, *_: InheritingNSGAIISampler(seed=s.seed, population_size=pop)
    else:
        backend.make_sampler = lambda s, *_: NSGAIISampler(seed=s.seed, population_size=pop)
    try:
        study = run_backend("optuna", space, ToyObjective(), None, SearchSettings(
            trials=trials, objective="multi", sampler="nsga2", seed=seed, isolation="inline"))
    finally:
        backend.make_sampler = original
    kept = []
    for t in study.trials:
        if PARENT_ATTR in t.system_attrs:
            parent = study.trials[t.system_attrs[PARENT_ATTR]].params
            shared = [k for k in t.params if k.startswith("layer_") and k in parent]
            if shared:
                kept.append(sum(t.params[k] == parent[k] for k in shared) / len(shared))
    return toy_hypervolume(study), kept


def main() -> None:
    import optuna

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--trials", type=int, nargs="+", default=[24, 40])
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for trials in args.trials:
        runs = {inherit: [run(trials, seed, inherit) for seed in range(args.seeds)] for inherit in (False, True)}
        for inherit, results in runs.items():
            hv = [h for h, _ in results]
            kept = [k for _, ks in results for k in ks]
            name = "inheriting" if inherit else "optuna-nsga2"
            extra = f"  labels kept from the parent {statistics.mean(kept):.0%}" if kept else ""
            print(f"trials {trials} {name:12s} median hypervolume {statistics.median(hv):.2f}  runs "
                  + " ".join(f"{v:.1f}" for v in hv) + extra, flush=True)
        wins = sum(a[0] > b[0] for a, b in zip(runs[False], runs[True]))
        print(f"trials {trials}: Optuna NSGA-II ahead on {wins} of {args.seeds} seeds", flush=True)

if __name__ == "__main__":
    main()
