"""Training: the LightningModule, optimisation, Hydra glue and checkpoint loading."""

from titans.training.lit_module import LitCausalLM

__all__ = ["LitCausalLM"]
