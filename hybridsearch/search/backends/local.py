"""The in-process ask -> protocol -> tell loop (Optuna and NNI backends), trials in a `TrialRunner`.

A `Proposer` decides which sample runs next: `propose(study) -> (optuna.Trial, sample) | None`
(None: nothing left to try), and hears how it ended (`told`). The loop:
- prepares the study (seeds, stale trials), measures the teacher reference once (study attr
  `teacher`), refuses an unreachable budget before any training;
- runs each trial through `search.trial.TrialProtocol` while keeping its heartbeat, then
  `search.trial.record`s it; `on_report` reports intermediate dev scores to the study and
  prunes in score mode (the study's pruner);
- stops when `settings.trials` trials count, at `settings.timeout` (the running trial is
  stopped, FAIL `interrupted`, enqueued again), or on Ctrl-C (the running trial likewise, then
  KeyboardInterrupt propagates).
"""

from __future__ import annotations

import time

from hybridsearch.errors import UserError
from hybridsearch.search.trial import (
    BACKEND_KEY,
    TrialProtocol,
    interrupted_outcome,
    record,
)

SIGINT_REASON = "interrupted (Ctrl-C); re-run the same command to resume"


class Proposer:
    """Which sample next; see the module docstring."""

    backend: str = "optuna"

    def propose(self, study):
        raise NotImplementedError

    def backend_attrs(self, trial, sample: dict, outcome) -> dict:
        return {}

    def told(self, study, trial, sample: dict, outcome) -> None:
        pass


class StudySampler(Proposer):
    """The study's own sampler (and its queue: seeds, retries) picks the next sample."""

    def __init__(self, space):
        self.space = space

    def propose(self, study):
        trial = study.ask()
        return trial, self.space.sample(trial)


def pruning_reporter(trial, settings):
    """on_report for the protocol: intermediate dev scores to the study; prune (score mode) per its pruner."""

    def on_report(step: int, value: float) -> bool:
        if settings.objective != "score":
            return False
        trial.report(value, step)
        return trial.should_prune()

    return on_report


def measure_reference(study, runner, settings):
    """The teacher reference, measured in the worker once per study (None without a teacher)."""
    from hybridsearch.search.study import ensure_reference

    if not hasattr(runner.objective, "reference"):
        return None

    def measure():
        res = runner.run("reference", {})
        if res.status != "done" and settings.timeout and "timeout" in str(res.reason):
            raise UserError(f"--timeout {settings.timeout:g}s ran out while the worker loaded the task and "
                            "teacher and timed the teacher, before any trial; give a longer --timeout")
        return res

    return ensure_reference(study, measure)


def run_local(job, proposer: Proposer):
    """Run (or resume) `job` with `proposer` choosing samples; the study."""
    from hybridsearch.search.objective import as_objective
    from hybridsearch.search.promotion import finished_for_promotion
    from hybridsearch.search.study import check_budgets_reachable, finished_count, heartbeat, prepare_study
    from hybridsearch.search.worker import TrialRunner

    settings = job.settings
    study = prepare_study(job.space, job.storage_url, settings, job.study_name, job.metadata)
    if finished_count(study) >= settings.trials:
        return study
    runner = TrialRunner(as_objective(job.objective), settings.isolation, settings.trial_timeout)
    deadline = time.monotonic() + settings.timeout if settings.timeout else None
    runner.deadline = deadline
    try:
        reference = measure_reference(study, runner, settings)
        check_budgets_reachable(job.space, runner, settings, reference)
        protocol = TrialProtocol(settings, runner, reference, lambda: finished_for_promotion(study, settings))
        while finished_count(study) < settings.trials:
            if deadline is not None and time.monotonic() > deadline:
                break
            proposal = proposer.propose(study)
            if proposal is None:
                print("[hybridsearch] every sample of the space has been tried; the search stops here", flush=True)
                break
            trial, sample = proposal
            trial.set_user_attr(BACKEND_KEY, proposer.backend)
            try:
                with heartbeat(study, trial):
                    outcome = protocol.run(sample, on_report=pruning_reporter(trial, settings))
            except KeyboardInterrupt:
                record(study, trial, interrupted_outcome(SIGINT_REASON))
                raise
            record(study, trial, outcome, proposer.backend_attrs(trial, sample, outcome))
            proposer.told(study, trial, sample, outcome)
            if job.on_trial:
                job.on_trial(study, study.get_trials(deepcopy=False)[trial.number])
    finally:
        runner.close()
    return study


__all__ = ["Proposer", "StudySampler", "run_local"]
