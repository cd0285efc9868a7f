"""The NNI backend's own parts (toy problem, no BERT): space conversion, tuner state, flags.

What every backend shares (optimum, budgets, crashes, resume, teacher row, latency meaning,
promotion, timeout) is in tests/test_backend_contract.py.
"""

from __future__ import annotations

import json

import pytest
import yaml

from hybridsearch.errors import UserError
from hybridsearch.search.backends import run_backend
from hybridsearch.search.backends.nni import from_nni, make_tuner, to_nni, to_nni_space
from hybridsearch.search.space import load_space, parse_space
from hybridsearch.search.study import SearchSettings
from hybridsearch.search.toy import TOY_OPTIMUM, TOY_SPACE, ToyObjective


def toy_space():
    return parse_space(yaml.safe_load(TOY_SPACE), "toy.yaml")


def nni_search(objective, settings, run_dir, **options):
    return run_backend("nni", toy_space(), objective, f"sqlite:///{run_dir / 's.db'}", settings, run_dir, **options)


def test_nested_nni_space_round_trips_every_sample():
    space = toy_space()
    nni_space = to_nni_space(space)
    assert set(nni_space) == {"depth", "recipe.temperature"}
    d3 = next(b for b in nni_space["depth"]["_value"] if b["_name"] == 3)
    cnn = next(b for b in d3["layer_2.block"]["_value"] if b["_name"] == "cnn")
    assert cnn == {"_name": "cnn", "layer_2.kernel": {"_type": "choice", "_value": [3, 5]}}
    for seed in range(30):
        sample = space.random_sample(seed)
        assert from_nni(space, to_nni(nni_space, sample)) == sample
    assert from_nni(space, to_nni(nni_space, TOY_OPTIMUM)) == TOY_OPTIMUM


@pytest.mark.parametrize("name", ["hybrid", "transformer_only"])
def test_tuner_samples_of_the_shipped_spaces_are_valid(name):
    space = load_space(name)
    nni_space = to_nni_space(space)
    for algorithm in ("random", "tpe"):
        tuner = make_tuner(algorithm, 0, nni_space)
        for i in range(20):
            params = tuner.generate_parameters(i)
            sample = from_nni(space, params)
            space.resolve(sample)  # raises UserError for a label that is missing, extra or out of range
            tuner.receive_trial_result(i, params, 0.5)


def test_resumed_search_continues_exactly_like_an_uninterrupted_one(tmp_path):
    def run(path, trials):
        return nni_search(ToyObjective(), SearchSettings(trials=trials, objective="score", seed=3, isolation="inline"),
                          path)

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    straight = run(tmp_path / "a", 16)
    run(tmp_path / "b", 7)
    resumed = run(tmp_path / "b", 16)  # a fresh tuner, history and RNG state replayed from tuner.json
    assert [t.params for t in resumed.trials] == [t.params for t in straight.trials]


def test_every_trial_carries_its_nni_parameter_and_reward(tmp_path):
    study = nni_search(ToyObjective(), SearchSettings(trials=12, objective="multi", max_latency_ms=2.5,
                                                      isolation="inline"), tmp_path)
    for t in study.trials:
        assert t.user_attrs["backend"] == "nni" and from_nni(toy_space(), t.user_attrs["backend.nni.params"]) == t.params
        reward = t.user_attrs["backend.nni.reward"]
        assert reward == (-1.0 if t.state.name == "PRUNED" else t.values[0])  # rejected: -1; else the dev score
    assert len({json.dumps(t.params, sort_keys=True) for t in study.trials}) == 12  # no point proposed twice
    state = json.loads((tmp_path / "nni" / "tuner.json").read_text())
    assert [r["trial"] for r in state["history"]] == list(range(12))


def test_bad_input_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="--nni-algorithm"):
        nni_search(ToyObjective(), SearchSettings(), tmp_path, nni_algorithm="bohb")
    ranged = yaml.safe_load(TOY_SPACE)
    ranged["depth"] = {"low": 1, "high": 3, "log": True}
    with pytest.raises(UserError, match="'depth' decides which other keys exist"):
        to_nni_space(parse_space(ranged, "ranged.yaml"))


def test_run_backend_dispatches_and_refuses_foreign_flags(tmp_path):
    url, settings = f"sqlite:///{tmp_path / 's.db'}", SearchSettings(trials=4, objective="score", isolation="inline")
    with pytest.raises(UserError, match="unknown --backend 'dask'"):
        run_backend("dask", toy_space(), ToyObjective(), url, settings, tmp_path, study_name="hybridsearch")
    with pytest.raises(UserError, match="--concurrency, --gpus-per-trial need --backend ray"):
        run_backend("nni", toy_space(), ToyObjective(), url, settings, tmp_path, study_name="hybridsearch",
                    concurrency=2, gpus_per_trial=0.5)
    seen = []
    study = run_backend("nni", toy_space(), ToyObjective(), url, settings, tmp_path, study_name="hybridsearch",
                        on_trial=lambda s, t: seen.append(t.number))
    assert seen == [0, 1, 2, 3] and all(t.user_attrs["backend"] == "nni" for t in study.trials)


def test_backend_flags_parse_into_run_backend_options():
    import argparse

    from hybridsearch.search.backends import add_backend_arguments, backend_options

    parser = argparse.ArgumentParser()
    add_backend_arguments(parser)
    args = parser.parse_args(["--backend", "ray", "--concurrency", "2", "--gpus-per-trial", "0.25",
                              "--address", "10.0.0.5:6379"])
    assert args.backend == "ray" and backend_options(args) == {
        "concurrency": 2, "cpus_per_trial": 1.0, "gpus_per_trial": 0.25, "address": "10.0.0.5:6379",
        "node_type": None, "nni_algorithm": "tpe", "scheduler": "fifo"}
    assert "ASHA" in parser.format_help() and "--scheduler" in parser.format_help()
