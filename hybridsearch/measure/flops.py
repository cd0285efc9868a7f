"""Analytic FLOPs per component, from a config alone; and a torch cross-check.

Conventions (also in docs/profile.md):
- a multiply-add is 2 FLOPs: a Linear (in -> out) costs 2*in*out per token plus
  `out` for its bias; attention scores and context cost 2*T*T*d_head each per head;
- elementwise work is counted per element: residual add 1, attention scaling 1,
  softmax 5 (max, subtract, exp, sum, divide), LayerNorm 8 (mean 1, centre 1,
  square 1, variance sum 1, normalise 2, scale 1, shift 1), activations (GELU,
  tanh, ...) 8, embedding sum 1 per added table; lookups 0; dropout 0 (inference);
- the padding mask add is not counted: transformers skips it when nothing is padded.

`matmul` FLOPs are what `torch.utils.flop_counter.FlopCounterMode` counts (it
counts matmuls only, without bias); `other` are the elementwise FLOPs above.
"""

from __future__ import annotations

from dataclasses import dataclass

SOFTMAX_FLOPS = 5
LAYERNORM_FLOPS = 8
ACTIVATION_FLOPS = 8


@dataclass(frozen=True)
class Elementwise:
    """The elementwise costs above, per element: what a block's FLOPs hook (`BlockProfile.flops`) gets."""

    softmax: int = SOFTMAX_FLOPS
    layernorm: int = LAYERNORM_FLOPS
    activation: int = ACTIVATION_FLOPS


EW = Elementwise()


@dataclass
class Flops:
    """FLOPs of one component for one forward pass."""

    matmul: int = 0
    other: int = 0

    @property
    def total(self) -> int:
        return self.matmul + self.other


def _cfg(config, name: str, default=None):
    value = getattr(config, name, default)
    return default if value is None else value


def bert_component_flops(config, seq_len: int, batch: int = 1) -> dict[str, Flops]:
    """FLOPs per BERT component (names as in `components.BERT_COMPONENTS`) for (batch, seq_len) inputs."""
    H = int(config.hidden_size)
    L = int(config.num_hidden_layers)
    A = int(config.num_attention_heads)
    inter = int(config.intermediate_size)
    E = int(_cfg(config, "embedding_size", H))
    labels = int(_cfg(config, "num_labels", 2))
    B, T = int(batch), int(seq_len)
    N = B * T  # tokens
    dh = H // A
    has_types = int(_cfg(config, "type_vocab_size", 0)) > 0
    emb_tables = 3 if has_types else 2
    emb = Flops(other=N * E * (emb_tables - 1) + N * E * LAYERNORM_FLOPS)
    if E != H:  # factorised embeddings (ELECTRA-small style): projection E -> H
        emb.matmul += 2 * N * E * H
        emb.other += N * H
    qkv = Flops(matmul=L * 3 * 2 * N * H * H, other=L * 3 * N * H)
    scores = B * A * T * T  # attention score elements per layer
    core = Flops(
        matmul=L * 2 * (2 * B * A * T * T * dh),  # Q K^T and P V
        other=L * scores * (1 + SOFTMAX_FLOPS),  # scaling + softmax
    )
    out = Flops(matmul=L * 2 * N * H * H, other=L * N * H)
    ffn = Flops(
        matmul=L * 2 * (2 * N * H * inter),
        other=L * (N * inter + N * H + N * inter * ACTIVATION_FLOPS),  # biases + activation
    )
    norm = Flops(other=L * 2 * (N * H + N * H * LAYERNORM_FLOPS))  # 2 residual adds + 2 LayerNorms
    head = Flops(
        matmul=2 * B * H * H + 2 * B * H * labels,  # pooler dense on [CLS], classifier
        other=B * H + B * H * ACTIVATION_FLOPS + B * labels,
    )
    return {
        "embeddings": emb,
        "attn_qkv": qkv,
        "attn_core": core,
        "attn_out": out,
        "ffn": ffn,
        "norm_residual": norm,
        "head": head,
    }


def component_flops(config_or_arch, seq_len: int, batch: int = 1) -> dict[str, Flops]:
    """Analytic FLOPs per component for a BERT-family config or a `StudentArch`."""
    if hasattr(config_or_arch, "layer_dims"):  # a StudentArch
        from hybridsearch.measure.student_components import student_component_flops

        return student_component_flops(config_or_arch, seq_len, batch)
    return bert_component_flops(config_or_arch, seq_len, batch)


def model_flops(config_or_arch, seq_len: int, batch: int = 1) -> int:
    """Total analytic FLOPs (matmul + elementwise) of one forward pass."""
    return sum(f.total for f in component_flops(config_or_arch, seq_len, batch).values())


def counted_matmul_flops(model, cmap, inputs: dict) -> dict[str, int]:
    """Matmul FLOPs per component as counted by torch's FlopCounterMode on one forward.

    Each mapped module's exclusive count (its own minus its mapped children's) goes to
    its component, exactly like time in the profiler.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    root = type(model).__name__
    modules = dict(model.named_modules())
    called: set[str] = set()  # containers never called (e.g. a ModuleDict) are transparent
    handles = [modules[n].register_forward_pre_hook(lambda *_a, n=n: called.add(n)) for n in cmap.owner]
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(**inputs)
    finally:
        for h in handles:
            h.remove()
    inclusive: dict[str, int] = {}
    for key, per_op in counter.get_flop_counts().items():
        if key == "Global":
            continue
        name = key[len(root) + 1 :] if key.startswith(root + ".") else ("" if key == root else None)
        if name is not None:
            inclusive[name] = int(sum(per_op.values()))
    result = {c: 0 for c in cmap.names()}
    mapped = {n for n in cmap.owner if n in called} | {""}
    for name in mapped:
        own = inclusive.get(name, 0)
        for child in _mapped_children(name, mapped):
            own -= inclusive.get(child, 0)
        result[cmap.owner[name][0]] += own
    return result


def _mapped_children(name: str, mapped: set[str]) -> list[str]:
    """Mapped modules whose nearest mapped ancestor is `name`."""
    out = []
    for other in mapped:
        if other == name or not (name == "" or other.startswith(name + ".")):
            continue
        parts = other.split(".")
        parent = next((".".join(parts[:c]) for c in range(len(parts) - 1, -1, -1) if ".".join(parts[:c]) in mapped), None)
        if parent == name:
            out.append(other)
    return out
