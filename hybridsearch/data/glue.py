"""GLUE classification tasks through `datasets.load_dataset("glue", name)` (needs a network).

GLUE's test labels are hidden, so: GLUE `validation` (MNLI: `validation_matched`) becomes
our **test** split, and our **dev** split is a fixed-seed stratified 10% of GLUE `train`
(the rest is our train). Model selection then never sees the reported split.
"""

from __future__ import annotations

from pathlib import Path

from hybridsearch.data.task import Task, TaskSpec, make_task, stratified_split
from hybridsearch.errors import UserError

# name -> (text column, pair column or None, label names, metric, GLUE eval split)
GLUE_TASKS = {
    "sst2": ("sentence", None, ["negative", "positive"], "accuracy", "validation"),
    "cola": ("sentence", None, ["unacceptable", "acceptable"], "mcc", "validation"),
    "mrpc": ("sentence1", "sentence2", ["not_equivalent", "equivalent"], "f1", "validation"),
    "qqp": ("question1", "question2", ["not_duplicate", "duplicate"], "f1", "validation"),
    "mnli": ("premise", "hypothesis", ["entailment", "neutral", "contradiction"], "accuracy",
             "validation_matched"),
    "qnli": ("question", "sentence", ["entailment", "not_entailment"], "accuracy", "validation"),
    "rte": ("sentence1", "sentence2", ["entailment", "not_entailment"], "accuracy", "validation"),
}
DEV_FRACTION = 0.10


def load_glue(name: str, cache: Path) -> Task:
    """Load one GLUE task (see module docstring for the split mapping)."""
    if name == "stsb":
        raise UserError("stsb (STS-B) is a regression task and regression is not supported; "
                        "choose a classification task (sst2, mnli, qqp, qnli, mrpc, cola, rte, mr)")
    text_col, pair_col, names, metric, eval_split = GLUE_TASKS[name]
    import datasets

    try:
        raw = datasets.load_dataset("glue", name, cache_dir=str(Path(cache) / "datasets"))
    except Exception as exc:  # network, hub or offline-mode errors all surface here
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"could not load GLUE task {name} with datasets ({msg}); GLUE needs network access "
                        "to the Hugging Face hub, or use the offline task mr or a local file") from None

    def columns(split) -> dict[str, list]:
        cols = {"text": list(split[text_col]), "label": list(split["label"])}
        if pair_col:
            cols["text_pair"] = list(split[pair_col])
        return cols

    full = columns(raw["train"])
    train_idx, dev_idx, _ = stratified_split(full["label"], fractions=(1 - DEV_FRACTION, DEV_FRACTION, 0.0))
    splits = {
        "train": {k: [v[i] for i in train_idx] for k, v in full.items()},
        "dev": {k: [v[i] for i in dev_idx] for k, v in full.items()},
        "test": columns(raw[eval_split]),
    }
    spec = TaskSpec(name=name, is_pair=pair_col is not None, id2label=dict(enumerate(names)), metric=metric)
    return make_task(spec, splits, source=f"GLUE {name} via datasets (test = GLUE {eval_split})")
