"""Named BERT shapes (random weights, no download) and loading any model to profile.

Presets follow the published shapes: BERT base / large (Devlin et al. 2019); the
compact BERTs tiny / mini / small / medium (Turc et al. 2019); MiniLM L6/L12-H384
(Wang et al. 2020); a DistilBERT-like 6-layer BERT-base width. All use the BERT
vocabulary (30522), 512 positions, 2 segment types, FFN = 4 x hidden, 2 labels.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from hybridsearch.errors import UserError

# name -> (layers, hidden, heads)
PRESETS: dict[str, tuple[int, int, int]] = {
    "bert-tiny": (2, 128, 2),
    "bert-mini": (4, 256, 4),
    "bert-small": (4, 512, 8),
    "bert-medium": (8, 512, 8),
    "bert-base": (12, 768, 12),
    "bert-large": (24, 1024, 16),
    "minilm-l6-h384": (6, 384, 12),
    "minilm-l12-h384": (12, 384, 12),
    "distilbert-like": (6, 768, 12),
}


def preset_config(name: str, num_labels: int = 2, **overrides):
    """A `BertConfig` for preset `name` (eager attention); `UserError` for an unknown name."""
    from transformers import BertConfig

    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    layers, hidden, heads = PRESETS[name]
    kw = dict(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=512,
        type_vocab_size=2,
        num_labels=num_labels,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    kw.update(overrides)
    config = BertConfig(**kw)
    config._attn_implementation = "eager"
    return config


def model_from_config(config, seed: int = 0):
    """A random-weight `*ForSequenceClassification` (eager attention) built from `config`."""
    import torch
    from transformers import AutoModelForSequenceClassification

    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_config(config, attn_implementation="eager").eval()


def load_model(spec: str):
    """(model, source) for a preset name, a local directory or a hub name; eager attention.

    source is "preset", "local", "local-student" (a saved HybridStudent) or "hub". A checkpoint without a classification head
    gets a fresh random one (what fine-tuning would add); a family without a
    sequence-classification class is loaded bare with AutoModel.
    """
    if spec in PRESETS:
        return model_from_config(preset_config(spec)), "preset"
    path = Path(spec).expanduser()
    looks_local = path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1
    if looks_local and not (path / "config.json").is_file():
        raise UserError(
            f"cannot read model {spec!r}: no config.json there; give a Hugging Face model "
            f"directory or a preset ({', '.join(PRESETS)})"
        )
    if looks_local and _is_student_dir(path):
        from hybridsearch.students.export import load_student

        return load_student(path), "local-student"
    return _from_pretrained(str(path) if looks_local else spec, hub=not looks_local), ("local" if looks_local else "hub")


def _is_student_dir(path: Path) -> bool:
    """A directory written by `HybridStudent.save` (its config names the student model type)."""
    import json

    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("model_type") == "hybridsearch-student"


def _from_pretrained(name: str, hub: bool = False):
    from transformers import AutoModel, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialized classifier" warning is expected here
    try:
        try:
            return AutoModelForSequenceClassification.from_pretrained(name, attn_implementation="eager").eval()
        except ValueError as exc:
            if "Unrecognized configuration class" not in str(exc):
                raise
            return AutoModel.from_pretrained(name, attn_implementation="eager").eval()
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if hub:
            close = difflib.get_close_matches(name, list(PRESETS), n=1)
            hint = f"did you mean preset {close[0]!r}? " if close else ""
            raise UserError(
                f"cannot load model {name!r}: not a preset, not a local directory, and the hub failed "
                f"({first[:120]}); {hint}presets: {', '.join(PRESETS)}"
            ) from None
        raise UserError(f"cannot load model {name!r} ({first[:160]}); give a Hugging Face model directory") from None
    finally:
        hf_logging.set_verbosity(verbosity)
