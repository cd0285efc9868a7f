"""`hybridsearch profile MODEL`: parameters, memory, FLOPs and time per BERT component."""

from __future__ import annotations

import json
from pathlib import Path

from hybridsearch.errors import UserError

NAME = "profile"
HELP = "where a BERT-family model spends memory, FLOPs and time, per component (survey Fig. 2)"
DESCRIPTION = (
    "Profile MODEL (a preset such as bert-base, a local Hugging Face directory or a hub name): "
    "parameters, bytes, analytic FLOPs and measured time for embeddings, Q/K/V projections, "
    "attention core, attention output projection, FFN, LayerNorms + residuals and the head. "
    "See docs/profile.md for how each number is obtained."
)


def add_arguments(parser) -> None:
    parser.add_argument("model", metavar="MODEL", help="preset name (bert-base, bert-large, minilm-l6-h384, ...), "
                        "local model directory or hub name")
    parser.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    parser.add_argument("--seq-len", type=int, default=128, help="sequence length in tokens (default 128)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument("--dtype", default="float32", help="float32, float16 or bfloat16 (default float32)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores available)")
    parser.add_argument("--repeats", type=int, default=10, help="timed forward passes (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed warm-up passes (default 3)")
    parser.add_argument("--out", default=None, metavar="DIR", help="write profile.json and profile.png "
                        "(or sweep_<kind>.json / .png) into DIR")
    parser.add_argument("--sweep", choices=("heads", "seq-len"), default=None,
                        help="heads: attention-core time vs head count at fixed hidden size; "
                        "seq-len: whole-model time vs sequence length")
    parser.add_argument("--sweep-values", default=None, metavar="N,N,...",
                        help="head counts or sequence lengths to sweep (default 1,2,4,8,12,16 / 16..512)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG files")


def run(args) -> int:
    from hybridsearch.measure.latency import resolve_device
    from hybridsearch.measure.presets import PRESETS, load_model, preset_config
    from hybridsearch.measure.profiler import check_shape, max_seq_len, resolve_dtype

    resolve_device(args.device)  # fail fast, before loading a large model
    resolve_dtype(args.dtype)
    if args.repeats < 1 or args.warmup < 0:
        raise UserError("--repeats must be >= 1 and --warmup >= 0")
    seq_sweep = args.sweep == "seq-len"  # the sweep checks its own lengths
    if args.model in PRESETS and not seq_sweep:  # cheap check before building a large random model
        check_shape(preset_config(args.model).max_position_embeddings, args.batch, args.seq_len)
    model, source = load_model(args.model)
    if not seq_sweep:
        check_shape(max_seq_len(model), args.batch, args.seq_len)
    kw = dict(batch=args.batch, seq_len=args.seq_len, device=args.device, dtype=args.dtype,
              threads=args.threads, repeats=args.repeats, warmup=args.warmup)
    out = Path(args.out) if args.out else None
    if args.sweep:
        return _run_sweep(args, model, kw, out)
    from hybridsearch.measure.profiler import profile_model

    profile = profile_model(model, name=args.model, source=source, **kw)
    data = profile.to_dict()
    print_profile(data)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "profile.json").write_text(json.dumps(data, indent=2) + "\n")
        written = [out / "profile.json"]
        if not args.no_plot:
            from hybridsearch.measure.plots import plot_profile

            written.append(plot_profile(data, out / "profile.png"))
        print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _run_sweep(args, model, kw, out) -> int:
    from hybridsearch.measure import sweeps

    values = sweeps.parse_values(args.sweep_values)
    from rich.console import Console

    console = Console()

    def progress(point):
        key = "heads" if args.sweep == "heads" else "seq_len"
        console.print(f"  {key}={point[key]}: forward {point['forward_plain_ms']:.2f} ms, "
                      f"attention core {point['attn_core_ms']:.2f} ms", highlight=False, markup=False)

    if args.sweep == "heads":
        data = sweeps.sweep_heads(model, values, name=args.model, progress=progress, **kw)
    else:
        data = sweeps.sweep_seq_len(model, values, name=args.model, progress=progress, **kw)
    print_sweep(data)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        stem = "sweep_heads" if args.sweep == "heads" else "sweep_seq_len"
        (out / f"{stem}.json").write_text(json.dumps(data, indent=2) + "\n")
        written = [out / f"{stem}.json"]
        if not args.no_plot:
            from hybridsearch.measure import plots

            fn = plots.plot_heads_sweep if args.sweep == "heads" else plots.plot_seq_sweep
            written.append(fn(data, out / f"{stem}.png"))
        print("wrote " + ", ".join(str(p) for p in written))
    return 0


def print_profile(data: dict) -> None:
    """The breakdown as a rich table, then the whole-forward timings."""
    from rich.console import Console
    from rich.table import Table

    s = data["settings"]
    table = Table(title=f"{data['model']} ({data['architecture']}) · batch {s['batch']} × seq {s['seq_len']} · "
                  f"{s['device']} {s['dtype']} · {s['threads']} thread(s) · median of {s['repeats']}")
    for col in ("component", "params", "MiB", "mem%", "MFLOP", "FLOP%", "ms", "time%"):
        table.add_column(col, justify="left" if col == "component" else "right")
    for c in data["components"]:
        table.add_row(c.get("short") or c["label"], f"{c['params']:,}", f"{c['bytes'] / 2**20:.1f}", f"{100 * c['param_share']:.1f}",
                      _mflop(c["flops"]), f"{100 * c['flops_share']:.1f}", f"{c['time_ms']:.2f}",
                      f"{100 * c['time_share']:.1f}")
    f = data["forward_ms"]
    table.add_section()
    table.add_row("total", f"{data['total_params']:,}", f"{data['total_bytes'] / 2**20:.1f}", "100.0",
                  _mflop(data["total_flops"]), "100.0", f"{f['sum_of_component_medians']:.2f}", "100.0")
    console = Console()
    console.print(table)
    overhead = 100 * f["hook_overhead"] / f["plain_median"] if f["plain_median"] else 0.0
    console.print(f"whole forward: hooked {f['hooked_median']:.2f} ms (components sum {f['sum_of_component_medians']:.2f}), "
                  f"plain {f['plain_median']:.2f} ms [p10 {f['plain_p10']:.2f}, p90 {f['plain_p90']:.2f}]; "
                  f"hook overhead {f['hook_overhead']:.2f} ms ({overhead:+.1f}%)", highlight=False, markup=False)


def _mflop(flops: int) -> str:
    return f"{flops / 1e6:,.0f}" if flops >= 1e8 else f"{flops / 1e6:.2f}"


def print_sweep(data: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    key = "heads" if data["sweep"] == "heads" else "seq_len"
    table = Table(title=f"{data['model']} · sweep {data['sweep']}")
    for col in (key, "forward ms (plain)", "attn core ms", "attn core MFLOP", "total MFLOP"):
        table.add_column(col, justify="right")
    for p in data["points"]:
        table.add_row(str(p[key]), f"{p['forward_plain_ms']:.2f}", f"{p['attn_core_ms']:.2f}",
                      _mflop(p["attn_core_flops"]), _mflop(p["total_flops"]))
    Console().print(table)
