"""Train a Titans model: ``python train.py [experiment=NAME] [key=value ...]``.

Configs live in ``configs/`` (``configs/train.yaml`` is the entry point). See README.md.
"""

import os
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

from titans.cpu_threads import configure_cpu_threads  # noqa: E402

configure_cpu_threads()  # before torch: OpenMP reads its settings once

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from titans.cli import report_expected_errors, report_hydra_errors  # noqa: E402
from titans.training.hydra_utils import register_resolvers  # noqa: E402

register_resolvers()  # the names of the run directories (configs/hydra/default.yaml)
report_hydra_errors()


@hydra.main(version_base="1.3", config_path="configs", config_name="train.yaml")
@report_expected_errors
def main(cfg: DictConfig) -> float | None:
    from titans.training.pipeline import train

    try:
        metrics = train(cfg)
    finally:
        import wandb

        if wandb.run is not None:  # each multirun job gets its own wandb run
            wandb.finish()
    return metrics.get(cfg.get("optimized_metric", "val/loss"))


if __name__ == "__main__":
    main()
