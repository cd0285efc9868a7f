"""The survey's compression methods as fixed (StudentArch, DistillRecipe) points -> its Table 2.

Every method runs on the same teacher and task with the same step budget through
`distill.evaluate`, so rows differ only by what the method changes. Choices made
here (the survey's papers each used their own schedule; ours is fixed and stated):

- dq8            DQ: 8-bit weights and embeddings, 8-bit dynamic activations (Q8BERT style).
- dq-mixed       DQ: weight bits 4 / 3 / 2 over the lower / middle / upper third of the
                 layers, 8-bit embeddings (Q-BERT style mixed precision; Q-BERT picks bits
                 from Hessian spectra, here the pattern is fixed).
- ep50, ep70     EP: one-shot magnitude pruning of every encoder weight to 50% / 70%.
- sp-heads       SP: keep 2 heads per layer (Taylor importance on a train batch).
- sp-layers      SP: keep the lower half of the encoder units (Sajjad et al.: dropping
                 the top layers works best); KD-OL only.
- kd-ol-bilstm   KD-OL into a one-layer BiLSTM (150 per direction, max pooling) on the
                 teacher's embeddings (Tang et al.), with the transfer set when the task has one.
- kd-eo          half depth from uniformly mapped teacher layers, KD-OL + KD-EO (DistilBERT / PKD).
- kd-eo-am       the same student, KD-OL + KD-EO + KD-AM + embedding loss (TinyBERT / MiniLM).
- ps-albert      PS: one transformer unit shared by all layers (init from the middle teacher layer).
- emc-factorized EMC: factorized embeddings E=128 (truncated-SVD init).
- emc-vocab      EMC: vocabulary reduced to the tokens of the train (+ transfer) data.
- ad-lower       AD: attention decomposition in the lower half (sentence-pair tasks only;
                 on single-sentence tasks the row says "not applicable").

Learning rates follow how far a method moves the teacher's function: 3e-5 / 5e-5 for
DQ, EP and the reduced vocabulary (they start at it; dev is also scored before step 1,
so post-training compression is kept when training does not beat it; DQ and EP learn
from the teacher's soft labels only, alpha 0, since their aim is to keep its function), 1e-4 for head
pruning, 2e-4 for the students that drop layers, share them, factorize embeddings or
replace the encoder (a 100-step probe on mr: half depth at 5e-5 stayed at 50% dev
until step 75, at 2e-4 it reached 78.3%).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace

from hybridsearch.distill.recipe import DistillRecipe
from hybridsearch.errors import UserError

METHODS = ("dq8", "dq-mixed", "ep50", "ep70", "sp-heads", "sp-layers", "kd-ol-bilstm", "kd-eo", "kd-eo-am",
           "ps-albert", "emc-factorized", "emc-vocab", "ad-lower")
FAMILY = {"dq8": "DQ", "dq-mixed": "DQ", "ep50": "EP", "ep70": "EP", "sp-heads": "SP", "sp-layers": "SP",
          "kd-ol-bilstm": "KD-OL", "kd-eo": "KD-EO+OL", "kd-eo-am": "KD-EO+AM+OL", "ps-albert": "PS",
          "emc-factorized": "EMC", "emc-vocab": "EMC", "ad-lower": "AD"}


@dataclass
class Baseline:
    """One method: its point, or the reason it does not apply to this task."""

    name: str
    family: str
    arch: object | None = None
    recipe: DistillRecipe | None = None
    not_applicable: str | None = None


TRANSFER_LIMIT = 4000  # transfer sentences the KD rows use (teacher-labelled once, cached)


def _recipe(steps: int, **kw) -> DistillRecipe:
    base = dict(losses=["kd_ol"], temperature=2.0, alpha=0.5, steps=steps, lr=3e-5, batch_size=32,
                warmup=0.1, eval_every=max(1, steps // 2), seed=0)
    if kw.get("transfer"):
        base["transfer_limit"] = TRANSFER_LIMIT
    base.update(kw)
    return DistillRecipe(**base)


def _layers(arch, **changes):
    arch = copy.deepcopy(arch)
    arch.layers = [replace(layer, **changes) for layer in arch.layers]
    return arch


def kept_vocabulary(tokenizer, texts) -> list[int]:
    """Token ids seen when tokenizing `texts`, plus every special token id, sorted."""
    ids = set(tokenizer.all_special_ids)
    for start in range(0, len(texts), 2048):
        for row in tokenizer(list(texts[start:start + 2048]), add_special_tokens=False)["input_ids"]:
            ids.update(row)
    return sorted(ids)


def baseline_specs(teacher_config, task, steps: int = 200, tokenizer=None, transfer_texts=None) -> list[Baseline]:
    """Every method of the module docstring as a `Baseline` (in `METHODS` order)."""
    from hybridsearch.students import arch_from_teacher_config

    base = arch_from_teacher_config(teacher_config, tokenizer)
    base.num_labels, base.id2label = task.spec.num_labels, dict(task.spec.id2label)
    L, H = len(base.layers), base.hidden
    half = max(1, L // 2)
    has_transfer = bool(transfer_texts)
    kd_lr = 5e-5  # students that start at the teacher's function
    new_lr = 2e-4  # students whose function the method changes (fewer / shared layers, new embeddings)
    out: list[Baseline] = []

    def add(name, arch=None, recipe=None, na=None):
        out.append(Baseline(name, FAMILY[name], arch, recipe, na))

    a = _layers(base, weight_bits=8, act_bits=8)
    a.embedding.weight_bits = 8
    add("dq8", a, _recipe(steps, alpha=0.0))

    a = copy.deepcopy(base)
    a.embedding.weight_bits = 8
    thirds = [4 if i < L / 3 else 3 if i < 2 * L / 3 else 2 for i in range(L)]
    a.layers = [replace(layer, weight_bits=b) for layer, b in zip(a.layers, thirds)]
    add("dq-mixed", a, _recipe(steps, lr=5e-5, alpha=0.0))

    add("ep50", _layers(base, sparsity=0.5), _recipe(steps, alpha=0.0))
    add("ep70", _layers(base, sparsity=0.7), _recipe(steps, alpha=0.0))

    nh = base.layers[0].heads
    add("sp-heads", _layers(base, heads=min(2, nh)), _recipe(steps, lr=1e-4))

    a = copy.deepcopy(base)
    a.layers = [replace(layer, teacher_layer=i) for i, layer in enumerate(a.layers[:half])]
    add("sp-layers", a, _recipe(steps, lr=new_lr))

    a = copy.deepcopy(base)
    a.layers = [_bilstm_layer()]
    a.pooling = "max"
    add("kd-ol-bilstm", a, _recipe(steps, lr=2e-3, alpha=0.0, transfer=has_transfer))

    a = copy.deepcopy(base)
    picks = [max(0, round((i + 1) * L / half) - 1) for i in range(half)]
    a.layers = [replace(base.layers[t], teacher_layer=t) for t in picks]
    add("kd-eo", a, _recipe(steps, lr=new_lr, losses=["kd_ol", "kd_eo"], transfer=has_transfer))
    add("kd-eo-am", copy.deepcopy(a), _recipe(steps, lr=new_lr, losses=["kd_ol", "kd_eo", "kd_am", "emb"],
                                              transfer=has_transfer))

    a = _layers(base, teacher_layer=L // 2)
    a.share_groups = [list(range(L))] if L > 1 else []
    add("ps-albert", a, _recipe(steps, lr=new_lr))

    a = copy.deepcopy(base)
    a.embedding.size = 128 if H > 128 else max(1, H // 2)  # tiny teachers: still a real factorization
    add("emc-factorized", a, _recipe(steps, lr=new_lr))

    if tokenizer is None:
        add("emc-vocab", na="needs the teacher's tokenizer to choose the kept tokens")
    else:
        a = copy.deepcopy(base)
        texts = list(task.splits["train"]["text"]) + list(transfer_texts or [])
        if task.spec.is_pair:
            texts += list(task.splits["train"]["text_pair"])
        a.embedding.kept_tokens = kept_vocabulary(tokenizer, texts)
        add("emc-vocab", a, _recipe(steps, lr=kd_lr))

    if task.spec.is_pair:
        a = copy.deepcopy(base)
        a.layers = [replace(layer, attn_decomposition=i < half) for i, layer in enumerate(a.layers)]
        add("ad-lower", a, _recipe(steps, lr=kd_lr))
    else:
        add("ad-lower", na=f"attention decomposition needs sentence pairs; {task.spec.name} has single sentences")
    return out


def _bilstm_layer():
    from hybridsearch.students import LayerSpec

    return LayerSpec(block="bilstm", lstm_hidden=150, ffn=None)


def baseline_points(teacher_config, task, steps: int = 200, tokenizer=None, transfer_texts=None) -> dict:
    """{name: (StudentArch, DistillRecipe)} of the methods that apply to `task` (for seeding a search)."""
    return {b.name: (b.arch, b.recipe) for b in baseline_specs(teacher_config, task, steps, tokenizer, transfer_texts)
            if b.not_applicable is None}


def select_methods(text: str | None) -> list[str]:
    """'dq8,kd-eo' -> ['dq8', 'kd-eo']; None / 'all' -> every method; `UserError` on unknown names."""
    if not text or text == "all":
        return list(METHODS)
    names = [n.strip() for n in str(text).replace(" ", ",").split(",") if n.strip()]
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise UserError(f"unknown baseline method(s) {unknown}; choose from {', '.join(METHODS)}")
    return names


# ---- the table ----------------------------------------------------------------------

COLUMNS = ("method", "family", "size_pct", "speedup", "score", "metric", "score_se", "p_vs_teacher", "status",
           "size_drop_per_score_drop", "dev_score", "latency_ms", "teacher_latency_ms", "size_mb", "params",
           "flops", "steps", "train_s")


def table_row(name: str, family: str, metrics, teacher_size: int | None, teacher_score: float | None,
              status: str = "ok") -> dict:
    """A Table-2 row; scores in percent points (mcc x100), size as % of the teacher's fp32 export."""
    m = metrics

    def pct(v):
        return None if v is None else round(100 * v, 2)

    row = {c: None for c in COLUMNS}
    row.update(method=name, family=family, metric=getattr(m, "metric", None), status=status)
    if m is None:
        return row
    if m.failure and status == "ok":
        row["status"] = f"failed: {m.failure}"
    row.update(score=pct(m.test_score), score_se=pct(m.test_se), dev_score=pct(m.dev_score),
               p_vs_teacher=None if m.p_vs_teacher is None else round(m.p_vs_teacher, 4),
               latency_ms=None if m.latency_ms is None else round(m.latency_ms, 3),
               teacher_latency_ms=None if m.teacher_latency_ms is None else round(m.teacher_latency_ms, 3),
               speedup=None if m.speedup is None else round(m.speedup, 2),
               size_mb=None if m.size_bytes is None else round(m.size_bytes / 1e6, 3),
               params=m.params, flops=m.flops, steps=m.steps or None, train_s=m.train_s)
    if m.size_bytes is not None and teacher_size:
        row["size_pct"] = round(100 * m.size_bytes / teacher_size, 1)
    if name != "teacher" and row["size_pct"] is not None and row["score"] is not None and teacher_score is not None:
        drop_size, drop_score = 100 - row["size_pct"], 100 * teacher_score - row["score"]
        row["size_drop_per_score_drop"] = round(drop_size / drop_score, 2) if drop_score > 0 else math.inf
    return row


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return "∞ (no drop)" if math.isinf(v) else f"{v:g}"
    return str(v)


