"""PNG figures for `hybridsearch profile`: the Figure-2-style breakdown and the sweeps.

matplotlib is imported inside the functions (Agg backend, no display needed).
"""

from __future__ import annotations

from pathlib import Path

COLORS = {
    "embeddings": "#8c6d31",
    "attn_qkv": "#6baed6",
    "attn_core": "#d62728",
    "attn_out": "#3182bd",
    "ffn": "#2ca02c",
    "norm_residual": "#9467bd",
    "head": "#7f7f7f",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _title(data: dict) -> str:
    s = data["settings"]
    shape = f"batch {s['batch']}" if data.get("sweep") == "seq-len" else f"batch {s['batch']} × seq {s['seq_len']}"
    return f"{data['model']}  ·  {shape}  ·  {s['device']} {s['dtype']}  ·  {s['threads']} thread(s)"


def plot_profile(data: dict, path: str | Path) -> Path:
    """Figure 2's two panels from a profile dict: memory & FLOPs shares; run-time shares."""
    plt = _plt()
    comps = data["components"]
    labels = [c["label"] for c in comps][::-1]
    y = list(range(len(comps)))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7.5), sharex=True)
    mem = [100 * c["param_share"] for c in comps][::-1]
    flp = [100 * c["flops_share"] for c in comps][::-1]
    h = 0.38
    top.barh([v + h / 2 for v in y], mem, height=h, color="#4c72b0", label="memory (parameters)")
    top.barh([v - h / 2 for v in y], flp, height=h, color="#dd8452", label="theoretical FLOPs")
    for v, c in zip(y, comps[::-1]):
        top.text(mem[v] + 0.8, v + h / 2, f"{c['bytes'] / 2**20:.1f} MiB", va="center", fontsize=8)
        top.text(flp[v] + 0.8, v - h / 2, _flops_text(c["flops"]), va="center", fontsize=8)
    top.set_yticks(y, labels)
    top.legend(loc="lower right", fontsize=8)
    top.set_title("Memory and theoretical FLOPs (share of model total)", fontsize=10)
    tm = [100 * c["time_share"] for c in comps][::-1]
    bottom.barh(y, tm, height=0.6, color=[COLORS.get(c["name"], "#555555") for c in comps[::-1]])
    for v, c in zip(y, comps[::-1]):
        bottom.text(tm[v] + 0.8, v, f"{c['time_ms']:.2f} ms", va="center", fontsize=8)
    bottom.set_yticks(y, labels)
    fwd = data["forward_ms"]
    bottom.set_title(f"Measured run time (share of {fwd['sum_of_component_medians']:.1f} ms; "
                     f"plain forward {fwd['plain_median']:.1f} ms)", fontsize=10)
    bottom.set_xlabel("share of model total (%)")
    right = max(mem + flp + tm) * 1.22
    bottom.set_xlim(0, right)
    fig.suptitle(_title(data), fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_heads_sweep(data: dict, path: str | Path) -> Path:
    """Attention-core time (left) and FLOPs (right) vs head count; whole forward below."""
    plt = _plt()
    pts = data["points"]
    x = [p["heads"] for p in pts]
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7.5, 7), sharex=True)
    ms = [p["attn_core_ms"] for p in pts]
    err = [[m - p["attn_core_p10_ms"] for m, p in zip(ms, pts)], [p["attn_core_p90_ms"] - m for m, p in zip(ms, pts)]]
    ax.errorbar(x, ms, yerr=err, marker="o", color=COLORS["attn_core"], capsize=3, label="attention core time (median, p10-p90)")
    ax.set_ylabel("attention core time (ms)")
    ax.set_ylim(0, max(ms) * 1.25)
    tw = ax.twinx()
    tw.plot(x, [p["attn_core_flops"] / 1e9 for p in pts], "s--", color="#333333", label="attention core FLOPs (all)")
    tw.plot(x, [p["attn_core_matmul_flops"] / 1e9 for p in pts], ":", color="#999999", label="attention core FLOPs (matmul)")
    tw.set_ylabel("GFLOP per forward")
    tw.set_ylim(0, max(p["attn_core_flops"] for p in pts) / 1e9 * 1.25)
    lines = ax.get_legend_handles_labels()
    lines2 = tw.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="lower right")
    ax.set_title(f"Attention heads at hidden size {data['hidden_size']} (summed over layers)", fontsize=10)
    _stack(ax2, x, pts)
    ax2.set_xlabel("attention heads")
    ax2.set_xscale("log", base=2)
    ax2.set_xticks(x, [str(v) for v in x])
    ax2.minorticks_off()
    fig.suptitle(_title(data), fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_seq_sweep(data: dict, path: str | Path) -> Path:
    """Per-component time stacked vs sequence length; attention-core share of time vs of FLOPs."""
    plt = _plt()
    pts = data["points"]
    x = [p["seq_len"] for p in pts]
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7.5, 7), sharex=True)
    _stack(ax, x, pts)
    ax.plot(x, [p["forward_plain_ms"] for p in pts], "k--", label="plain forward (no hooks)")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("Whole-model time by component vs sequence length", fontsize=10)
    for name, lab in (("attn_core", "attention core"), ("ffn", "FFN")):
        t_share = [100 * p["component_ms"][name] / sum(p["component_ms"].values()) for p in pts]
        f_share = [100 * p["component_flops"][name] / p["total_flops"] for p in pts]
        ax2.plot(x, t_share, "o-", color=COLORS[name], label=f"{lab}: share of time")
        ax2.plot(x, f_share, "s:", color=COLORS[name], label=f"{lab}: share of FLOPs")
    ax2.set_ylabel("share (%)")
    ax2.set_xlabel("sequence length (tokens)")
    ax2.set_xscale("log", base=2)
    ax2.set_xticks(x, [str(v) for v in x])
    ax2.minorticks_off()
    ax2.legend(fontsize=8)
    fig.suptitle(_title(data), fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def _flops_text(flops: int) -> str:
    return f"{flops / 1e9:.2f} GFLOP" if flops >= 1e9 else f"{flops / 1e6:.1f} MFLOP"


def _stack(ax, x, pts) -> None:
    names = list(pts[0]["component_ms"])
    bottom = [0.0] * len(x)
    for name in names:
        vals = [p["component_ms"][name] for p in pts]
        ax.fill_between(x, bottom, [b + v for b, v in zip(bottom, vals)], color=COLORS.get(name, "#555555"),
                        alpha=0.8, label=name, step=None)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("time per forward (ms)")
    if not ax.get_legend_handles_labels()[0] or len(ax.get_legend_handles_labels()[0]) == len(names):
        ax.legend(fontsize=7, loc="upper left", ncol=2)


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
