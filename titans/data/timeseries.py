"""Long-horizon forecasting data: ETTh1/ETTh2 (shipped in data/ett/) and the standard CSV files of ETTm1, ETTm2,
ECL (electricity), Traffic and Weather read from a local directory.

The protocol (the one the Titans paper's baseline numbers match; the paper states none):

- every column but ``date`` is a variate ("M" setting: all variates in, all variates out);
- chronological splits. ETT hourly: 12 / 4 / 4 months of 30 days (8640 / 2880 / 2880 rows; the last 4 months of
  the file are not used); ETT 15-minute: the same months at 4 rows an hour; the other data sets: the first 70%
  train, the last 20% test, the 10% between validation;
- z-normalisation of every variate with the mean and standard deviation of the TRAINING rows only;
- a sample is a window of ``lookback`` rows as input and the next ``horizon`` rows as target. Validation and
  test windows may look back into the split before them (their first input row is ``lookback`` rows before the
  split's start), but every TARGET row lies inside the split;
- MSE and MAE on the normalised test targets, over every window, horizon step and variate.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from titans.data.paths import data_dir as default_data_dir
from titans.data.paths import resolve_path
from titans.errors import DataUnavailableError
from titans.data.base import SplitDataModule

SPLITS = ("train", "val", "test")
#: where the public copies of the standard files are (the Autoformer / Time-Series-Library collection)
PUBLIC_COPIES = ("the ETDataset repository (github.com/zhouhaoyi/ETDataset) for ETT*, or the Autoformer / "
                 "Time-Series-Library dataset collection for electricity, traffic and weather")


@dataclass(frozen=True)
class SeriesSpec:
    """A data set of the benchmark: its CSV file and how its rows are split."""

    file: str
    split: str  # "ett_hour" | "ett_minute" | "ratio"
    n_variates: int

    def borders(self, n_rows: int) -> dict[str, tuple[int, int]]:
        """[start, end) of the TARGET-eligible rows of each split (see :func:`split_borders`)."""
        return split_borders(n_rows, self.split)


DATASETS: dict[str, SeriesSpec] = {
    "etth1": SeriesSpec("ETTh1.csv", "ett_hour", 7),
    "etth2": SeriesSpec("ETTh2.csv", "ett_hour", 7),
    "ettm1": SeriesSpec("ETTm1.csv", "ett_minute", 7),
    "ettm2": SeriesSpec("ETTm2.csv", "ett_minute", 7),
    "ecl": SeriesSpec("electricity.csv", "ratio", 321),
    "traffic": SeriesSpec("traffic.csv", "ratio", 862),
    "weather": SeriesSpec("weather.csv", "ratio", 21),
}


def split_borders(n_rows: int, kind: str) -> dict[str, tuple[int, int]]:
    """The rows each split's targets come from, as [start, end) per split.

    ``ett_hour``: 12/4/4 months of 30 days at 24 rows a day; ``ett_minute``: the same at 96 rows a day;
    ``ratio``: 70% / the rest / 20% (test = the last 20%, validation = what lies between)."""
    if kind in ("ett_hour", "ett_minute"):
        month = 30 * (24 if kind == "ett_hour" else 96)
        train, val, test = 12 * month, 4 * month, 4 * month
        if n_rows < train + val + test:
            raise ValueError(f"an ETT file has {train + val + test} rows (20 months) or more; this one has {n_rows}")
        return {"train": (0, train), "val": (train, train + val), "test": (train + val, train + val + test)}
    if kind == "ratio":
        n_train, n_test = int(n_rows * 0.7), int(n_rows * 0.2)
        return {"train": (0, n_train), "val": (n_train, n_rows - n_test), "test": (n_rows - n_test, n_rows)}
    raise ValueError(f"unknown split kind {kind!r}: use ett_hour, ett_minute or ratio")


def read_series_csv(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """The variates of a benchmark CSV (first column ``date``, then one column per variate) as float32 [T, C].

    Every cell must be a finite number: an empty, unparsable, NaN or infinite cell is a ValueError naming the file,
    its line (the header is line 1) and column, before any of it reaches a model (a NaN would surface as a NaN
    loss at step 0 and be blamed on the learning rate)."""
    path = Path(path)
    with path.open(encoding="utf-8") as f:
        header = f.readline().strip().split(",")
    if not header or header[0] != "date":
        raise ValueError(f"{path}: the first column must be 'date' (the standard benchmark layout), got {header[:1]}")
    if len(header) < 2:
        raise ValueError(f"{path}: the header names no variate column after 'date'")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": reported below
            values = np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(1, len(header)), dtype=np.float64,
                                ndmin=2)
    except ValueError:
        _raise_bad_cell(path, header)
        raise
    if values.shape[0] == 0:
        raise ValueError(f"{path} has a header but no data rows")
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{path}: line {row + 2}, column {col + 2} ({header[col + 1]!r}) is {values[row, col]} "
                         f"({int(bad.sum())} non-finite cells in all): fill or drop the missing values")
    return values.astype(np.float32), header[1:]


def _raise_bad_cell(path: Path, header: list[str]) -> None:
    """Find the first cell np.loadtxt could not read and raise a ValueError naming its line and column."""
    with path.open(encoding="utf-8") as f:
        next(f)
        for line_no, line in enumerate(f, start=2):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            cells = text.split(",")
            if len(cells) != len(header):
                raise ValueError(f"{path}: line {line_no} has {len(cells)} fields, the header names {len(header)} "
                                 f"columns")
            for col, cell in enumerate(cells[1:], start=1):
                try:
                    float(cell)
                except ValueError:
                    what = "an empty cell" if not cell.strip() else f"{cell.strip()[:20]!r}, not a number"
                    raise ValueError(f"{path}: line {line_no}, column {col + 1} ({header[col]!r}) is {what}: fill "
                                     f"or drop the missing values") from None


class StandardScaler:
    """Per-variate z-normalisation with statistics from the rows it is fitted on (the training rows)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        self.mean, self.std = mean, std

    @classmethod
    def fit(cls, rows: np.ndarray) -> "StandardScaler":
        rows = rows.astype(np.float64)
        std = rows.std(axis=0)
        return cls(rows.mean(axis=0), np.where(std > 0, std, 1.0))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.mean) / self.std).astype(np.float32)

    def inverse(self, values: np.ndarray) -> np.ndarray:
        return (values * self.std + self.mean).astype(np.float32)


