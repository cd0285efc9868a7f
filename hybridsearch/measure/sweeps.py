"""Profile sweeps: attention heads at a fixed hidden size, and sequence length.

All points are profiled together by `profile_models`, interleaved round by round so
that a busy shared machine slows every point alike; a point keeps the whole-forward times,
the attention-core time and FLOPs, and every component's time, so the plots and
the JSON show where the extra time goes.
"""

from __future__ import annotations

import copy

from hybridsearch.errors import UserError

DEFAULT_HEADS = (1, 2, 4, 8, 12, 16)
DEFAULT_SEQ_LENS = (16, 32, 64, 128, 256, 512)


def parse_values(text: str | None) -> list[int] | None:
    """'1,2,4' -> [1, 2, 4]; None stays None; `UserError` on anything else."""
    if text is None:
        return None
    try:
        values = [int(v) for v in str(text).replace(" ", "").split(",") if v]
    except ValueError:
        raise UserError(f"bad sweep values {text!r}; give comma-separated integers, e.g. 1,2,4,8") from None
    if not values or min(values) <= 0:
        raise UserError(f"bad sweep values {text!r}; give positive integers")
    return values


def _point(profile, **extra) -> dict:
    core = profile.component("attn_core")
    return dict(
        extra,
        forward_plain_ms=profile.forward_ms["plain_median"],
        forward_hooked_ms=profile.forward_ms["hooked_median"],
        attn_core_ms=core.time_ms,
        attn_core_p10_ms=core.time_p10_ms,
        attn_core_p90_ms=core.time_p90_ms,
        attn_core_flops=core.flops,
        attn_core_matmul_flops=core.matmul_flops,
        total_flops=profile.total_flops,
        component_ms={c.name: c.time_ms for c in profile.components},
        component_flops={c.name: c.flops for c in profile.components},
    )


def sweep_heads(model, values=None, *, name="model", progress=None, batch=1, seq_len=128, **profile_kw) -> dict:
    """Rebuild `model`'s shape with each head count (same hidden size, random weights); profile all, interleaved."""
    from hybridsearch.measure.components import map_components
    from hybridsearch.measure.presets import model_from_config
    from hybridsearch.measure.profiler import profile_models

    config = getattr(model, "config", None)
    if getattr(config, "num_attention_heads", None) is None or map_components(model).family != "bert":
        raise UserError("the heads sweep rebuilds a BERT config with other head counts; give a BERT-family model")
    hidden = int(config.hidden_size)
    values = list(values or [h for h in DEFAULT_HEADS if hidden % h == 0])
    bad = [h for h in values if hidden % h]
    if bad:
        raise UserError(f"head counts {bad} do not divide hidden size {hidden}; pick divisors of {hidden}")
    models = {}
    for heads in values:
        cfg = copy.deepcopy(config)
        cfg.num_attention_heads = heads
        models[heads] = (model_from_config(cfg), batch, seq_len)
    profiles = profile_models(models, source="sweep", **profile_kw)  # interleaved across head counts
    points = [_point(profiles[h], heads=h, head_size=hidden // h) for h in values]
    if progress:
        for p in points:
            progress(p)
    prof = profiles[values[-1]]
    return dict(sweep="heads", model=name, hidden_size=hidden, settings=prof.settings, points=points,
                environment=prof.environment)


def sweep_seq_len(model, values=None, *, name="model", progress=None, **profile_kw) -> dict:
    """Profile the same model at each sequence length."""
    from hybridsearch.measure.profiler import max_seq_len, profile_models

    limit = max_seq_len(model) or max(DEFAULT_SEQ_LENS)
    values = list(values or [t for t in DEFAULT_SEQ_LENS if t <= limit])
    if max(values) > limit:
        raise UserError(f"sweep seq-len {max(values)} is past this model's maximum of {limit} positions")
    profile_kw.pop("seq_len", None)
    batch = profile_kw.pop("batch", 1)
    jobs = {t: (model, batch, t) for t in values}
    profiles = profile_models(jobs, source="sweep", **profile_kw)  # interleaved across lengths
    points = [_point(profiles[t], seq_len=t) for t in values]
    if progress:
        for p in points:
            progress(p)
    prof = profiles[values[-1]]
    return dict(sweep="seq-len", model=name, settings=prof.settings, points=points, environment=prof.environment)
