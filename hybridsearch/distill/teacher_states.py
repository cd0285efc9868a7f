"""Teacher hidden states computed once, so KD-EO / embedding losses need no teacher forward per step.

The teacher is frozen and in eval mode during distillation, so its hidden states for a
training row never change: `TeacherStates.compute(model, enc)` runs it once over every
row (sorted by length, no grad) and keeps `hidden_states[l]` for l = 0 (embedding output)
.. L as float16, real tokens only: per layer one flat (total_tokens, H) tensor, plus each
row's offset and length. `outputs(idx, T)` rebuilds what the teacher would return for the
trainer's batch `idx` trimmed to T tokens: `.hidden_states[l]` (B, T, H) float32, padding
zero (the losses mask it). The padded positions are the only difference from a live
forward pass besides float16 rounding (about 1e-3 relative).

`teacher_states(model, fingerprint, enc, cache_dir)` stores them under
`<cache>/teacher-states/<key>/` (key: teacher fingerprint + sha256 of the encoded rows),
one file per layer, memory-mapped on load, written atomically. Attention maps (KD-AM) are
not stored (T x T per head per row is too large); recipes with `kd_am` run the teacher.
On mr (6,800 train + transfer rows) the store is 7 x 145 MB, built in one teacher pass (33.5 s on 2 cores).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

FORMAT = "hybridsearch-teacher-states-1"


class TeacherStates:
    """Per-layer hidden states of the rows of one encoding (see the module docstring)."""

    def __init__(self, layers: dict[int, torch.Tensor], offsets: torch.Tensor, lengths: torch.Tensor,
                 num_layers: int, hidden_size: int):
        self.layers = layers  # l -> (total_tokens, H) float16
        self.offsets, self.lengths = offsets, lengths  # (N,) int64 each
        self.num_hidden_layers, self.hidden_size = num_layers, hidden_size

    @classmethod
    @torch.no_grad()
    def compute(cls, model, enc: dict, batch_size: int = 64, device: str = "cpu", desc: str | None = None):
        """Run `model` (a BERT-like `transformers` model) once over all rows of `enc`."""
        from tqdm.auto import tqdm

        mask = enc["attention_mask"]  # (N, T_max)
        lengths = mask.sum(1).long()  # (N,)
        n = lengths.shape[0]
        offsets = torch.zeros(n, dtype=torch.long)
        offsets[1:] = torch.cumsum(lengths, 0)[:-1]
        total = int(lengths.sum())
        cfg = model.config
        L, H = cfg.num_hidden_layers, cfg.hidden_size
        layers = {i: torch.empty(total, H, dtype=torch.float16) for i in range(L + 1)}
        was_training = model.training
        model.to(device).eval()
        order = torch.argsort(lengths, descending=True)  # long rows first: padding stays small
        for start in tqdm(range(0, n, batch_size), desc=desc or "teacher states", disable=desc is None,
                          leave=False, unit="batch"):
            idx = order[start:start + batch_size]
            T = int(lengths[idx].max())
            batch = {k: v[idx, :T].to(device) for k, v in enc.items()}  # (b, T)
            states = model(**batch, output_hidden_states=True).hidden_states  # L+1 x (b, T, H)
            keep = torch.arange(T)[None, :] < lengths[idx][:, None]  # (b, T) real tokens
            dest = (offsets[idx][:, None] + torch.arange(T)[None, :])[keep]  # (real tokens,)
            for i, h in enumerate(states):
                layers[i][dest] = h.float().cpu()[keep].to(torch.float16)
        model.train(was_training)
        return cls(layers, offsets, lengths, L, H)

    def outputs(self, idx: torch.Tensor, T: int, device="cpu", layers=None) -> SimpleNamespace:
        """Teacher outputs for rows `idx` trimmed to T tokens: `.hidden_states` is a tuple of
        L+1 entries, (B, T, H) float32 for the stored layers in `layers` (all when None), else None."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        pos = torch.arange(T)[None, :]  # (1, T)
        real = pos < self.lengths[idx][:, None]  # (B, T)
        flat = torch.where(real, self.offsets[idx][:, None] + pos, 0)  # (B, T), 0 = any valid row
        wanted = set(self.layers) if layers is None else set(layers)
        hidden = []
        for i in range(self.num_hidden_layers + 1):
            if i not in wanted or i not in self.layers:
                hidden.append(None)
                continue
            h = self.layers[i][flat.reshape(-1)].view(*flat.shape, -1).float()  # (B, T, H)
            hidden.append((h * real[..., None]).to(device))
        return SimpleNamespace(hidden_states=tuple(hidden), attentions=None)

    # -- disk -----------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """One file per layer plus an index; written into a temporary folder and renamed."""
        folder = Path(folder)
        tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        for i, h in self.layers.items():
            torch.save(h, tmp / f"layer{i}.pt")
        torch.save({"format": FORMAT, "offsets": self.offsets, "lengths": self.lengths,
                    "num_layers": self.num_hidden_layers, "hidden_size": self.hidden_size}, tmp / "index.pt")
        try:
            tmp.rename(folder)
        except OSError:  # another process stored the same states first: keep theirs
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path) -> TeacherStates:
        folder = Path(folder)
        index = torch.load(folder / "index.pt", weights_only=True)
        if index.get("format") != FORMAT:
            raise ValueError(f"unknown format {index.get('format')!r}")
        layers = {i: torch.load(folder / f"layer{i}.pt", mmap=True, weights_only=True)
                  for i in range(index["num_layers"] + 1)}
        return cls(layers, index["offsets"], index["lengths"], index["num_layers"], index["hidden_size"])


def rows_key(fingerprint: str, enc: dict) -> str:
    """Cache key of (teacher, encoded rows): sha256 over the fingerprint and the token / mask tensors."""
    h = hashlib.sha256(str(fingerprint).encode())
    for name in sorted(enc):
        h.update(name.encode())
        h.update(enc[name].contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def teacher_states(model, fingerprint: str, enc: dict, cache_dir=None, device: str = "cpu",
                   verbose: bool = True) -> TeacherStates:
    """The rows' teacher states from `<cache>/teacher-states/`, computed and stored when missing."""
    from hybridsearch.paths import cache_dir as resolve_cache

    folder = resolve_cache(cache_dir) / "teacher-states" / rows_key(fingerprint, enc)
    if folder.exists():
        try:
            return TeacherStates.load(folder)
        except Exception as exc:  # noqa: BLE001 - any unreadable store (truncated, unpickling) is rebuilt
            print(f"teacher-state cache {folder} unreadable ({exc}); rebuilding it", file=sys.stderr)
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    states = TeacherStates.compute(model, enc, device=device, desc="teacher states" if verbose else None)
    model.to("cpu")
    folder.parent.mkdir(parents=True, exist_ok=True)
    states.save(folder)
    if verbose:
        print(f"teacher hidden states computed in {time.perf_counter() - start:.1f}s, cached at {folder}",
              file=sys.stderr)
    return TeacherStates.load(folder) if folder.exists() else states
