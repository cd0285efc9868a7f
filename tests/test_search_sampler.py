"""GroupedNSGAIISampler: seeds join the first generation and children take label groups whole."""

from __future__ import annotations

import optuna
import yaml

from hybridsearch.search.sampler import GENERATION_KEY, GroupedNSGAIISampler, label_group
from hybridsearch.search.space import parse_space

SPACE = """
depth: 3
arch: {weight_bits: [32, 8], sparsity: [0.0, 0.5]}
layer:
  block: [transformer, cnn, skip]
  heads: {choices: [4, 8], when: {block: transformer}}
  kernel: {choices: [3, 5], when: {block: cnn}}
recipe: {lr: [1.0e-4, 3.0e-4], temperature: [1.0, 2.0]}
seeds:
  - name: a
    sample: {arch.weight_bits: 8, arch.sparsity: 0.0, layer_0.block: transformer, layer_0.heads: 8,
             layer_1.block: transformer, layer_1.heads: 8, layer_2.block: transformer, layer_2.heads: 8,
             recipe.lr: 1.0e-4, recipe.temperature: 2.0}
  - name: b
    sample: {arch.weight_bits: 32, arch.sparsity: 0.5, layer_0.block: skip, layer_1.block: cnn, layer_1.kernel: 5,
             layer_2.block: transformer, layer_2.heads: 4, recipe.lr: 3.0e-4, recipe.temperature: 1.0}
"""


def _groups(params: dict) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for k, v in params.items():
        out.setdefault(label_group(k), {})[k] = v
    return out


def test_label_groups():
    assert label_group("layer_3.heads") == label_group("depth") == label_group("recipe.lr") == "layers"
    assert label_group("arch.act_bits") == "arch" and label_group("emb.size") == "emb"


def test_seeds_are_parents_and_children_take_each_group_whole_from_a_parent():
    space = parse_space(yaml.safe_load(SPACE), "s.yaml")
    sampler = GroupedNSGAIISampler(seed=0, population_size=2, mutation_prob=0.0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    for s in space.seeds:
        study.enqueue_trial(s["sample"], user_attrs={"seeded": True})
    for i in range(10):
        trial = study.ask()
        sample = space.sample(trial)
        study.tell(trial, (float(sample["arch.weight_bits"] == 8) + i * 1e-3, float(sample["arch.sparsity"] == 0.0)))
    trials = study.get_trials()
    assert [t.system_attrs.get(GENERATION_KEY) for t in trials[:2]] == [0, 0]  # the seeds are generation 0
    seeds = [_groups(t.params) for t in trials[:2]]
    children = [t for t in trials if t.system_attrs.get(GENERATION_KEY) == 1]
    assert len(children) == 2
    for child in children:  # generation 1's only parents are the two seeds: each group is one seed's
        changed = 0  # ... but for the one label a copy of a seed gets changed
        for group, labels in _groups(child.params).items():
            changed += min(sum(labels[k] != v for k, v in (seed.get(group) or {}).items() if k in labels)
                           for seed in seeds)  # (a changed block asks its own options: not counted)
        assert changed <= 1, child.params
    mixed = [t for t in trials[2:] if _groups(t.params) not in seeds]
    assert mixed  # some child combined the seeds' groups


def test_a_mutated_block_draws_its_own_options():
    space = parse_space(yaml.safe_load(SPACE), "s.yaml")
    sampler = GroupedNSGAIISampler(seed=3, population_size=2, mutation_prob=1.0)  # every label re-drawn
    study = optuna.create_study(directions=["maximize"], sampler=sampler)
    for s in space.seeds:
        study.enqueue_trial(s["sample"])
    for _ in range(8):
        trial = study.ask()
        sample = space.sample(trial)
        space.resolve(sample)  # a valid sample: the active labels of its own blocks, no others
        study.tell(trial, 1.0)


def test_children_do_not_copy_a_trial_already_in_the_study():
    space = parse_space(yaml.safe_load(SPACE), "s.yaml")
    sampler = GroupedNSGAIISampler(seed=0, population_size=2, mutation_prob=0.0)  # crossover only
    study = optuna.create_study(directions=["maximize"], sampler=sampler)
    for s in space.seeds:
        study.enqueue_trial(s["sample"])
    for _ in range(12):
        trial = study.ask()
        space.sample(trial)
        study.tell(trial, 1.0)
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(params)) == len(params)


def test_a_mutated_label_takes_another_choice():
    import numpy as np
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from hybridsearch.search.sampler import _mutate_one

    parent = optuna.trial.create_trial(
        params={"arch.weight_bits": 8, "recipe.lr": 1e-4, "recipe.warmup": 0.1},
        distributions={"arch.weight_bits": CategoricalDistribution([32, 8]),
                       "recipe.lr": CategoricalDistribution([1e-4, 3e-4, 1e-3]),
                       "recipe.warmup": FloatDistribution(0.0, 0.5)},
        value=1.0)
    rng = np.random.RandomState(0)
    for _ in range(20):
        plan = _mutate_one(dict(parent.params), [parent], rng, "recipe.lr")
        assert plan["recipe.lr"] != 1e-4 and plan["arch.weight_bits"] == 8
    assert _mutate_one(dict(parent.params), [parent], rng, "arch.weight_bits")["arch.weight_bits"] == 32
    assert "recipe.warmup" not in _mutate_one(dict(parent.params), [parent], rng, "recipe.warmup")  # re-drawn
