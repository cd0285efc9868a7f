"""`GroupedNSGAIISampler`: Optuna's NSGA-II with seeds in its first generation and crossover by label group.

Two changes to `optuna.samplers.NSGAIISampler` (Optuna 5.0), both for few-trial searches over
a conditional space:

- **Seeds are parents.** Optuna assigns a trial its generation when it samples it; an enqueued
  trial whose every label is fixed is never sampled, so it belongs to no generation and is never
  selected as a parent: the seeds of a space did not inform the search at all. Here an enqueued
  trial joins generation 0 (`before_trial`), and the rest of generation 0 is random as before.
- **Crossover by group.** Optuna crosses over only the labels every finished trial has (its
  intersection search space), label by label, and draws every other label at random, so a
  child of two good students gets random layers. Here a child takes each label group whole from
  one of its two parents (binary tournament by constrained dominance, as Optuna's): the student's
  structure (`depth`, every `layer_<i>.` label, conditional ones included, and the `recipe.`)
  from one, `arch.` and `emb.` each from either. Two seeds that are two compression methods
  (say 8-bit weights, and half the layers) thus have a child that is both with probability
  1/4. Then each label is changed to another of its choices with probability `mutation_prob`
  (default 1 / the child's label count; a numeric label is re-drawn at random); a label the
  child does not get from its parent (a block changed by mutation needs its own options) is
  drawn at random. A child that would copy a trial already in the study gets one label changed
  to another choice (its score is known: re-training it wastes a trial).

Everything else is Optuna's: elite selection (non-dominated rank, crowding distance),
constraints, population size, generations, storage. Generations are stored under Optuna's own
key, so a study started with `NSGAIISampler` resumes with this one.
"""

from __future__ import annotations

from typing import Any

from optuna.samplers import NSGAIISampler
from optuna.trial import FrozenTrial

GENERATION_KEY = "NSGAIISampler:generation"


def label_group(label: str) -> str:
    """'depth', 'layer_3.heads', 'recipe.lr' -> 'layers'; 'arch.act_bits' -> 'arch'; else its prefix.

    The recipe travels with the layers: how a student is distilled suits its structure (a student
    that keeps every teacher layer wants a small learning rate, one with half of them a larger
    one and the hidden-state loss)."""
    head = label.split(".", 1)[0]
    return "layers" if head in ("depth", "recipe") or head.startswith("layer_") else head


def _slot(label: str) -> str | None:
    """'layer_3.heads' -> 'layer_3'; labels outside a layer slot -> None."""
    head = label.split(".", 1)[0]
    return head if head.startswith("layer_") else None


def _mutate_one(plan: dict[str, Any], parents: list[FrozenTrial], rng, label: str | None = None) -> dict[str, Any]:
    """`plan` with `label` (default: a random one) changed to another of its choices; a label
    without another choice (a single choice, or not categorical) is drawn at random instead."""
    dists = {k: d for p in parents for k, d in p.distributions.items()}
    if label is not None and len(getattr(dists.get(label), "choices", ())) <= 1:
        return {k: v for k, v in plan.items() if k != label}
    labels = [label] if label is not None else [k for k in sorted(plan) if len(getattr(dists.get(k), "choices", ())) > 1]
    if not labels:
        return plan
    label = labels[rng.choice(len(labels))]
    others = [c for c in dists[label].choices if c != plan[label]]
    return {**plan, label: others[rng.choice(len(others))]}


