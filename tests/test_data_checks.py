"""Data checks at load (hybridsearch.data.checks): classes, unseen labels, missing values, leaks,
label names; and the teacher's label order. Small CSVs in tmp_path, tiny teachers, no network."""

from __future__ import annotations

import csv
import json

import pytest

from hybridsearch.data import TaskSpec, load_task, make_task
from hybridsearch.data.checks import is_missing
from hybridsearch.errors import UserError
from tests.data_helpers import assert_user_error, make_tiny_teacher, run_cli

WORDS = "good great fun bad awful boring movie film story plot actor cat dog mat".split()


def texts(n: int, tag: str = "") -> list[str]:
    """n distinct short texts."""
    return [f"{WORDS[i % len(WORDS)]} {WORDS[(i // len(WORDS)) % len(WORDS)]} {tag}{i}" for i in range(n)]


def write_csv(path, header, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def one_line_error(excinfo, *needles) -> str:
    """The UserError's message: one line, "problem; fix", mentioning every needle."""
    msg = str(excinfo.value)
    assert "\n" not in msg and "; " in msg, msg
    for needle in needles:
        assert needle.lower() in msg.lower(), (needle, msg)
    return msg


def cli_refuses(argv, capsys, *needles) -> None:
    """`hybridsearch ...` exits 2 with exactly one stderr line, `error: ...` naming every needle."""
    code, _, err = run_cli(argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle.lower() in lines[0].lower(), (needle, lines[0])


def three_files(tmp_path, train_labels, dev_labels, test_labels):
    out = []
    for name, labels in (("train", train_labels), ("dev", dev_labels), ("test", test_labels)):
        out.append(write_csv(tmp_path / f"{name}.csv", ("review", "stars"),
                             zip(texts(len(labels), name), labels)))
    return out


def splits_of(train, dev, test, pair=False):
    """Plain-list splits from [(text, label)] rows (text_pair = "x" when pair)."""
    def cols(rows):
        out = {"text": [t for t, _ in rows], "label": [y for _, y in rows]}
        if pair:
            out["text_pair"] = ["x"] * len(rows)
        return out

    return {"train": cols(train), "dev": cols(dev), "test": cols(test)}


SPEC = TaskSpec(name="t", is_pair=False, id2label={0: "neg", 1: "pos"})


# ---- fewer than 2 classes ---------------------------------------------------------------------

def test_single_integer_class_is_refused(tmp_path, capsys):
    path = write_csv(tmp_path / "one.csv", ("review", "stars"), [(t, 1) for t in texts(40)])
    with pytest.raises(UserError) as exc:
        load_task(str(path), text_column="review", label_column="stars")
    one_line_error(exc, "one.csv", "'stars'", "single value", ">= 2 classes", "--label-column")
    cli_refuses(["data", "show", path, "--text-column", "review", "--label-column", "stars"], capsys,
                "single value", "stars", "--label-column")


def test_train_with_one_class_is_refused_by_make_task():
    rows = [(t, 0) for t in texts(10)]
    with pytest.raises(UserError) as exc:
        make_task(SPEC, splits_of(rows, [("a", 0)], [("b", 0)]))
    one_line_error(exc, "train", "single label class", "neg", "add rows of another class")


# ---- dev / test labels absent from train ------------------------------------------------------

def test_dev_label_absent_from_train_file_is_refused(tmp_path, capsys):
    train, dev, test = three_files(tmp_path, [0, 1] * 10, [0, 1, 2, 2], [0, 1])
    with pytest.raises(UserError) as exc:
        load_task(str(train), text_column="review", label_column="stars", dev_file=str(dev), test_file=str(test))
    msg = one_line_error(exc, "['2']", "dev.csv", "train.csv", "known labels: 0, 1", "add train rows")
    assert "test.csv" not in msg
    cli_refuses(["data", "show", train, "--text-column", "review", "--label-column", "stars",
                 "--dev-file", dev, "--test-file", test], capsys, "['2']", "dev.csv", "do not occur in train")


def test_test_label_absent_from_train_is_refused_by_make_task():
    spec = TaskSpec(name="t3", is_pair=False, id2label={0: "neg", 1: "pos", 2: "meh"})
    train = [(t, i % 2) for i, t in enumerate(texts(10))]
    with pytest.raises(UserError) as exc:
        make_task(spec, splits_of(train, [("a", 0)], [("b", 2)]))
    one_line_error(exc, "['meh']", "test", "known labels: neg, pos")


def test_rare_label_of_one_file_cannot_reach_train(tmp_path):
    rows = [(t, "pos" if i % 2 else "neg") for i, t in enumerate(texts(42))] + [("rare one", "rare"),
                                                                                 ("rare two", "rare")]
    path = write_csv(tmp_path / "rare.csv", ("text", "label"), rows)
    with pytest.raises(UserError) as exc:
        load_task(str(path))
    one_line_error(exc, "['rare']", "rare.csv", "70/15/15", "add train rows")


# ---- missing values ---------------------------------------------------------------------------

MISSING = ["NaN", "NA", "n/a", " None ", "null", "", "nan", "N/A"]


@pytest.mark.parametrize("value", [None, float("nan"), "NaN", "na", " N/A ", "None", "NULL", "", "  "])
def test_is_missing(value):
    assert is_missing(value)


@pytest.mark.parametrize("value", ["nana", "0", 0, 1.5, "no", "n"])
def test_is_not_missing(value):
    assert not is_missing(value)


def test_missing_labels_and_texts_are_dropped_once(tmp_path, capsys):
    rows = [(t, "pos" if i % 2 else "neg") for i, t in enumerate(texts(40))]
    rows += [(t, m) for t, m in zip(texts(len(MISSING), "x"), MISSING)]  # missing labels
    rows += [(m, "pos") for m in MISSING]  # missing texts
    path = write_csv(tmp_path / "m.csv", ("text", "label"), rows)
    capsys.readouterr()
    task = load_task(str(path))
    err = capsys.readouterr().err
    assert task.spec.id2label == {0: "neg", 1: "pos"}  # never a "NaN" class
    assert sum(len(s) for s in task.splits.values()) == 40
    lines = [ln for ln in err.splitlines() if "missing value" in ln]
    assert len(lines) == 1 and lines[0].startswith("warning:") and f"dropped {2 * len(MISSING)} row(s)" in lines[0]
    assert "m.csv" in lines[0]
    every = {t for s in task.splits.values() for t in s["text"]}
    assert not every & {m for m in MISSING}


def test_missing_integer_labels_keep_integer_names(tmp_path):
    rows = [(t, str(i % 2)) for i, t in enumerate(texts(40))] + [("x y", "NA"), ("y z", "null")]
    path = write_csv(tmp_path / "ints.csv", ("text", "label"), rows)
    task = load_task(str(path))
    assert task.spec.id2label == {0: "0", 1: "1"}


def test_a_missing_cell_in_one_file_keeps_integer_labels_comparable(tmp_path):
    train, _, test = three_files(tmp_path, [0, 1] * 10, [0], [0, 1])
    dev = write_csv(tmp_path / "dev.csv", ("review", "stars"), [("a b", 0), ("b c", 1), ("c d", "")])  # floats
    task = load_task(str(train), text_column="review", label_column="stars", dev_file=str(dev), test_file=str(test))
    assert task.spec.id2label == {0: "0", 1: "1"} and task.labels("dev").tolist() == [0, 1]


def test_missing_jsonl_values_are_dropped(tmp_path, capsys):
    rows = [{"text": t, "label": "pos" if i % 2 else "neg"} for i, t in enumerate(texts(40))]
    rows += [{"text": None, "label": "pos"}, {"text": "a b", "label": None}]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = load_task(str(path))
    assert sum(len(s) for s in task.splits.values()) == 40
    assert "dropped 2 row(s)" in capsys.readouterr().err


def test_split_left_empty_by_missing_values_is_refused(tmp_path):
    train, _, test = three_files(tmp_path, [0, 1] * 10, [0], [0, 1])
    dev = write_csv(tmp_path / "dev.csv", ("review", "stars"), [("a b", "NA"), ("NaN", 1)])
    with pytest.raises(UserError) as exc:
        load_task(str(train), text_column="review", label_column="stars", dev_file=str(dev), test_file=str(test))
    one_line_error(exc, "dev.csv", "no row has both text and label", "fill")


def test_make_task_drops_missing_rows_and_refuses_an_empty_split(capsys):
    train = [(t, i % 2) for i, t in enumerate(texts(10))] + [(None, 1), ("c d", None), (float("nan"), 0)]
    task = make_task(SPEC, splits_of(train, [("a", 0), ("null", 1)], [("b", 1)]))
    assert len(task.splits["train"]) == 10 and len(task.splits["dev"]) == 1
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "missing value" in ln]
    assert len(lines) == 1 and "dropped 4 row(s)" in lines[0]
    with pytest.raises(UserError) as exc:
        make_task(SPEC, splits_of(train, [("NA", 0)], [("b", 1)]))
    one_line_error(exc, "split dev", "is empty", "after dropping 1 row(s)")


# ---- duplicates across splits -----------------------------------------------------------------

def test_test_rows_duplicated_in_train_leave_train(tmp_path, capsys):
    base = [(t, i % 2) for i, t in enumerate(texts(30))]
    test_rows = base[:6]
    train, dev, test = [write_csv(tmp_path / f"{n}.csv", ("text", "label"), rows)
                        for n, rows in (("train", base + base[:6]), ("dev", base[20:24]), ("test", test_rows))]
    capsys.readouterr()
    task = load_task(str(train), dev_file=str(dev), test_file=str(test))
    err = capsys.readouterr().err
    assert len(task.splits["test"]) == 6 and len(task.splits["dev"]) == 4  # dev and test keep theirs
    assert not set(task.splits["train"]["text"]) & (set(task.splits["test"]["text"]) | set(task.splits["dev"]["text"]))
    assert len(task.splits["train"]) == 36 - 12 - 4
    lines = [ln for ln in err.splitlines() if "also occurs in dev or test" in ln]
    assert len(lines) == 1 and "removed 16 train row(s)" in lines[0]


def test_one_file_with_duplicates_has_no_test_row_in_train(tmp_path):
    rows = [(t, "pos" if i % 2 else "neg") for i, t in enumerate(texts(30))] * 3  # 30 texts, 3 copies each
    task = load_task(str(write_csv(tmp_path / "dups.csv", ("text", "label"), rows)))
    test = set(task.splits["test"]["text"])
    assert len(task.splits["test"]) == 14 and not test & set(task.splits["train"]["text"])


def test_leaks_that_empty_a_class_say_so(tmp_path):
    rows = [(t, "pos" if i % 2 else "neg") for i, t in enumerate(texts(10))] * 6  # every text reaches dev/test
    with pytest.raises(UserError) as exc:
        load_task(str(write_csv(tmp_path / "dups.csv", ("text", "label"), rows)))
    one_line_error(exc, "single label class", "also in dev or test", "dups.csv")


def test_pairs_are_duplicates_only_with_the_same_second_text():
    spec = TaskSpec(name="p", is_pair=True, id2label={0: "a", 1: "b"})
    splits = splits_of([(t, i % 2) for i, t in enumerate(texts(10))], [("x", 0)], [(texts(10)[0], 0)], pair=True)
    splits["train"]["text_pair"][1] = "other"
    splits["test"]["text_pair"] = ["x"]
    task = make_task(spec, splits)
    assert len(task.splits["train"]) == 9  # row 0 (same text and pair as test) removed, row 1 kept


def test_every_train_row_leaked_is_refused():
    rows = [(t, i % 2) for i, t in enumerate(texts(4))]
    with pytest.raises(UserError) as exc:
        make_task(SPEC, splits_of(rows, rows[:2], rows[2:]))
    one_line_error(exc, "every train row", "dev or test")


# ---- label names ------------------------------------------------------------------------------

def test_star_ratings_get_their_own_names(tmp_path):
    rows = [(t, 1 + i % 5) for i, t in enumerate(texts(60))]
    task = load_task(str(write_csv(tmp_path / "stars.csv", ("text", "label"), rows)))
    assert task.spec.id2label == {0: "1", 1: "2", 2: "3", 3: "4", 4: "5"}
    assert sorted(set(task.labels("train").tolist())) == [0, 1, 2, 3, 4]
    stars = dict(rows)
    for split in ("train", "dev", "test"):
        split_texts, _ = task.texts(split)
        assert [task.spec.id2label[int(y)] for y in task.labels(split)] == [str(stars[t]) for t in split_texts]


def test_zero_based_integers_and_strings_keep_their_names(tmp_path):
    ints = write_csv(tmp_path / "i.csv", ("text", "label"), [(t, i % 3) for i, t in enumerate(texts(60))])
    assert load_task(str(ints)).spec.id2label == {0: "0", 1: "1", 2: "2"}
    strs = write_csv(tmp_path / "s.csv", ("text", "label"), [(t, "yes" if i % 2 else "no")
                                                             for i, t in enumerate(texts(40))])
    assert load_task(str(strs)).spec.id2label == {0: "no", 1: "yes"}


# ---- the teacher's label order ----------------------------------------------------------------

def named_teacher(tmp_path, names, folder="named"):
    """A tiny saved teacher whose config carries `names` as id2label."""
    d = make_tiny_teacher(tmp_path, num_labels=len(names), name=folder)
    cfg = json.loads((d / "config.json").read_text())
    cfg["id2label"] = {str(i): n for i, n in enumerate(names)}
    cfg["label2id"] = {n: i for i, n in enumerate(names)}
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def sentiment_files(tmp_path):
    rows = [(t, "pos" if i % 2 else "neg") for i, t in enumerate(texts(40))]
    return write_csv(tmp_path / "sent.csv", ("text", "label"), rows)


def test_teacher_with_another_label_order_is_refused(tmp_path, capsys):
    from hybridsearch.teacher import load_teacher, teacher_logits

    path = sentiment_files(tmp_path)
    task = load_task(str(path))
    swapped = named_teacher(tmp_path, ["pos", "neg"])
    with pytest.raises(UserError) as exc:
        load_teacher(swapped, task=task)
    one_line_error(exc, "['pos', 'neg']", "['neg', 'pos']", "another order", "hybridsearch teacher finetune",
                   "trained on this label order")
    with pytest.raises(UserError, match="another order"):
        teacher_logits(load_teacher(swapped), task, max_length=16)
    assert_user_error(["teacher", "logits", "--task", path, "--teacher", swapped, "--max-length", "16"], capsys,
                      "another order", "hybridsearch teacher finetune")


def test_teacher_with_other_label_names_is_refused(tmp_path):
    from hybridsearch.teacher import load_teacher

    task = load_task(str(sentiment_files(tmp_path)))
    with pytest.raises(UserError) as exc:
        load_teacher(named_teacher(tmp_path, ["entailment", "contradiction"]), task=task)
    one_line_error(exc, "other labels", "['entailment', 'contradiction']")


def test_teacher_with_generic_or_matching_names_passes(tmp_path):
    from hybridsearch.teacher import load_teacher, teacher_logits

    task = load_task(str(sentiment_files(tmp_path)))
    generic = load_teacher(make_tiny_teacher(tmp_path, name="generic"), task=task)  # LABEL_0, LABEL_1
    assert generic.model.config.id2label[0] == "LABEL_0"
    same = load_teacher(named_teacher(tmp_path, ["NEG", "Pos"], folder="same"), task=task)  # case is ignored
    assert teacher_logits(same, task, max_length=16)["test"].shape == (len(task.splits["test"]), 2)
