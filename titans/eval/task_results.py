"""Result files of the forecasting (Table 3) and genomics (Table 4) runs, and the rows they give.

``experiments/results/timeseries/<experiment>.json`` (scripts/run_forecasting.py): ``suite: timeseries``,
``experiment`` (ts_<dataset>_<model>), per-horizon ``horizons`` and their ``average`` (test/mse, test/mae).
``experiments/results/genomics/<name>.json`` (scripts/run_genomics.py): ``suite: genomics``, ``tasks``
(GenomicBenchmarks task -> test/acc in [0, 1] and the run that gave it).
"""

from __future__ import annotations

from titans.eval.paper_results import TABLE3_DATASETS, TABLE3_MODELS, TABLE4_TASKS
from titans.models.variants import VARIANTS

HORIZONS = (96, 192, 336, 720)
#: dataset part of an experiment name -> Table 3 column
DATASET_NAMES = {name.lower(): name for name in TABLE3_DATASETS}


def forecaster_name(model: str) -> str:
    """Table 3's name of the model part of an experiment name: a variant's ``VariantSpec.forecasting_name`` (lmm ->
    "Neural Memory"), else the paper's baseline of that name (dlinear -> "DLinear"), else the name itself."""
    spec = VARIANTS.get(model)
    if spec is not None and spec.forecasting_name:
        return spec.forecasting_name
    return next((name for name in TABLE3_MODELS if name.lower() == model.lower()), model)


def table3_entry(record: dict) -> tuple[str, str, tuple[float, float] | None]:
    """(dataset, row name, (MSE, MAE) averaged over the four horizons, or None unless all four ran)."""
    _, dataset, model = record["experiment"].split("_", 2)
    average = record.get("average")
    complete = set(record.get("horizons", {})) == {str(h) for h in HORIZONS}
    value = (average["test/mse"], average["test/mae"]) if average and complete else None
    return DATASET_NAMES.get(dataset, dataset), f"ours: {forecaster_name(model)}", value


def table4_entry(record: dict) -> tuple[str, dict[str, float]]:
    """(row name, Table 4 column -> top-1 accuracy in %) of a genomics record."""
    by_task = {task: entry["test/acc"] for task, entry in record["tasks"].items() if "test/acc" in entry}
    row = {column: 100 * by_task[task] for column, task in TABLE4_TASKS.items() if task in by_task}
    return f"ours: {record.get('name', record.get('model', 'genomics'))}", row
