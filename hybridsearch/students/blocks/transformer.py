"""`transformer`: BERT's post-LN self-attention layer, built from parts.

Head count and head size are independent of the hidden size, so a student with
pruned heads holds physically fewer (smaller) query/key/value/out matrices.
Optional per-layer restrictions: attention decomposition (tokens attend only
within their own segment) and a local window (|i - j| <= w; CLS stays global).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hybridsearch.students.blocks import BlockField, BlockInfo, BlockProfile, register_block
from hybridsearch.students.blocks.base import FFN, BlockContext, PostLNLayer, tracing


def attention_bias(ctx: BlockContext, decomposition: bool, window: int | None, dtype) -> torch.Tensor | None:
    """Additive mask: 0 where query i may attend key j, dtype-min elsewhere.

    Shape (B, 1, 1, T) for plain key padding, (B, 1, T, T) with decomposition / window;
    None when every query may attend every key (no padding, no restriction).
    Memoised in ctx.cache per (decomposition, window).
    """
    key = ("attn_bias", decomposition, window, dtype)
    if key in ctx.cache:
        return ctx.cache[key]
    if not decomposition and window is None and not tracing() and bool(ctx.mask.all()):
        ctx.cache[key] = None  # nothing to mask: lets SDPA pick its fastest kernel
        return None
    allowed = ctx.mask[:, None, None, :]  # (B, 1, 1, T) keys that are real tokens
    T = ctx.mask.shape[1]
    if decomposition:
        tt = ctx.token_type_ids
        allowed = allowed & (tt[:, None, :, None] == tt[:, None, None, :])  # (B, 1, T, T)
    if window is not None:
        pos = torch.arange(T, device=ctx.mask.device)
        near = (pos[:, None] - pos[None, :]).abs() <= window  # (T, T)
        near = near | (pos[:, None] == 0) | (pos[None, :] == 0)  # CLS attends / is attended globally
        allowed = allowed & near[None, None]  # (B, 1, T, T)
    zero = torch.zeros((), dtype=dtype, device=ctx.mask.device)
    bias = torch.where(allowed, zero, torch.finfo(dtype).min)
    ctx.cache[key] = bias
    return bias


class SelfAttention(nn.Module):
    """Multi-head self-attention H_in -> heads*head_size -> H (the token mixer)."""

    def __init__(self, in_hidden: int, hidden: int, heads: int, head_size: int, attn_dropout: float = 0.1,
                 decomposition: bool = False, local_window: int | None = None):
        super().__init__()
        inner = heads * head_size
        self.heads, self.head_size = heads, head_size
        self.query = nn.Linear(in_hidden, inner)
        self.key = nn.Linear(in_hidden, inner)
        self.value = nn.Linear(in_hidden, inner)
        self.out = nn.Linear(inner, hidden)
        self.attn_dropout = attn_dropout
        self.decomposition, self.local_window = decomposition, local_window

    def forward(self, x: torch.Tensor, ctx: BlockContext):
        B, T, _ = x.shape
        nh, hs = self.heads, self.head_size

        def split(t):  # (B, T, nh*hs) -> (B, nh, T, hs)
            return t.view(B, T, nh, hs).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        bias = attention_bias(ctx, self.decomposition, self.local_window, q.dtype)
        p_drop = self.attn_dropout if self.training else 0.0
        if ctx.output_attentions:
            scores = q @ k.transpose(-1, -2) / math.sqrt(hs)  # (B, nh, T, T)
            scores = scores + bias if bias is not None else scores
            probs = scores.softmax(dim=-1)
            y = F.dropout(probs, p_drop, self.training) @ v  # (B, nh, T, hs)
        else:
            probs = None
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p_drop)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, nh * hs)  # (B, T, nh*hs)
        return self.out(y), probs  # (B, T, H), (B, nh, T, T) | None


# ---- descriptor: what measure/, search/ and the report read -------------------------------------
def _latency_macs(v: dict, B: int, T: int) -> dict:
    """Latency-fallback features of the attention mixer (v: parsed key, tags h, s)."""
    inner = v["h"] * v["s"]
    return {"lin": B * T * (3 * v["in"] * inner + inner * v["out"]), "attn": 2.0 * B * v["h"] * T * T * v["s"]}


def _flops(spec, h_in: int, h: int, B: int, T: int, ew) -> dict:
    """Analytic FLOPs of SelfAttention: {component: (matmul, other)}."""
    N, nh, hs = B * T, spec.heads, spec.head_size
    inner = nh * hs
    return {
        "attn_qkv": (3 * 2 * N * h_in * inner, 3 * N * inner),
        "attn_core": (2 * 2 * B * nh * T * T * hs, B * nh * T * T * (1 + ew.softmax)),
        "attn_out": (2 * N * inner * h, N * h),
    }


def _map_parts(mixer, mp: str, put) -> None:
    """Profiler rows of SelfAttention's modules."""
    put(mp, "attn_core", "self-attention minus its Linears (split, SDPA, merge)", is_glue=True)
    for proj in ("query", "key", "value"):
        put(f"{mp}.{proj}", "attn_qkv", "Q/K/V Linear modules")
    put(f"{mp}.out", "attn_out", "output Linear")


INFO = BlockInfo(
    fields=(
        BlockField("heads", required=True, tag="h", examples=(2,)),
        BlockField("head_size", required=True, tag="s", examples=(8,)),
        BlockField("ffn", required=True, tag="f", examples=(24,)),
        BlockField("attn_decomposition", bool, key=None, default=False, tag="d", examples=(False, True)),
        BlockField("local_window", key=None, tag="w", examples=(None, 2)),
    ),
    label=("attn", "heads", "{}h"),
    color="#4C72B0",
    cost_rank=3,
    attention=True,
    latency_macs=_latency_macs,
    profile=BlockProfile(
        components=(("attn_qkv", "Attention input projections (Q, K, V)", "Q/K/V proj"),
                    ("attn_core", "Attention core (SDPA: scores, softmax, context)", "attention core"),
                    ("attn_out", "Attention output projection", "attn out proj")),
        map_parts=_map_parts, flops=_flops, uncounted=frozenset({"attn_core"}),  # SDPA: invisible to the counter
    ),
)


@register_block("transformer", INFO)
class TransformerBlock(PostLNLayer):
    """Post-LN BERT layer: SelfAttention mixer + FFN, passed into PostLNLayer."""

    def __init__(self, in_hidden: int, hidden: int, heads: int, head_size: int, ffn: int,
                 attn_decomposition: bool = False, local_window: int | None = None,
                 act: str = "gelu", dropout: float = 0.1, attn_dropout: float = 0.1, eps: float = 1e-12):
        mixer = SelfAttention(in_hidden, hidden, heads, head_size, attn_dropout, attn_decomposition, local_window)
        super().__init__(mixer, FFN(hidden, ffn, act), in_hidden, hidden, dropout, eps)

    @classmethod
    def kwargs_from_spec(cls, spec, in_hidden, hidden, arch) -> dict:
        return dict(in_hidden=in_hidden, hidden=hidden, heads=spec.heads, head_size=spec.head_size,
                    ffn=spec.ffn, attn_decomposition=spec.attn_decomposition, local_window=spec.local_window,
                    act=arch.hidden_act, dropout=arch.dropout, attn_dropout=arch.attn_dropout,
                    eps=arch.layer_norm_eps)
