"""Pack what a bare GPU machine needs to run the device checks (run here, before the device call).

    python experiments/gpu/pack.py TEACHER_DIR CACHE_DIR [--to .devcarry]

Writes, under `.devcarry/` (git-ignored; carried to the device with `carry`):
- teacher/: the fine-tuned teacher's config and tokenizer, and its weights in float16
  (half the bytes: the device call carries at most 64 MiB); `unpack.py` restores float32 there.
  Accuracy figures measured there come from this rounded teacher (its fingerprint differs, so
  its logits are recomputed there); latency does not depend on the weights' values.
- cache/data/mr/: the two extracted mr files (the device cannot reach the package index).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("teacher", type=Path)
    p.add_argument("cache", type=Path)
    p.add_argument("--to", type=Path, default=Path(".devcarry"))
    args = p.parse_args()
    from safetensors.torch import load_file, save_file

    out = args.to / "teacher"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy2(args.teacher / name, out / name)
    weights = {k: v.half().contiguous() for k, v in load_file(args.teacher / "model.safetensors").items()}
    save_file(weights, out / "weights-fp16.safetensors")
    data = args.to / "cache" / "data" / "mr"
    data.mkdir(parents=True, exist_ok=True)
    for f in (args.cache / "data" / "mr").iterdir():
        shutil.copy2(f, data / f.name)
    total = sum(f.stat().st_size for f in args.to.rglob("*") if f.is_file())
    print(f"packed {total / 2**20:.1f} MiB into {args.to}")


if __name__ == "__main__":
    main()
