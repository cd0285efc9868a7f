"""`--backend optuna` (default): the study's own sampler picks each sample; trials run one at a time in
this machine's worker process (`search.backends.local`)."""

from __future__ import annotations

from hybridsearch.search.backends import Backend, SearchJob, register_backend


@register_backend
class OptunaBackend(Backend):
    name = "optuna"
    help = "the study's sampler (nsga2 / tpe / random) in this process, trials in a worker process"

    def run(self, job: SearchJob):
        from hybridsearch.search.backends.local import StudySampler, run_local

        return run_local(job, StudySampler(job.space))
