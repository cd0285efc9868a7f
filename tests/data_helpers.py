"""Helpers for the data and teacher tests: synthetic tasks, a tiny teacher, in-process CLI runs."""

from __future__ import annotations

import random

from tests.conftest import make_tiny_bert

GOOD = ["good", "great", "fun", "funny", "best", "love"]
BAD = ["bad", "awful", "boring", "dull", "worst", "hate"]
FILLER = ["the movie", "this film", "a story", "the plot", "it", "the actor"]


def sentiment_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(text, "pos"|"neg") rows, learnable from one word."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        lab = "pos" if i % 2 else "neg"
        word = rng.choice(GOOD if lab == "pos" else BAD)
        rows.append((f"{rng.choice(FILLER)} was {word}", lab))
    return rows


def pair_splits(n_train=40, n_dev=10, n_test=10, seed=0) -> dict:
    """A sentence-pair task: label 1 ("same") when both sentences share a sentiment."""
    rng = random.Random(seed)

    def split(n):
        cols = {"text": [], "text_pair": [], "label": []}
        for i in range(n):
            same = i % 2
            a_good = rng.random() < 0.5
            b_good = a_good if same else not a_good
            cols["text"].append(f"{rng.choice(FILLER)} was {rng.choice(GOOD if a_good else BAD)}")
            cols["text_pair"].append(f"{rng.choice(FILLER)} is {rng.choice(GOOD if b_good else BAD)}")
            cols["label"].append(same)
        return cols

    return {"train": split(n_train), "dev": split(n_dev), "test": split(n_test)}


def make_pair_task(name="tiny-pair", seed=0):
    from hybridsearch.data import TaskSpec, make_task

    spec = TaskSpec(name=name, is_pair=True, id2label={0: "different", 1: "same"}, metric="accuracy")
    return make_task(spec, pair_splits(seed=seed), source="synthetic pairs (tests)")


def make_tiny_teacher(tmp_path, num_labels=2, seed=0, name="tiny-teacher"):
    """A saved tiny random BERT classifier (conftest's `make_tiny_bert`) in its own folder; returns its dir."""
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    return make_tiny_bert(folder, num_labels=num_labels, seed=seed)[2]


def run_cli(argv, capsys):
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    from hybridsearch.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(argv, capsys, *needles):
    """The CLI exits 2 with one `error:` line that mentions every needle (case-insensitive)."""
    code, out, err = run_cli(argv, capsys)
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle.lower() in lines[0].lower(), (needle, lines[0])
    return lines[0]
