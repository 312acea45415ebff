"""Convert a Lightning training checkpoint into a Hugging Face model directory (weights, config, tokenizer).

    python scripts/convert_checkpoint.py logs/train/runs/<run>/checkpoints/last.ckpt hf/my-model
    python -c "from transformers import AutoModelForCausalLM; import titans.models; \\
               AutoModelForCausalLM.from_pretrained('hf/my-model')"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from titans.eval.loading import load_model_and_tokenizer  # noqa: E402


def convert(ckpt: str | Path, out_dir: str | Path) -> Path:
    model, tokenizer = load_model_and_tokenizer(ckpt)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    return out_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt", help="a Lightning .ckpt written by train.py")
    parser.add_argument("out_dir", help="the Hugging Face directory to write")
    args = parser.parse_args(argv)
    out = convert(args.ckpt, args.out_dir)
    print(f"wrote {out} (load with AutoModelForCausalLM.from_pretrained after `import titans.models`)")


if __name__ == "__main__":
    from titans.cli import report_expected_errors

    report_expected_errors(main)()
