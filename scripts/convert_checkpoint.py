"""Convert a Lightning training checkpoint into a self-contained Hugging Face model directory.

    python scripts/convert_checkpoint.py logs/train/runs/<run>/checkpoints/last.ckpt hf/my-model
    python -c "from transformers import AutoModelForCausalLM; \\
               AutoModelForCausalLM.from_pretrained('hf/my-model', trust_remote_code=True)"

The directory holds the weights (safetensors), config.json (with auto_map), the tokenizer, the model's code
(titans_*.py, generated from the package: only torch and transformers are needed to load it) and a model card
(README.md) that lists the eval.py result files of this checkpoint found in experiments/results/ (or --results).
The memory's runtime options are set to the portable ones: compile=False (no torch.compile on first use) and, for
impl="triton", impl="scan" (which still uses the Triton kernels where the titans package has them).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from titans.eval.loading import load_model_and_tokenizer  # noqa: E402
from titans.eval.model_card import find_result_files, write_model_card  # noqa: E402
from titans.eval.results import read_record  # noqa: E402


def portable_runtime(config) -> None:
    """The memory options a shared model should load with (same values; the training run's speed choices dropped)."""
    if config.memory is not None:
        impl = "scan" if config.memory.impl == "triton" else config.memory.impl
        config.memory = dataclasses.replace(config.memory, compile=False, impl=impl)


def convert(ckpt: str | Path, out_dir: str | Path, results: list[str | Path] | None = None) -> Path:
    found = find_result_files(ckpt) if results is None else [Path(r) for r in results]
    for path in found:  # before anything is written
        if not path.is_file():
            raise FileNotFoundError(f"result file {path} does not exist: pass files eval.py wrote "
                                    f"(experiments/results/*.json)")
        read_record(path)
    model, tokenizer = load_model_and_tokenizer(ckpt)
    out_dir = Path(out_dir)
    portable_runtime(model.config)
    model.save_pretrained(out_dir)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    write_model_card(out_dir, model, checkpoint=ckpt, results=found)
    return out_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt", help="a Lightning .ckpt written by train.py")
    parser.add_argument("out_dir", help="the Hugging Face directory to write")
    parser.add_argument("--results", nargs="*", default=None, metavar="FILE",
                        help="eval.py result files for the model card (default: those of this checkpoint in "
                             "experiments/results/)")
    args = parser.parse_args(argv)
    out = convert(args.ckpt, args.out_dir, args.results)
    print(f"wrote {out}: AutoModelForCausalLM.from_pretrained({str(out)!r}, trust_remote_code=True) loads it "
          f"(titans not needed); the model card is {out / 'README.md'}")


if __name__ == "__main__":
    from titans.cli import report_expected_errors

    report_expected_errors(main)()
