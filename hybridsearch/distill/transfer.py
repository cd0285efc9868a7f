"""Distillation data beyond the labelled training set: a transfer set and augmentation.

- Transfer set: the task's unlabeled in-domain sentences (`data.load_transfer_texts`;
  for mr the pang&lee1 sentences, already de-duplicated against every mr split),
  labelled by the teacher with soft logits. Logits are cached on disk per
  (teacher fingerprint, texts, max length), like the task's own teacher logits.
- Augmentation in the style of Tang et al. 2019 ("Distilling task-specific knowledge
  from BERT into simple neural networks"): per word, masking with p_mask, else
  replacement with p_neighbour, then with p_ngram keep only a random n-gram (n in 1..5).
  Tang et al. replace a word with one of the same part of speech; no POS tagger is
  available offline here, so a word is replaced by one of its 5 nearest neighbours
  (cosine) in the teacher's word-embedding matrix instead. Deterministic for a seed.

Rows without a hard label carry `IGNORE` (-100) as label: they feed only the soft losses.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass, field

import numpy as np

from hybridsearch.errors import UserError

IGNORE = -100


@dataclass
class DistillData:
    """Training rows for distillation: texts, optional pair texts, labels (IGNORE = none), teacher logits (N, C)."""

    texts: list[str]
    labels: np.ndarray
    logits: np.ndarray
    text_pairs: list[str] | None = None
    sources: dict[str, int] = field(default_factory=dict)  # rows per source, for the log

    def __len__(self) -> int:
        return len(self.texts)


def _digest(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def teacher_label(teacher, texts, text_pairs=None, max_length=64, cache_dir=None, batch_size=64, device="cpu"):
    """Teacher logits (N, C) float32 for `texts`, cached under `<cache>/transfer-logits/` (keyed by teacher and texts)."""
    from hybridsearch import paths
    from hybridsearch.teacher import predict_logits

    key = _digest(getattr(teacher, "fingerprint", None), max_length, list(texts), list(text_pairs or []))
    path = paths.cache_dir(cache_dir) / "transfer-logits" / f"{key}.npy"  # None -> $HYBRIDSEARCH_CACHE or default
    if path.exists():
        return np.load(path)
    if len(texts):
        logits = predict_logits(teacher.model, teacher.tokenizer, list(texts), list(text_pairs) if text_pairs else None,
                                max_length, batch_size, desc="teacher-labelling", device=device)  # (N, C)
    else:
        logits = np.zeros((0, teacher.model.config.num_labels), np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")  # concurrent workers: each writes its own, then renames
    np.save(tmp, logits)
    tmp.replace(path)
    return logits


class Augmenter:
    """Tang et al. 2019 style rule-based augmentation with embedding-neighbour replacement."""

    def __init__(self, tokenizer, embeddings, p_mask=0.1, p_neighbour=0.1, p_ngram=0.25, max_n=5, k=5):
        self.tokenizer = tokenizer
        self.vocab = tokenizer.get_vocab()  # token -> id
        self.id2tok = {i: t for t, i in self.vocab.items()}
        self.mask_token = tokenizer.mask_token or "[MASK]"
        self.p_mask, self.p_neighbour, self.p_ngram, self.max_n, self.k = p_mask, p_neighbour, p_ngram, max_n, k
        emb = np.asarray(embeddings, dtype=np.float32)  # (V, H)
        self.word_ids = np.array(
            [i for t, i in self.vocab.items() if t.isalpha() and not t.startswith("[") and i < len(emb)], dtype=np.int64
        )
        unit = emb[self.word_ids]
        self.unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)  # (W, H)
        self.row_of = {int(i): r for r, i in enumerate(self.word_ids)}
        self._neigh: dict[str, list[str]] = {}

    def neighbours(self, word: str) -> list[str]:
        """Up to k nearest whole-word tokens (cosine in the embedding matrix); [] if not a vocab word."""
        if word not in self._neigh:
            row = self.row_of.get(self.vocab.get(word, -1))
            if row is None:
                self._neigh[word] = []
            else:
                sims = self.unit @ self.unit[row]  # (W,)
                sims[row] = -np.inf
                top = np.argpartition(-sims, min(self.k, len(sims) - 1))[: self.k]
                top = top[np.argsort(-sims[top])]
                self._neigh[word] = [self.id2tok[int(self.word_ids[j])] for j in top]
        return self._neigh[word]

    def augment(self, text: str, rng: random.Random) -> str:
        words = text.split()
        out = []
        for w in words:
            u = rng.random()
            if u < self.p_mask:
                out.append(self.mask_token)
            elif u < self.p_mask + self.p_neighbour:
                cands = self.neighbours(w.lower())
                out.append(rng.choice(cands) if cands else w)
            else:
                out.append(w)
        if out and rng.random() < self.p_ngram:
            n = rng.randint(1, min(self.max_n, len(out)))
            start = rng.randint(0, len(out) - n)
            out = out[start:start + n]
        return " ".join(out)


def augment_texts(augmenter: Augmenter, texts, copies: int, seed: int = 0, text_pairs=None):
    """`copies` augmented versions of each text (and pair text), deterministic by seed, deduped
    against the originals and each other. Returns (texts, pairs or None, source row index)."""
    rng = random.Random(seed)
    seen = set(zip(texts, text_pairs)) if text_pairs else set(texts)
    out_t, out_p, src = [], [], []
    for i, text in enumerate(texts):
        for _ in range(copies):
            a = augmenter.augment(text, rng)
            b = augmenter.augment(text_pairs[i], rng) if text_pairs else None
            key = (a, b) if text_pairs else a
            if not a.strip() or key in seen:
                continue
            seen.add(key)
            out_t.append(a)
            out_p.append(b)
            src.append(i)
    return out_t, (out_p if text_pairs else None), src


def build_distill_data(task, teacher, train_logits, recipe, cache_dir=None, device="cpu") -> DistillData:
    """Train rows (with labels and cached teacher logits) + transfer rows + augmented rows."""
    train = task.splits["train"]
    texts = list(train["text"])
    pairs = list(train["text_pair"]) if task.spec.is_pair else None
    labels = [np.asarray(train["label"], dtype=np.int64)]
    logits = [np.asarray(train_logits, dtype=np.float32)]
    sources = {"train": len(texts)}
    all_texts, all_pairs = list(texts), (list(pairs) if pairs else None)
    if recipe.transfer:
        from hybridsearch.data import load_transfer_texts

        extra = list(load_transfer_texts(task, cache_dir))
        if not extra:
            raise UserError(f"task {task.spec.name!r} has no transfer set; set transfer to false in the recipe")
        if task.spec.is_pair:
            raise UserError("transfer sets are single sentences; set transfer to false for a pair task")
        if 0 < recipe.transfer_limit < len(extra):  # a fixed subset (seed 0), the same for every recipe seed
            keep = np.sort(np.random.default_rng(0).permutation(len(extra))[: recipe.transfer_limit])
            extra = [extra[i] for i in keep]
        logits.append(teacher_label(teacher, extra, None, recipe.max_length, cache_dir, device=device))
        labels.append(np.full(len(extra), IGNORE, dtype=np.int64))
        all_texts += extra
        sources["transfer"] = len(extra)
    if recipe.augment > 0:
        emb = teacher.model.get_input_embeddings().weight.detach().float().cpu().numpy()
        aug = Augmenter(teacher.tokenizer, emb)
        a_texts, a_pairs, _ = augment_texts(aug, texts, recipe.augment, recipe.seed, pairs)
        logits.append(teacher_label(teacher, a_texts, a_pairs, recipe.max_length, cache_dir, device=device))
        labels.append(np.full(len(a_texts), IGNORE, dtype=np.int64))
        all_texts += a_texts
        if all_pairs is not None:
            all_pairs += a_pairs
        sources["augmented"] = len(a_texts)
    return DistillData(all_texts, np.concatenate(labels), np.concatenate(logits), all_pairs, sources)
