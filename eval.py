"""Evaluate a checkpoint: ``python eval.py ckpt=PATH suite=NAME [key=value ...]``.

PATH is a Lightning ``.ckpt`` file or a Hugging Face directory. Suites live in ``configs/suite/``
(table1, smoke, niah, niah_cpu, babilong, babilong_offline). Results go to experiments/results/ as JSON.
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


@hydra.main(version_base="1.3", config_path="configs", config_name="eval.yaml")
@report_expected_errors
def main(cfg: DictConfig) -> None:
    from titans.eval.runner import evaluate_checkpoint

    evaluate_checkpoint(cfg)


if __name__ == "__main__":
    main()
