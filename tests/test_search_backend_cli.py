"""`hybridsearch search` refuses backend mistakes before it touches the task or the teacher."""

import pytest

from hybridsearch.cli import main


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["search", "--backend", "nope"], "unknown --backend 'nope'"),
        (["search", "--concurrency", "2"], "--concurrency need --backend ray"),
        (["search", "--backend", "nni", "--gpus-per-trial", "0.5"], "--gpus-per-trial need --backend ray"),
    ],
)
def test_backend_mistakes_fail_fast_with_one_line(argv, needle, capsys, monkeypatch):
    import hybridsearch.commands.search as search_cmd

    def no_task(*_a, **_k):  # reaching the task would mean the check came too late
        raise AssertionError("the task was loaded before the backend flags were checked")

    monkeypatch.setattr(search_cmd, "task_from_args", no_task)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err
