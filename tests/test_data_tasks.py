"""Task registry, synthetic pair tasks, local files, splits and fingerprints (no network)."""

from __future__ import annotations

import pytest

from hybridsearch.data import (
    TaskSpec,
    list_tasks,
    load_task,
    make_task,
    register_task,
    stratified_split,
    unregister_task,
)
from hybridsearch.errors import UserError
from tests.data_helpers import assert_user_error, make_pair_task, pair_splits, run_cli, sentiment_rows


@pytest.fixture
def pair_task_registered():
    register_task("tiny-pair", lambda cache, **_: make_pair_task(), "synthetic pairs", overwrite=True)
    yield "tiny-pair"
    unregister_task("tiny-pair")


def write_csv(path, rows, header=("text", "label")):
    import csv

    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_registry_lists_builtins():
    names = list_tasks()
    for name in ("mr", "sst2", "mnli", "qqp", "qnli", "mrpc", "cola", "rte", "stsb"):
        assert name in names


def test_registered_pair_task_loads(pair_task_registered):
    task = load_task(pair_task_registered)
    assert task.spec.is_pair and task.spec.num_labels == 2 and task.spec.id2label[1] == "same"
    assert set(task.splits["train"].column_names) == {"text", "text_pair", "label"}
    assert len(task.splits["train"]) == 40 and len(task.splits["test"]) == 10
    texts, pairs = task.texts("dev")
    assert len(texts) == len(pairs) == 10


def test_data_show_pair_task_cli(pair_task_registered, capsys):
    code, out, _ = run_cli(["data", "show", pair_task_registered, "--examples", "2"], capsys)
    assert code == 0
    assert "sentence pair" in out and "train" in out and "same" in out and "different" in out


def test_fingerprint_tracks_content():
    spec = TaskSpec(name="a", is_pair=True, id2label={0: "x", 1: "y"})
    t1 = make_task(spec, pair_splits(seed=0))
    t2 = make_task(TaskSpec(name="renamed", is_pair=True, id2label={0: "x", 1: "y"}), pair_splits(seed=0))
    t3 = make_task(spec, pair_splits(seed=1))
    assert t1.fingerprint == t2.fingerprint  # the name is not content
    assert t1.fingerprint != t3.fingerprint


def test_make_task_rejects_labels_outside_num_labels():
    splits = pair_splits()
    splits["dev"]["label"][0] = 2
    with pytest.raises(UserError, match="outside 0..1"):
        make_task(TaskSpec(name="p", is_pair=True, id2label={0: "a", 1: "b"}), splits)


def test_stratified_split_is_deterministic_and_stratified():
    labels = [0] * 2000 + [1] * 2000
    a = stratified_split(labels)
    b = stratified_split(labels)
    assert a == b
    assert [len(p) for p in a] == [2800, 600, 600]
    assert sum(labels[i] for i in a[2]) == 300
    assert not set(a[0]) & set(a[1]) and not set(a[1]) & set(a[2])


def test_local_csv_string_labels(tmp_path):
    rows = [(f"{t} {i}", "great" if lab == "pos" else "awful") for i, (t, lab) in enumerate(sentiment_rows(100))]
    path = write_csv(tmp_path / "reviews.csv", rows, header=("review", "sentiment"))  # unique texts: no leak
    task = load_task(str(path), text_column="review", label_column="sentiment")
    assert task.spec.id2label == {0: "awful", 1: "great"}
    assert not task.spec.is_pair
    sizes = [len(task.splits[s]) for s in ("train", "dev", "test")]
    assert sizes == [70, 15, 15]
    again = load_task(str(path), text_column="review", label_column="sentiment")
    assert again.fingerprint == task.fingerprint
    assert list(again.splits["test"]["text"]) == list(task.splits["test"]["text"])


def test_local_int_labels_and_formats(tmp_path):
    import pandas as pd

    rows = [{"text": t, "label": int(lab == "pos")} for t, lab in sentiment_rows(40)]
    pd.DataFrame(rows).to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    pd.DataFrame(rows).to_parquet(tmp_path / "d.parquet")
    pd.DataFrame(rows).to_csv(tmp_path / "d.tsv", sep="\t", index=False)
    fps = set()
    for name in ("d.jsonl", "d.parquet", "d.tsv"):
        task = load_task(str(tmp_path / name))
        assert task.spec.id2label == {0: "0", 1: "1"}
        fps.add(task.fingerprint)
    assert len(fps) == 1  # same content, same fingerprint


