"""Promotion: the rule (which trial earns more steps) and its wiring through the trial protocol.

Every backend runs the same hook (tests/test_backend_contract.py); here: which trials it picks, and
that the request crosses the worker-process boundary."""

from __future__ import annotations

import yaml

from hybridsearch.search.backends import run_backend
from hybridsearch.search.promotion import Finished, promotion_steps
from hybridsearch.search.space import parse_space
from hybridsearch.search.study import SearchSettings
from hybridsearch.search.toy import TOY_SPACE, TOY_TEACHER, ToyTeacherObjective, toy_latency
from hybridsearch.search.trial import read_outcome

TEACHER_DEV = TOY_TEACHER["dev_score"]


def run_search(space, objective, storage_url, settings):
    return run_backend("optuna", space, objective, storage_url, settings)


def outcome(t):
    return read_outcome(t)


def _steps(dev=0.815, best_step=400, latency=5.0, finished=(), has_budget=False, meets=True, **kw):
    return promotion_steps(dev=dev, best_step=best_step, steps=400, latency_ms=latency, meets_budgets=meets,
                           finished=list(finished), teacher_dev=TEACHER_DEV, has_budget=has_budget, **kw)


NEAR = [Finished(0.81, 9.0), Finished(0.82, 8.0), Finished(0.805, 7.0)]  # within 1 + 2 points of the teacher


def test_the_fastest_near_teacher_trial_in_the_top_quarter_trains_its_budget_again():
    assert _steps(finished=NEAR) == 400  # 4 near-teacher trials: the fastest 1 is promoted
    assert _steps(finished=NEAR, factor=0.5) == 200
    assert _steps(finished=NEAR, latency=7.5) == 0  # not the fastest of the four
    assert _steps(finished=NEAR[:2]) == 0  # fewer than eta comparable trials: nobody yet
    far = [Finished(0.70, 1.0)] * 5  # faster, but too far from the teacher to be the choice: not in the pool
    assert _steps(finished=NEAR + far) == 400
    eight = NEAR + [Finished(0.81, 6.0), Finished(0.81, 4.0), Finished(0.81, 9.5), Finished(0.81, 9.9)]
    assert _steps(finished=eight, latency=5.0) == 400  # second fastest of 8: top 2
    assert _steps(finished=eight, latency=6.5) == 0  # third


def test_no_promotion_when_training_has_stopped_paying_or_the_gap_is_too_wide():
    assert _steps(finished=NEAR, best_step=0) == 0  # kept its initial weights
    assert _steps(finished=NEAR, best_step=200) == 0  # peaked in the first half
    assert _steps(finished=NEAR, dev=TEACHER_DEV - 0.031) == 0  # more than 1 + 2 points under the teacher
    assert _steps(finished=NEAR, dev=TEACHER_DEV - 0.029) == 400
    assert _steps(finished=NEAR, dev=None) == 0 and _steps(finished=NEAR, latency=None) == 0


def test_with_budgets_trials_inside_them_rank_by_dev_score():
    inside = [Finished(0.80, 3.0), Finished(0.78, 3.0), Finished(0.79, 3.0)]
    outside = [Finished(0.95, 30.0, meets_budgets=False)] * 4
    assert _steps(has_budget=True, dev=0.81, finished=inside + outside) == 400
    assert _steps(has_budget=True, dev=0.795, finished=inside + outside) == 0
    assert _steps(has_budget=True, dev=0.81, meets=False, finished=inside) == 0


AskingObjective = ToyTeacherObjective


def test_the_search_grants_extra_steps_only_to_trials_that_could_become_the_best():
    space = parse_space(yaml.safe_load(TOY_SPACE), "toy.yaml")
    study = run_search(space, AskingObjective(), None,
                       SearchSettings(trials=16, objective="multi", sampler="random", seed=1, isolation="inline"))
    trials = [t for t in study.trials if t.state.name == "COMPLETE"]
    promoted = [t for t in trials if outcome(t).promoted]
    assert promoted and len(promoted) <= len(trials) // 4
    for t in trials:
        extra = outcome(t).metrics["steps"] - 100
        assert extra == (outcome(t).promoted["extra_steps"] if t in promoted else 0)
        assert outcome(t).precheck["latency_ms"] == toy_latency(t.params)
    # each promoted trial was among the fastest quarter of the near-teacher trials finished by then
    near = TEACHER_DEV - 0.03
    for t in promoted:
        pool = [u for u in trials if u.number <= t.number and outcome(u).metrics["dev_score"] >= near]
        faster = [u for u in pool if toy_latency(u.params) < toy_latency(t.params)]
        assert len(faster) < len(pool) // 4


def test_no_promote_setting_never_extends():
    space = parse_space(yaml.safe_load(TOY_SPACE), "toy.yaml")
    study = run_search(space, AskingObjective(), None,
                       SearchSettings(trials=6, objective="multi", sampler="random", seed=1, isolation="inline",
                                      promote=False))
    assert not any(outcome(t).promoted for t in study.trials)
    assert all(outcome(t).metrics["steps"] == 100 for t in study.trials if t.state.name == "COMPLETE")


def test_promotion_crosses_the_worker_process_boundary():
    space = parse_space(yaml.safe_load(TOY_SPACE), "toy.yaml")
    study = run_search(space, AskingObjective(), None,
                       SearchSettings(trials=8, objective="multi", sampler="random", seed=1, isolation="process",
                                      promote_eta=2))
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    promoted = [t for t in done if outcome(t).promoted]
    assert len(done) == 8 and promoted
    assert all(outcome(t).metrics["steps"] == 200 for t in promoted)
