"""HybridStudent: the plain `nn.Module` a `StudentArch` describes.

Layout (state-dict names):
    embeddings.word / .position / .token_type   nn.Embedding (rows, E) / (P, E) / (types, E)
    embeddings.norm                             LayerNorm(E)
    embeddings.project                          Linear(E, hidden), only when E != hidden
    embeddings.token_map                        buffer (vocab_size,) teacher id -> row, only with kept_tokens
    layers["i"]                                 block of layer i (shared layers use their group's first index)
    pooler, classifier                          Linear(H, H) + tanh, Linear(H, C) (BERT's head)
Every weight compression may wrap is a plain `nn.Linear` attribute.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hybridsearch.errors import UserError
from hybridsearch.students.arch import StudentArch
from hybridsearch.students.blocks import BlockContext, block_from_spec
from hybridsearch.students.blocks.base import tracing
from hybridsearch.students.quant import fake_quant_weight, is_fake_quant


@dataclass
class StudentOutput:
    """logits (B, C); hidden_states: embedding output then each layer's output (a skip layer
    repeats its input), each (B, T, H_l); attentions: per layer (B, heads, T, T) or None."""

    logits: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor | None, ...] | None = None


class StudentEmbeddings(nn.Module):
    """Word + position + segment embeddings at width E, LayerNorm, dropout, optional E -> hidden."""

    def __init__(self, arch: StudentArch):
        super().__init__()
        spec, E = arch.embedding, arch.embedding_size
        self.word = nn.Embedding(spec.rows, E)
        self.position = nn.Embedding(spec.max_positions, E)
        self.token_type = nn.Embedding(spec.type_vocab, E)
        self.norm = nn.LayerNorm(E, eps=arch.layer_norm_eps)
        self.drop = nn.Dropout(arch.dropout)
        self.project = nn.Linear(E, arch.hidden) if E != arch.hidden else None
        self.max_positions = spec.max_positions
        if spec.kept_tokens is not None:
            row = {t: i for i, t in enumerate(spec.kept_tokens)}
            table = torch.tensor([row.get(t, row[spec.unk_id]) for t in range(spec.vocab_size)])
            self.register_buffer("token_map", table, persistent=True)  # (vocab_size,) teacher id -> row
        else:
            self.token_map = None

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        T = input_ids.shape[1]
        if T > self.max_positions and not tracing():
            raise UserError(f"input length {T} exceeds max_positions {self.max_positions}; truncate the input")
        ids = self.token_map[input_ids] if self.token_map is not None else input_ids  # (B, T)
        pos = torch.arange(T, device=input_ids.device)[None, :]  # (1, T)
        x = _lookup(self.word, ids) + self.position(pos) + self.token_type(token_type_ids)  # (B, T, E)
        x = self.drop(self.norm(x))
        return self.project(x) if self.project is not None else x  # (B, T, H)


def _lookup(table: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
    """table(ids) (B, T, E). When the table's only parametrization is weight fake quantization
    (QAT), quantize the looked-up rows instead of the whole table: scales are per row, so the
    values and the straight-through gradient are the same, at a fraction of the cost (the word
    table is about half of a MiniLM teacher)."""
    plist = getattr(table, "parametrizations", None)
    chain = plist["weight"] if plist is not None and "weight" in plist else None
    if chain is None or len(chain) != 1 or not is_fake_quant(chain[0]) or tracing():
        return table(ids)
    rows = nn.functional.embedding(ids, chain.original, table.padding_idx)  # (B, T, E)
    if not chain[0].enabled:  # quantization switched off (late QAT's float phase)
        return rows
    flat = fake_quant_weight(rows.reshape(-1, rows.shape[-1]), chain[0].bits)  # (B*T, E): one scale a row
    return flat.reshape(rows.shape)


class HybridStudent(nn.Module):
    """A student built from a validated `StudentArch`; no search machinery inside."""

    def __init__(self, arch: StudentArch):
        super().__init__()
        arch.validate()
        self.arch = arch
        self.embeddings = StudentEmbeddings(arch)
        self.share_map = arch.share_map()  # layer i runs layers[str(share_map[i])]
        self.layers = nn.ModuleDict()
        for i, ((h_in, h_out), spec) in enumerate(zip(arch.layer_dims(), arch.layers)):
            if self.share_map[i] == i:
                self.layers[str(i)] = block_from_spec(spec, h_in, h_out, arch)
        H = arch.out_hidden
        self.pooler = nn.Linear(H, H)
        self.drop = nn.Dropout(arch.dropout)
        self.classifier = nn.Linear(H, arch.num_labels)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        """BERT's init: normal(0, 0.02) weights, zero biases, unit LayerNorm."""
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def save(self, directory, tokenizer=None):
        """Export (config, safetensors weights, arch JSON, tokenizer); see `students.export`."""
        from hybridsearch.students.export import save_student

        return save_student(self, directory, tokenizer)

    @classmethod
    def load(cls, directory) -> HybridStudent:
        """Load a student saved by `save` (no unpickling)."""
        from hybridsearch.students.export import load_student

        return load_student(directory)

    def block(self, i: int) -> nn.Module:
        """The module layer i runs (shared layers return the same module)."""
        return self.layers[str(self.share_map[i])]

    def pool(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, T, H), (B, T) -> (B, H)
        kind = self.arch.pooling
        if kind == "cls":
            return h[:, 0]
        m = mask[..., None].to(h.dtype)  # (B, T, 1)
        if kind == "mean":
            return (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        return h.masked_fill(m == 0, torch.finfo(h.dtype).min).amax(dim=1)  # max

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, output_hidden_states: bool = False,
                output_attentions: bool = False) -> StudentOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        mask = attention_mask.bool()  # (B, T)
        ctx = BlockContext(mask=mask, token_type_ids=token_type_ids, output_attentions=output_attentions)
        h = self.embeddings(input_ids, token_type_ids)  # (B, T, H0)
        hidden, attns = [h], []
        for i in range(len(self.arch.layers)):
            h, attn = self.block(i)(h, ctx)  # (B, T, H_i), (B, nh, T, T) | None
            hidden.append(h)
            attns.append(attn)
        pooled = torch.tanh(self.pooler(self.pool(h, mask)))  # (B, H)
        logits = self.classifier(self.drop(pooled))  # (B, C)
        return StudentOutput(
            logits=logits,
            hidden_states=tuple(hidden) if output_hidden_states else None,
            attentions=tuple(attns) if output_attentions else None,
        )
