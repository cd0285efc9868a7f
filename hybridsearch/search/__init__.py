"""The search: spaces (YAML -> labelled choices), the objective, the Optuna backend, runs and fronts.

    from hybridsearch.search.space import load_space
    from hybridsearch.search.optuna_backend import SearchSettings, run_search
"""