class GroupedNSGAIISampler(NSGAIISampler):
    """See the module docstring. Arguments are `NSGAIISampler`'s, plus `mutation_prob`."""

    def __init__(self, *, mutation_prob: float | None = None, slot_crossover_prob: float = 0.0, **kwargs: Any):
        super().__init__(mutation_prob=mutation_prob, **kwargs)
        self._label_mutation_prob = mutation_prob
        self._slot_crossover_prob = slot_crossover_prob
        self._plans: dict[int, dict[str, Any] | None] = {}

    @classmethod
    def _get_generation_key(cls) -> str:
        return GENERATION_KEY

    def before_trial(self, study, trial: FrozenTrial) -> None:
        if "fixed_params" in trial.system_attrs and GENERATION_KEY not in trial.system_attrs:
            study._storage.set_trial_system_attr(trial._trial_id, GENERATION_KEY, 0)  # a seed: generation 0
        super().before_trial(study, trial)

    def sample_relative(self, study, trial: FrozenTrial, search_space) -> dict[str, Any]:
        return {}  # every label goes through sample_independent, which reads the child's plan

    def sample_independent(self, study, trial: FrozenTrial, param_name: str, param_distribution) -> Any:
        plan = self._plan(study, trial)
        if plan is not None and param_name in plan:
            value = plan[param_name]
            try:
                if param_distribution._contains(param_distribution.to_internal_repr(value)):
                    return value
            except (ValueError, TypeError):
                pass  # the parent's value is not a choice of this distribution: draw it
        return self._random_sampler.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial: FrozenTrial, state, values) -> None:
        self._plans.pop(trial.number, None)
        super().after_trial(study, trial, state, values)

    # -- the child ---------------------------------------------------------------
    def _plan(self, study, trial: FrozenTrial) -> dict[str, Any] | None:
        """Labels the child takes from its parents (None in generation 0: all random)."""
        if trial.number in self._plans:
            return self._plans[trial.number]
        generation = self.get_trial_generation(study, trial)
        population = self.get_parent_population(study, generation) if generation > 0 else []
        plan = None
        if len(population) >= 1:
            rng = self._rng.rng
            first = self._tournament(study, population, rng)
            rest = [t for t in population if t.number != first.number] or population
            second = self._tournament(study, rest, rng)
            groups = sorted({label_group(k) for k in (*first.params, *second.params)})
            donors = {g: first if rng.rand() < 0.5 else second for g in groups}
            child = {}
            for group, donor in donors.items():
                child.update({k: v for k, v in donor.params.items() if label_group(k) == group})
            if rng.rand() < self._slot_crossover_prob:  # mix the parents' layers slot by slot instead
                other = second if donors.get("layers") is first else first
                for slot in sorted({_slot(k) for k in (*first.params, *second.params)} - {None}):
                    if rng.rand() < 0.5 and any(_slot(k) == slot for k in other.params):
                        child = {k: v for k, v in child.items() if _slot(k) != slot}
                        child.update({k: v for k, v in other.params.items() if _slot(k) == slot})
            rate = self._label_mutation_prob if self._label_mutation_prob is not None else 1.0 / max(1, len(child))
            plan = dict(child)
            for label in sorted(child):
                if rng.rand() < rate:
                    plan = _mutate_one(plan, [first, second], rng, label)
            if any(plan == t.params for t in study.get_trials(deepcopy=False)):  # a copy: its score is known
                plan = _mutate_one(plan, [first, second], rng)
        self._plans[trial.number] = plan
        return plan

    def _tournament(self, study, population: list[FrozenTrial], rng) -> FrozenTrial:
        """Binary tournament: the one of two random members that dominates (constraints first)."""
        a = population[rng.choice(len(population))]
        b = population[rng.choice(len(population))]
        if self._dominates(a, b, study.directions):
            return a
        if self._dominates(b, a, study.directions):
            return b
        return a if rng.rand() < 0.5 else b

    def _dominates(self, a: FrozenTrial, b: FrozenTrial, directions) -> bool:
        try:
            from optuna.samplers.nsgaii._constraints_evaluation import _constrained_dominates

            return bool(_constrained_dominates(a, b, directions))
        except ImportError:  # an Optuna without that helper: plain Pareto dominance
            from optuna.study._multi_objective import _dominates

            return bool(_dominates(a, b, directions))


__all__ = ["GroupedNSGAIISampler", "label_group"]
