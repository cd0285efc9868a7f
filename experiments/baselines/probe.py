"""Dev-selected recipe probes of one baseline method (the table's arch and recipe, a few fields changed).

    python experiments/baselines/probe.py --method kd-eo \
        --probe "steps=200" --probe "steps=200 transfer=false" --probe "steps=400 layers=2,5 lr=3e-4" \
        [--teacher DIR] [--device cuda] [--out probes.jsonl]

Each --probe distils the method's student once (task, teacher and logits loaded once for all):
`steps=N` sets the budget (eval every N/2 as in the table), `layers=I,J` copies the student's
layers from those teacher layers, `bits=8` quantizes every layer and the embedding (QAT; `qat_from=0.5` trains the first half in float),
`ffn=N` / `heads=N` narrow every layer (the most important neurons / heads kept),
`extend=N` continues N more steps after the budget (a warm restart, as a search promotes a trial), `arch.FIELD=VALUE` changes the student (e.g. `arch.dropout=0`),
any other FIELD=VALUE changes the recipe (values parsed as JSON where they can be: false, 3e-4). No latency is measured. Prints one JSON line per probe (dev,
test, McNemar p vs the teacher, dev history) and appends it to --out. Choose on dev only.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import replace
from pathlib import Path


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default="kd-eo")
    p.add_argument("--probe", action="append", default=[], metavar="'steps=N [layers=I,J] [FIELD=VALUE ..]'")
    p.add_argument("--teacher", default=None, help="teacher directory (default: the cached fine-tuned one)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()

    from hybridsearch.baselines import baseline_specs
    from hybridsearch.data import load_task, load_transfer_texts
    from hybridsearch.distill import TrialHooks
    from hybridsearch.distill.evaluate import EvalContext, evaluate
    from hybridsearch.teacher import ensure_teacher, load_teacher, teacher_logits

    task = load_task("mr", cache_dir=args.cache_dir)
    teacher = load_teacher(args.teacher) if args.teacher else ensure_teacher(task, cache_dir=args.cache_dir)
    logits = teacher_logits(teacher, task, cache_dir=args.cache_dir, device=args.device)
    ctx = EvalContext(task=task, teacher=teacher, logits=logits, device=args.device, cache_dir=args.cache_dir,
                      measure_speed=False, progress=False)
    transfer = load_transfer_texts(task, args.cache_dir)
    for text in args.probe or ["steps=200"]:
        changes = dict(item.split("=", 1) for item in text.split())
        steps = int(changes.pop("steps", 200))
        layers = changes.pop("layers", None)
        specs = {b.name: b for b in baseline_specs(teacher.model.config, task, steps, teacher.tokenizer, transfer)}
        b = specs[args.method]
        arch = copy.deepcopy(b.arch)
        if layers:
            arch.layers = [replace(arch.layers[0], teacher_layer=int(t)) for t in layers.split(",")]
        more = int(changes.pop("extend", 0))  # extend=N: N more steps after the budget (a warm restart)
        for key in ("ffn", "heads"):  # ffn=N / heads=N: every layer's FFN width / kept heads
            if key in changes:
                value = int(changes.pop(key))
                arch.layers = [replace(layer, **{key: value}) for layer in arch.layers]
        bits = changes.pop("bits", None)  # bits=8: int8 weights and activations everywhere (DQ on top)
        if bits:
            arch.layers = [replace(layer, weight_bits=int(bits), act_bits=int(bits)) for layer in arch.layers]
            arch.embedding.weight_bits = int(bits)
        for key in [k for k in changes if k.startswith("arch.")]:
            setattr(arch, key[len("arch."):], _value(changes.pop(key)))
        recipe = replace(b.recipe, **{k: _value(v) for k, v in changes.items()})
        start = time.perf_counter()
        m = evaluate(arch, recipe, ctx, TrialHooks(extend=(lambda *_, n=more: n) if more else None), test=True).metrics
        row = {"method": args.method, "probe": text, "steps": steps, "steps_done": m.steps, "dev": m.dev_score,
               "test": m.test_score,
               "p_vs_teacher": m.p_vs_teacher, "best_step": m.extra.get("best_step"),
               "history": m.extra.get("history"), "failure": m.failure,
               "wall_s": round(time.perf_counter() - start, 1), "device": args.device}
        print(json.dumps(row), flush=True)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