def write_table(rows: list[dict], out_dir, title: str = "", teacher: str | None = None) -> None:
    """`table.csv` (all columns), `table.md` (Table-2 columns) and `pareto.png` into `out_dir`.

    `title` heads both the markdown and the plot; `teacher` (a path) is named in the markdown only."""
    import csv
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "table.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(COLUMNS))
        w.writeheader()
        for r in rows:
            w.writerow({k: ("inf" if isinstance(v, float) and math.isinf(v) else v) for k, v in r.items()})
    shown = ("method", "family", "size_pct", "speedup", "score", "score_se", "p_vs_teacher",
             "size_drop_per_score_drop", "latency_ms", "status")
    head = ["method", "family", "size %", "speed-up", f"{rows[0].get('metric') or 'score'} (test)", "± se",
            "p vs teacher", "ΔMS/ΔA", "latency ms", "status"]
    heading = f"{title} (teacher {teacher})" if title and teacher else title
    lines = [f"# {heading}\n" if heading else "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(k)).replace("|", "/") for k in shown) + " |")
    (out / "table.md").write_text("\n".join(x for x in lines if x) + "\n")
    pareto_plot(rows, out / "pareto.png", title)


def pareto_plot(rows: list[dict], path, title: str = "") -> None:
    """Score vs measured speed-up; the teacher as a star, the Pareto front as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [r for r in rows if r.get("score") is not None and r.get("speedup")]
    fig, ax = plt.subplots(figsize=(7, 5))
    for r in pts:
        teacher, reference = r["method"] == "teacher", r["method"] == MODULES_REFERENCE
        ax.scatter(r["speedup"], r["score"], marker="*" if teacher else "^" if reference else "o",
                   s=160 if teacher else 40, color="black" if teacher else "grey" if reference else "tab:blue",
                   zorder=3)
        ax.annotate(r["method"], (r["speedup"], r["score"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    front, best = [], -math.inf
    for r in sorted((r for r in pts if r["method"] != MODULES_REFERENCE), key=lambda r: -r["speedup"]):
        if r["score"] > best:
            front.append(r)
            best = r["score"]
    if len(front) > 1:
        ax.plot([r["speedup"] for r in front], [r["score"] for r in front], "--", color="tab:orange",
                label="Pareto front", zorder=2)
        ax.legend(loc="upper right")  # the front runs from top left to bottom right
    ax.set_xlabel("measured speed-up over the teacher (×, same run, interleaved)")
    ax.set_ylabel(f"test {pts[0]['metric'] if pts else 'score'} (%)")
    ax.set_title(title or "survey baselines", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- running ------------------------------------------------------------------------

def _row_key(b: Baseline, context) -> str:
    import hashlib
    import json

    where = {}  # rows timed elsewhere are not reused (CPU float32 rows keep their older keys)
    if str(context.device) != "cpu" or context.dtype != "float32":
        where = {"device": str(context.device), "dtype": context.dtype}
    payload = json.dumps({"arch": b.arch.to_dict(), "recipe": b.recipe.to_dict(),
                          "teacher": context.teacher.fingerprint, "task": context.task.fingerprint,
                          "shape": list(context.shape), "threads": context.threads, "test": True, **where},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


MODULES_REFERENCE = "teacher-modules"
MODULES_REFERENCE_STATUS = ("reference: the teacher's weights in our student modules, untrained; "
                            "every row's speed-up includes this row's")


def _saved_metrics(path, key: str):
    """The `Metrics` saved in a row file when its key matches `key`, else None."""
    import json

    from hybridsearch.distill.evaluate import Metrics

    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    return Metrics(**saved["metrics"]) if saved.get("key") == key else None


def _modules_reference_row(context, out, t_size, t_score, fresh: bool, log) -> dict:
    """The `teacher-modules` row (see `distill.evaluate.modules_reference_metrics`), resumable."""
    import json

    from hybridsearch.distill.evaluate import modules_reference_metrics
    from hybridsearch.students import arch_from_teacher_config

    ref = Baseline(MODULES_REFERENCE, "—", arch_from_teacher_config(context.teacher.model.config),
                   _recipe(1, losses=["kd_ol"]))  # the recipe only completes the row key
    path, key = out / "rows" / f"{MODULES_REFERENCE}.json", _row_key(ref, context)
    m = None if fresh else _saved_metrics(path, key)
    if m is not None:
        log(f"{MODULES_REFERENCE}: reused {path}")
    else:
        m = modules_reference_metrics(context)
        path.write_text(json.dumps({"key": key, "metrics": m.to_dict()}, indent=1, default=str))
    row = table_row(MODULES_REFERENCE, "—", m, t_size, t_score, status=MODULES_REFERENCE_STATUS)
    row["size_drop_per_score_drop"] = None
    log(f"{MODULES_REFERENCE}: test {row['score']}%, speed-up {row['speedup']} (implementation alone)")
    return row


def run_baselines(context, out_dir, methods=None, steps: int = 400, fresh: bool = False, log=print) -> list[dict]:
    """Evaluate each method (resuming finished rows from `out_dir/rows/`), write the table; -> rows.

    A failed method's row says why and the others still run.
    """
    import json
    import time
    from pathlib import Path

    from hybridsearch.distill.evaluate import evaluate, teacher_metrics

    out = Path(out_dir)
    (out / "rows").mkdir(parents=True, exist_ok=True)
    task, teacher = context.task, context.teacher
    transfer = []
    if any(m in (methods or METHODS) for m in ("kd-ol-bilstm", "kd-eo", "kd-eo-am", "emc-vocab")):
        from hybridsearch.data import load_transfer_texts

        transfer = load_transfer_texts(task, context.cache_dir)
    specs = {b.name: b for b in baseline_specs(teacher.model.config, task, steps, teacher.tokenizer, transfer)}
    t_metrics = teacher_metrics(context)
    t_size = t_metrics.size_bytes
    rows = [table_row("teacher", "—", t_metrics, t_size, t_metrics.test_score)]
    log(f"teacher: test {rows[0]['score']}%, {rows[0]['latency_ms']} ms, {rows[0]['size_mb']} MB")
    rows.append(_modules_reference_row(context, out, t_size, t_metrics.test_score, fresh, log))
    title = f"Survey baselines on {task.spec.name}"
    for name in methods or METHODS:
        b = specs[name]
        if b.not_applicable:
            row = table_row(name, b.family, None, t_size, None, status=f"not applicable: {b.not_applicable}")
            row["metric"] = task.spec.metric
            rows.append(row)
            log(f"{name}: not applicable ({b.not_applicable})")
            continue
        path = out / "rows" / f"{name}.json"
        key = _row_key(b, context)
        m = None if fresh else _saved_metrics(path, key)
        if m is not None:
            rows.append(table_row(name, b.family, m, t_size, t_metrics.test_score))
            log(f"{name}: reused {path}")
            continue
        start = time.perf_counter()
        log(f"{name}: distilling ({b.recipe.steps} steps, losses {b.recipe.losses})")
        m = evaluate(b.arch, b.recipe, context, test=True).metrics
        m.extra["wall_s"] = round(time.perf_counter() - start, 1)
        path.write_text(json.dumps({"key": key, "arch": b.arch.to_dict(), "recipe": b.recipe.to_dict(),
                                    "metrics": m.to_dict()}, indent=1, default=str))
        row = table_row(name, b.family, m, t_size, t_metrics.test_score)
        rows.append(row)
        log(f"{name}: {row['status']}, test {row['score']}%, speed-up {row['speedup']}, size {row['size_pct']}% "
            f"({m.extra['wall_s']}s)")
        write_table(rows, out, title, teacher=str(teacher.path))
    write_table(rows, out, title, teacher=str(teacher.path))
    return rows
