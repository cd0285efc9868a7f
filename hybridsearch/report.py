"""Run report: Pareto plot (score vs speed-up, teacher and baselines marked), front table, per-layer picture.

`write_report(run_dir, study, baselines_dir=None)` writes pareto.png, arch.png and report.md
into `run_dir`. Baselines come from a `hybridsearch baselines` output dir (its table.csv,
scores in percent).
"""

from __future__ import annotations

import csv
from pathlib import Path

UNKNOWN_COLOR = "#000000"  # a block no longer registered


def _info(block: str):
    """The block's descriptor (label, colour), or None for a name no longer registered."""
    from hybridsearch.students.blocks import block_infos

    return block_infos().get(block)


def block_color(block: str) -> str:
    """The block's colour in the per-layer picture (its descriptor's `color`)."""
    info = _info(block)
    return info.color if info is not None else UNKNOWN_COLOR


def text_color(fill: str) -> str:
    """Black on light fills, white on dark ones (relative luminance of the '#rrggbb' fill)."""
    r, g, b = (int(fill[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.6 else "white"


def _baselines(baselines_dir) -> list[dict]:
    if not baselines_dir:
        return []
    path = Path(baselines_dir) / "table.csv"
    if not path.is_file():
        from hybridsearch.errors import UserError

        raise UserError(f"{path} not found; pass the --out directory of hybridsearch baselines")
    out = []
    with path.open() as f:
        for row in csv.DictReader(f):
            try:
                out.append({"method": row["method"], "speedup": float(row["speedup"]), "score": float(row["score"]) / 100})
            except (KeyError, TypeError, ValueError):
                continue
    return out


def _depth(params: dict) -> int:
    """The sample's `depth` label, or (a space with a fixed depth) the number of layer slots it names."""
    if params.get("depth"):
        return int(params["depth"])
    slots = [int(k.split(".", 1)[0][len("layer_"):]) for k in params if k.startswith("layer_")]
    return max(slots) + 1 if slots else 0


def _layers(params: dict) -> list[str]:
    depth = _depth(params)
    return [params.get(f"layer_{i}.block", params.get("layer_0.block", "transformer")) for i in range(depth)]


def _layer_label(params: dict, i: int) -> str:
    """Short text for layer i: block and its main size ("attn 4h", "conv k5", "lstm 96": its descriptor's
    `label`), bits, sparsity."""
    j = i if f"layer_{i}.block" in params else 0  # shared layers repeat layer 0
    get = lambda k: params.get(f"layer_{j}.{k}")  # noqa: E731
    block = get("block") or "transformer"
    info = _info(block)
    name, key, fmt_ = info.label if info is not None else (block, None, "")
    text = f"{name} {fmt_.format(get(key))}" if key and get(key) is not None else name
    if get("weight_bits") and get("weight_bits") != 32:
        text += f" w{get('weight_bits')}"
    if get("sparsity"):
        text += f" s{get('sparsity'):g}"
    return text


def describe(params: dict) -> str:
    """One line for a sample: layers bottom-up, then the other choices ("attn 4h | conv k5 ; arch.act_bits=8 lr=0.0001")."""
    layers = " | ".join(_layer_label(params, i) for i in range(_depth(params)))
    rest = " ".join(f"{k.removeprefix('recipe.')}={v}" for k, v in sorted(params.items())
                    if k != "depth" and not k.startswith("layer_"))  # arch. / emb. kept: both have weight_bits
    return f"{layers} ; {rest}" if rest else layers


def write_report(run_dir, study, baselines_dir=None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hybridsearch.search.pareto import fmt, front, teacher_row, trial_rows

    run_dir = Path(run_dir)
    rows = trial_rows(study)
    fr = front(rows)
    teacher = teacher_row(study)
    done = [r for r in rows if r["state"] == "COMPLETE" and r.get("speedup") and r.get("score") is not None]

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.scatter([r["speedup"] for r in done], [r["score"] for r in done], c="#999999", s=18, label="trials")
    fr_pts = sorted((r for r in fr if r.get("speedup") and r.get("score") is not None), key=lambda r: r["speedup"])
    ax.scatter([r["speedup"] for r in fr_pts], [r["score"] for r in fr_pts], c="#4C72B0", s=30,
               label="front (dev score, latency, size)", zorder=4)
    for r in fr_pts:
        ax.annotate(str(r["trial"]), (r["speedup"], r["score"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if teacher and teacher.get("score") is not None:
        ax.scatter([1.0], [teacher["score"]], marker="*", s=160, c="#DD8452", label="teacher", zorder=5)
    base = _baselines(baselines_dir)
    if base:
        ax.scatter([b["speedup"] for b in base], [b["score"] for b in base], marker="s", c="#8172B2", s=22,
                   label="survey baselines")
        for b in base:
            ax.annotate(b["method"], (b["speedup"], b["score"]), fontsize=6, xytext=(3, -8), textcoords="offset points")
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _pos: f"{v:g}x")  # 2x, 3x, ... instead of 2 x 10^0
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel("speed-up vs teacher (same run, log)")
    ax.set_ylabel("score (test if measured, else dev)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(run_dir / "pareto.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 0.5 + 0.4 * max(1, len(fr))))
    for y, r in enumerate(fr):
        for x, block in enumerate(_layers(r["params"])):
            fill = block_color(block)
            ax.add_patch(plt.Rectangle((x, y + 0.1), 0.9, 0.8, color=fill))
            ax.text(x + 0.45, y + 0.5, _layer_label(r["params"], x), ha="center", va="center", fontsize=7,
                    color=text_color(fill))
    ax.set_yticks([y + 0.5 for y in range(len(fr))], [f"trial {r['trial']}" for r in fr], fontsize=7)
    ax.set_xlim(0, max([len(_layers(r["params"])) for r in fr] + [1]))
    ax.set_ylim(0, max(1, len(fr)))
    ax.set_xticks([])
    ax.set_title("front members, layer by layer (bottom layer left)", fontsize=9)
    fig.tight_layout()
    fig.savefig(run_dir / "arch.png", dpi=120)
    plt.close(fig)

    lines = [f"# Search report: {study.user_attrs.get('task', '?')}", "",
             f"Space `{study.user_attrs.get('space', '?')}` (hash {study.user_attrs.get('space_hash', '?')}), "
             f"teacher {str(study.user_attrs.get('teacher_fingerprint', '?'))[:12]}, "
             f"{len(rows)} trials ({sum(r['state'] == 'COMPLETE' for r in rows)} complete), "
             f"shape {study.user_attrs.get('shape')}, CPU {study.user_attrs.get('cpu')}.", "",
             "![Pareto front](pareto.png)", "", "## Front", "",
             "| trial | role | dev | test | p vs teacher | latency ms | speed-up | size MB | seeded | architecture (bottom-up) ; other choices |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in ([teacher] if teacher else []) + fr:
        lines.append(f"| {r['trial']} | {r.get('role', 'front')} | {fmt(r.get('dev_score'))} | {fmt(r.get('test_score'))} | "
                     f"{fmt(r.get('p_vs_teacher'), '.3f')} | {fmt(r.get('latency_ms'), '.2f')} | "
                     f"{fmt(r.get('speedup'), '.2f')} | {fmt(r.get('size_mb'), '.1f')} | "
                     f"{'yes' if r.get('seeded') else ''} | {describe(r.get('params') or {})} |")
    lines += ["", "![Architectures](arch.png)", ""]
    out = run_dir / "report.md"
    out.write_text("\n".join(lines) + "\n")
    return out