class ForecastWindows(Dataset):
    """Windows whose targets lie in rows [start, end) of ``series`` [T, C]: item i is
    ``(series[start + i - lookback : start + i], series[start + i : start + i + horizon])``.

    The first window's input begins ``lookback`` rows before ``start`` (the training split has no rows before
    it, so its first target row is ``lookback``)."""

    def __init__(self, series: np.ndarray, start: int, end: int, lookback: int, horizon: int):
        self.series = torch.from_numpy(np.ascontiguousarray(series))
        self.first = max(start, lookback)  # the first target row
        self.lookback, self.horizon = lookback, horizon
        self.count = end - self.first - horizon + 1
        if self.count < 1:
            raise ValueError(f"rows [{start}, {end}) hold no window of lookback {lookback} + horizon {horizon}")

    def __len__(self) -> int:
        return self.count

    def target_start(self, index: int) -> int:
        return self.first + index

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.count:
            raise IndexError(index)
        t = self.target_start(index)
        return {"x": self.series[t - self.lookback:t], "y": self.series[t:t + self.horizon]}


class ForecastingDataModule(SplitDataModule):
    """Batches ``dict(x=[B, lookback, C], y=[B, horizon, C])`` of normalised values for ``train.py``.

    Args:
        name: one of :data:`DATASETS` (etth1, etth2, ettm1, ettm2, ecl, traffic, weather).
        root: directory of the CSV file; default ``data/ett`` for ETT*, else it must be given.
        lookback, horizon: input and output lengths (96 and 96/192/336/720 in the benchmark).
        batch_size: training and evaluation batch size. Training shuffles (seeded) and drops the last partial
        batch; validation and test use every window.
        tokenizer: accepted and ignored, so the pipeline can pass one.

    ``model_kwargs`` tells train() what the network needs from the data (``net_inputs``: variates, lookback,
    horizon).
    """

    def __init__(self, name: str = "etth1", root: str | os.PathLike | None = None, lookback: int = 96,
                 horizon: int = 96, batch_size: int = 32, seed: int = 0, num_workers: int = 0, tokenizer=None):
        super().__init__()
        if name not in DATASETS:
            raise ValueError(f"unknown forecasting data set {name!r}: use one of {', '.join(DATASETS)}")
        if lookback < 1 or horizon < 1 or batch_size < 1:
            raise ValueError(f"lookback, horizon and batch_size must be >= 1, got {lookback}, {horizon}, {batch_size}")
        self.name, self.spec = name, DATASETS[name]
        if root is None and not name.startswith("ett"):
            raise DataUnavailableError(
                f"data={name} reads {self.spec.file} from a local directory: set data.root=/path/to/dir "
                f"(public copies: {PUBLIC_COPIES})")
        self.root = resolve_path(root) if root else default_data_dir() / "ett"
        self.path = self.root / self.spec.file
        if not self.path.is_file():
            raise DataUnavailableError(
                f"{self.path} is missing: put {self.spec.file} there or set data.root to its directory "
                f"(public copies: {PUBLIC_COPIES})")
        self.lookback, self.horizon, self.batch_size = lookback, horizon, batch_size
        self.seed, self.num_workers = seed, num_workers
        self.scaler: StandardScaler | None = None
        self.columns: list[str] = []
        self.windows: dict[str, ForecastWindows] = {}

    @property
    def net_inputs(self) -> dict[str, int]:
        return {"n_variates": self.spec.n_variates, "lookback": self.lookback, "horizon": self.horizon}

    def model_kwargs(self, model_cfg=None) -> dict:
        """What this data decides about the model (keyword arguments of ``cfg.model``): the network's inputs."""
        return {"net": self.net_inputs}

    def setup(self, stage: str | None = None) -> None:
        if self.windows:
            return
        values, self.columns = read_series_csv(self.path)
        if values.shape[1] != self.spec.n_variates:
            raise ValueError(f"{self.path} has {values.shape[1]} variates, {self.name} has {self.spec.n_variates}")
        borders = self.spec.borders(len(values))
        self.scaler = StandardScaler.fit(values[slice(*borders["train"])])
        series = self.scaler.transform(values)
        self.windows = {split: ForecastWindows(series, *borders[split], self.lookback, self.horizon)
                        for split in SPLITS}

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.setup()
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(self.windows[split], batch_size=self.batch_size, shuffle=shuffle, drop_last=shuffle,
                          generator=generator, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)
