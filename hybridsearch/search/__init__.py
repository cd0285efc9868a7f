"""The search: spaces (YAML -> labelled choices), the trial protocol, the study, backends, runs and fronts.

    from hybridsearch.search.space import load_space
    from hybridsearch.search.study import SearchSettings
    from hybridsearch.search.backends import run_backend        # "optuna" | "ray" | "nni"
    study = run_backend("optuna", space, objective, storage_url, SearchSettings(trials=12), run_dir)

Modules: `space` / `freeze` (samples -> StudentArch + DistillRecipe), `objective` (the contract a
backend calls; `distill_objective` is the real one, `toy` a known-optimum one), `trial` (the one
trial protocol and its record in the study), `study` (settings, storage, sampler, seeds, stale
trials), `promotion`, `worker` (process isolation), `locks` (per-node latency lock),
`backends/` (which sample next and where), `pareto` (rows, front, best), `results` / `rundir`.
"""
