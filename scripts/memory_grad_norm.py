"""The outer (training) gradient norm of a freshly initialised model on one batch of the bundled corpus, total and
by parameter group: the check that found the deep memory's inner loop diverging at the default inner learning rate.

With gradient clipping at 1.0 (configs/trainer/default.yaml) a total norm of 1e7 scales every update by 1e-7 and
the model does not train. Measured on 2026-12-02 (tiny LMM, 4 x 256 tokens, seed 0): 2.4 at memory depth 2, 18 at
depth 3, 1.6e7 at depth 4 with theta_init 0.01; 42 at depth 4 with theta_init 0.001. The norm grows with the number
of inner steps (64 tokens: 6.9; chunk size 1: 1e22), the signature of an inner gradient descent whose step exceeds
the stability limit of its curvature, which grows with depth.

    python scripts/memory_grad_norm.py                                     # depth 2, 3 and 4 at theta_init 0.01
    python scripts/memory_grad_norm.py --depths 4 --set model.net.memory.theta_init=0.001
    python scripts/memory_grad_norm.py --model mac --depths 2 --seq-len 512
    python scripts/memory_grad_norm.py --ckpt logs/reproduce_small/mac_s0/checkpoints/last.ckpt   # a trained model

On the checkpoints of `make reproduce-small` (2026-12-02, 4 x 256 tokens of the validation split): LMM (depth 2)
1.2, MAL 1.1, Transformer++ 1.2, MAG 3.2, without convolution 2.5e3, MAC 6.3e4, and the LMM at depth 3 trained with
theta_init 0.01 1.3e5: the MAC's, the conv-less and the deeper memory's gradients explode during training.
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

    from titans.training.hydra_utils import register_hydra

    os.environ.setdefault("PROJECT_ROOT", str(ROOT))
    register_hydra()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = hydra_compose("train.yaml", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = cfg.paths.log_dir = tempfile.mkdtemp(prefix="grad_norm_")
    return cfg


def outer_grad_norms(overrides: list[str], seed: int = 0) -> tuple[float, float, dict[str, float]]:
    """(loss, total gradient norm, norm by parameter group) of the model ``overrides`` compose, at initialisation,
    on the first training batch of its data module."""
    import hydra
    import torch

    cfg = compose(overrides)
    torch.manual_seed(seed)
    data = hydra.utils.instantiate(cfg.data)
    data.prepare_data()
    data.setup("fit")
    input_ids = next(iter(data.train_dataloader()))["input_ids"]
    net = hydra.utils.instantiate(cfg.model.net, vocab_size=data.vocab_size)
    loss = net(input_ids=input_ids, labels=input_ids, return_logits=False).loss
    loss.backward()
    return (loss.item(), *_norms(net))


def checkpoint_grad_norms(path: str, seq_len: int, batch_size: int) -> tuple[float, float, dict[str, float]]:
    """The same for a trained checkpoint, on the first ``batch_size`` windows of the bundled validation text."""
    import torch

    from titans.eval.loading import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(path)
    if tokenizer is None:
        raise SystemExit(f"{path} stored no tokenizer: pass a checkpoint that train.py wrote")
    text = (ROOT / "data" / "shakespeare" / "validation.txt").read_text(encoding="utf-8")
    ids = tokenizer(text[: 8 * seq_len * batch_size], return_tensors="pt")["input_ids"][0]
    if ids.numel() < seq_len * batch_size:
        raise SystemExit(f"the validation text has {ids.numel()} tokens, fewer than {batch_size} x {seq_len}")
    input_ids = ids[: seq_len * batch_size].view(batch_size, seq_len)
    model.train()
    loss = model(input_ids=input_ids, labels=input_ids, return_logits=False).loss
    loss.backward()
    return (loss.item(), *_norms(model))


def _norms(net) -> tuple[float, dict[str, float]]:
    squares: dict[str, float] = {}
    for name, p in net.named_parameters():
        if p.grad is not None:  # "model.layers.0.mixer.memory.qkv_proj.weight" -> "model.layers.mixer"
            group = ".".join(part for part in name.split(".")[:4] if not part.isdigit())
            squares[group] = squares.get(group, 0.0) + p.grad.double().pow(2).sum().item()
    return sum(squares.values()) ** 0.5, {k: v ** 0.5 for k, v in squares.items()}


def _print(title: str, loss: float, total: float, groups: dict[str, float]) -> None:
    print(f"{title}: loss {loss:.3f}, gradient norm {total:.3g}")
    for group, norm in sorted(groups.items(), key=lambda kv: -kv[1])[:6]:
        print(f"    {group:40s} {norm:.3g}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lmm")
    p.add_argument("--size", default="tiny")
    p.add_argument("--depths", nargs="+", type=int, default=[2, 3, 4])
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="further overrides")
    p.add_argument("--ckpt", nargs="+", default=[], help="trained checkpoints to measure instead of fresh models")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    if args.ckpt:
        for path in args.ckpt:
            _print(path, *checkpoint_grad_norms(path, args.seq_len, args.batch_size))
        return 0
    for depth in args.depths:
        overrides = [f"model={args.model}", f"size={args.size}", f"model.net.memory.depth={depth}",
                     "+model.net.match_params=false", f"data.seq_len={args.seq_len}",
                     f"data.batch_size={args.batch_size}", *args.set]
        _print(f"{args.model} depth {depth} {' '.join(args.set)}".strip(), *outer_grad_norms(overrides))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