def test_local_pairs_with_explicit_split_files(tmp_path):
    splits = pair_splits()
    files = {}
    for name, cols in splits.items():
        rows = list(zip(cols["text"], cols["text_pair"], ["same" if y else "different" for y in cols["label"]]))
        files[name] = write_csv(tmp_path / f"{name}.csv", rows, header=("q1", "q2", "y"))
    task = load_task(str(files["train"]), text_column="q1", text_pair_column="q2", label_column="y",
                     dev_file=str(files["dev"]), test_file=str(files["test"]))
    assert task.spec.is_pair and task.spec.id2label == {0: "different", 1: "same"}
    assert [len(task.splits[s]) for s in ("train", "dev", "test")] == [40, 10, 10]
    assert list(task.splits["dev"]["label"]) == splits["dev"]["label"]


def test_glue_loader_maps_splits(monkeypatch):
    import datasets

    def fake_load_dataset(path, name, **kw):
        assert path == "glue" and name == "mrpc"
        train = datasets.Dataset.from_dict({"sentence1": [f"a {i}" for i in range(100)],
                                            "sentence2": [f"b {i}" for i in range(100)],
                                            "label": [i % 2 for i in range(100)], "idx": list(range(100))})
        val = datasets.Dataset.from_dict({"sentence1": ["x", "y"], "sentence2": ["z", "w"], "label": [0, 1],
                                          "idx": [0, 1]})
        return datasets.DatasetDict(train=train, validation=val)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    task = load_task("mrpc")
    assert task.spec.is_pair and task.spec.metric == "f1" and task.spec.id2label[1] == "equivalent"
    assert [len(task.splits[s]) for s in ("train", "dev", "test")] == [90, 10, 2]
    assert list(task.splits["test"]["text_pair"]) == ["z", "w"]


def test_glue_offline_is_a_user_error(monkeypatch, capsys):
    import datasets

    def boom(*a, **k):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", boom)
    assert_user_error(["data", "show", "sst2"], capsys, "sst2", "network")


# ---- bad input, through the CLI: one line, exit 2 ------------------------------------------

def test_unknown_task(capsys):
    assert_user_error(["data", "show", "nosuchtask"], capsys, "unknown task", "mr")


def test_stsb_regression_not_supported(capsys):
    assert_user_error(["data", "show", "stsb"], capsys, "regression")


def test_missing_file(tmp_path, capsys):
    assert_user_error(["data", "show", str(tmp_path / "nope.csv")], capsys, "does not exist")


def test_misnamed_column_names_available_columns(tmp_path, capsys):
    path = write_csv(tmp_path / "r.csv", sentiment_rows(20), header=("review", "sentiment"))
    line = assert_user_error(["data", "show", path, "--text-column", "txt", "--label-column", "sentiment"], capsys,
                             "txt", "--text-column")
    assert "review" in line and "sentiment" in line
    assert_user_error(["data", "show", path], capsys, "available columns", "review")


def test_missing_column_in_dev_file(tmp_path, capsys):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(20))
    dev = write_csv(tmp_path / "dev.csv", sentiment_rows(6), header=("sentence", "label"))
    test = write_csv(tmp_path / "test.csv", sentiment_rows(6))
    assert_user_error(["data", "show", train, "--dev-file", dev, "--test-file", test], capsys, "dev.csv", "sentence")


def test_labels_that_do_not_fit_num_labels(tmp_path, capsys):
    rows = [(t, i % 3) for i, (t, _) in enumerate(sentiment_rows(30))]
    path = write_csv(tmp_path / "three.csv", rows)
    assert_user_error(["data", "show", path, "--num-labels", "2"], capsys, "num_labels=2")
    neg = write_csv(tmp_path / "neg.csv", [(t, -1 if lab == "neg" else 1) for t, lab in sentiment_rows(20)])
    assert_user_error(["data", "show", neg], capsys, "0..k-1")


def test_unseen_string_label_in_test_file(tmp_path, capsys):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(20))
    dev = write_csv(tmp_path / "dev.csv", sentiment_rows(6))
    test = write_csv(tmp_path / "test.csv", [("it was ok", "meh")])
    assert_user_error(["data", "show", train, "--dev-file", dev, "--test-file", test], capsys, "meh", "known labels")


def test_file_options_rejected_for_registered_task(capsys):
    assert_user_error(["data", "show", "mr", "--text-column", "x"], capsys, "only apply to local files")


def test_data_list(capsys):
    code, out, _ = run_cli(["data", "list"], capsys)
    assert code == 0 and "mr" in out and "sst2" in out
