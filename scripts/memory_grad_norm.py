"""The outer (training) gradient norm before clipping, total and by parameter group (titans.models.param_groups),
of a freshly initialised model or a trained checkpoint, on the bundled validation text at several lengths.

A norm that grows with the sequence length is the signature of an ill-conditioned memory (docs/design.md,
"Conditioning of the memory"): with gradient clipping at 1.0 a norm of 1e5 makes every update 1e-5 of what the
optimiser asked for. The stability tests (tests/memory/test_memory_conditioning.py) check the same quantity.

    python scripts/memory_grad_norm.py                                                # tiny MAC, 256 .. 16K tokens
    python scripts/memory_grad_norm.py --model lmm --set model.net.memory.decay_target=zero --seq-lens 256 1024
    python scripts/memory_grad_norm.py --model lmm --set model.net.memory.depth=4 +model.net.match_params=false
    python scripts/memory_grad_norm.py --ckpt logs/train/runs/NAME/checkpoints/last.ckpt

Measured 2026-12-05 (tiny, batch 1, one thread): MAC 2.91 / 2.0 / 2.56 / 2.06 at 256 / 1K / 4K / 16K tokens; with
``model.net.memory.decay_target=zero`` (eq. 13 as printed) 2.98 at 256 and 1.3e5 at 1K.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def compose(overrides: list[str]):
    """configs/train.yaml with ``overrides``, as train.py composes it (outputs under a temporary directory)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    os.environ.setdefault("PROJECT_ROOT", str(ROOT))
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = hydra_compose("train.yaml", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = cfg.paths.log_dir = tempfile.mkdtemp(prefix="grad_norm_")
    return cfg


def fresh_model_and_tokens(overrides: list[str], seed: int = 0):
    """The model ``overrides`` compose, initialised with ``seed``, and the validation split as one token stream."""
    import hydra
    import torch

    cfg = compose(overrides)
    data = hydra.utils.instantiate(cfg.data)
    data.prepare_data()
    data.setup("fit")
    ids = torch.as_tensor(data.token_ids("validation").astype("int64"))
    torch.manual_seed(seed)
    return hydra.utils.instantiate(cfg.model.net, vocab_size=data.vocab_size), ids


def checkpoint_model_and_tokens(path: str):
    """A trained checkpoint and the bundled validation text in its own tokenizer."""
    import torch

    from titans.eval.loading import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(path)
    if tokenizer is None:
        raise SystemExit(f"{path} stored no tokenizer: pass a checkpoint that train.py wrote")
    text = (ROOT / "data" / "shakespeare" / "validation.txt").read_text(encoding="utf-8")
    return model.train(), torch.as_tensor(tokenizer(text, return_tensors="pt")["input_ids"][0])


def report(title: str, model, ids, seq_lens: list[int], batch_size: int) -> None:
    from titans.models.conditioning import outer_grad_norm

    print(title)
    for n in seq_lens:
        if ids.numel() < n * batch_size:
            print(f"  {n:6d} tokens: the validation text has only {ids.numel()} tokens", file=sys.stderr)
            continue
        loss, total, groups = outer_grad_norm(model, ids[: n * batch_size].view(batch_size, n))
        top = ", ".join(f"{g} {v:.3g}" for g, v in sorted(groups.items(), key=lambda kv: -kv[1])[:4])
        print(f"  {n:6d} tokens: loss {loss:.3f}, gradient norm {total:.3g} ({top})", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mac", help="configs/model/<name>.yaml")
    p.add_argument("--size", default="tiny")
    p.add_argument("--seq-lens", nargs="+", type=int, default=[256, 1024, 4096, 16384])
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="further Hydra overrides")
    p.add_argument("--ckpt", nargs="+", default=[], help="trained checkpoints to measure instead of a fresh model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    for path in args.ckpt:
        report(path, *checkpoint_model_and_tokens(path), args.seq_lens, args.batch_size)
    if not args.ckpt:
        overrides = [f"model={args.model}", f"size={args.size}", *args.set]
        report(" ".join(overrides), *fresh_model_and_tokens(overrides, args.seed), args.seq_lens, args.batch_size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
