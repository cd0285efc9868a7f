"""On the device: restore the carried float16 teacher as a float32 Hugging Face directory.

    python3 experiments/gpu/unpack.py .devcarry/teacher /tmp/teacher
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def main(src: Path, dst: Path) -> None:
    from safetensors.torch import load_file, save_file

    dst.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy2(src / name, dst / name)
    weights = {k: v.float().contiguous() for k, v in load_file(src / "weights-fp16.safetensors").items()}
    save_file(weights, dst / "model.safetensors", metadata={"format": "pt"})
    print(f"teacher restored at {dst} ({len(weights)} tensors, float32)")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
