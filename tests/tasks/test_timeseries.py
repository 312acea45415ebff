"""Forecasting (Table 3): splits, normalisation, window boundaries, metrics, models, configs and a train.py run."""

from __future__ import annotations

import json

import hydra
import lightning as L
import numpy as np
import pytest
import torch

from titans.data import DataUnavailableError
from titans.data.timeseries import DATASETS, ForecastingDataModule, read_series_csv, split_borders
from titans.models.forecasting import DLinear, MemoryForecaster, MovingAverage, RevIN, patch_count
from titans.training.forecasting import LitForecaster
from numerics import assert_within_reference_error, float64_copy
from recipes import composing
from train_helpers import ROOT, run_dirs, run_train
from train_helpers import compose_train_config as _compose

ETT = ROOT / "data" / "ett"
MONTH = 30 * 24


def test_ett_splits_are_12_4_4_months_and_others_70_10_20():
    assert split_borders(17420, "ett_hour") == {"train": (0, 12 * MONTH), "val": (12 * MONTH, 16 * MONTH),
                                                "test": (16 * MONTH, 20 * MONTH)}
    assert split_borders(69680, "ett_minute")["test"] == (16 * MONTH * 4, 20 * MONTH * 4)
    assert split_borders(1001, "ratio") == {"train": (0, 700), "val": (700, 801), "test": (801, 1001)}
    with pytest.raises(ValueError, match="20 months"):
        split_borders(100, "ett_hour")


def test_shipped_ett_files_are_the_benchmark_files():
    for name in ("etth1", "etth2"):
        values, columns = read_series_csv(ETT / DATASETS[name].file)
        assert values.shape == (17420, 7)
        assert columns == ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    assert "Attribution-NoDerivatives 4.0" in (ETT / "LICENSE").read_text()


def _raw_etth1() -> np.ndarray:
    return np.loadtxt(ETT / "ETTh1.csv", delimiter=",", skiprows=1, usecols=range(1, 8))


@pytest.mark.numerics
def test_normalisation_uses_the_training_rows_only(tmp_path):
    raw = _raw_etth1()
    dm = ForecastingDataModule("etth1", lookback=96, horizon=96)
    dm.setup()
    # the CSV is read as float32: the statistics of the rows rounded to float32 (in float64) are the reference
    rounded = raw.astype(np.float32).astype(np.float64)[:8640]
    assert_within_reference_error(dm.scaler.mean, raw[:8640].mean(0), rounded.mean(0), dtype=np.float32, what="mean")
    assert_within_reference_error(dm.scaler.std, raw[:8640].std(0), rounded.std(0), dtype=np.float32, what="std")
    assert not np.allclose(dm.scaler.mean, raw.mean(0), rtol=1e-3)

    # validation and test rows changed beyond recognition: the statistics (and the training windows) stay
    lines = (ETT / "ETTh1.csv").read_text().splitlines()
    changed = [line if i <= 8640 else line.split(",")[0] + ",1000,1000,1000,1000,1000,1000,1000"
               for i, line in enumerate(lines)]
    (tmp_path / "ETTh1.csv").write_text("\n".join(changed) + "\n")
    other = ForecastingDataModule("etth1", root=str(tmp_path), lookback=96, horizon=96)
    other.setup()
    np.testing.assert_array_equal(other.scaler.mean, dm.scaler.mean)
    train, train_other = dm.windows["train"], other.windows["train"]
    assert torch.equal(train[len(train) - 1]["y"], train_other[len(train_other) - 1]["y"])


@pytest.mark.numerics
@pytest.mark.parametrize("horizon", [96, 720])
def test_window_boundaries_are_exact(horizon):
    raw = _raw_etth1()
    dm = ForecastingDataModule("etth1", lookback=96, horizon=horizon)
    dm.setup()
    std = raw[:8640].std(0)
    normalised = (raw - raw[:8640].mean(0)) / std

    def assert_rows(actual, a, b, what):
        # z = (x - mean) / std from x rounded to float32, z rounded to float32: |dz| <= eps (|x| / std + |z|)
        condition = (np.abs(raw[a:b]) / std + np.abs(normalised[a:b])).max()
        assert_within_reference_error(actual.numpy(), normalised[a:b], scale=condition, what=what)

    expected = {"train": (96, 8640), "val": (8640, 11520), "test": (11520, 14400)}
    for split, (first, end) in expected.items():
        windows = dm.windows[split]
        assert len(windows) == end - first - horizon + 1
        item = windows[0]
        assert_rows(item["x"], first - 96, first, f"{split} first x")
        assert_rows(item["y"], first, first + horizon, f"{split} first y")
        last = windows[len(windows) - 1]
        assert_rows(last["y"], end - horizon, end, f"{split} last y")
        with pytest.raises(IndexError):
            windows[len(windows)]
    assert len(dm.test_dataloader().dataset) == 2880 - horizon + 1  # no test window dropped


def test_missing_files_give_one_line_naming_the_file_and_the_public_copies(tmp_path):
    with pytest.raises(DataUnavailableError) as err:
        ForecastingDataModule("ettm1", root=str(tmp_path))
    message = str(err.value)
    assert "ETTm1.csv" in message and "ETDataset" in message and "\n" not in message
    with pytest.raises(DataUnavailableError, match="data.root"):
        ForecastingDataModule("traffic")
    with pytest.raises(ValueError, match="unknown forecasting data set"):
        ForecastingDataModule("ettx")


class RepeatLast(torch.nn.Module):
    """Forecast every step with the window's last value (a hand-checkable forecaster with one parameter)."""

    def __init__(self, horizon: int):
        super().__init__()
        self.horizon = horizon
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x[:, -1:].expand(-1, self.horizon, -1)


@pytest.mark.numerics
def test_test_metrics_are_the_mean_over_every_window_step_and_variate():
    dm = ForecastingDataModule("etth1", lookback=96, horizon=96, batch_size=100)  # 2785 windows: a partial batch
    dm.setup()
    module = LitForecaster(RepeatLast(96), optimizer={"lr": 0.0}, scheduler={})
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    metrics = trainer.test(module, datamodule=dm, verbose=False)[0]
    series = dm.windows["test"].series.numpy().astype(np.float64)
    errors = np.stack([series[t:t + 96] - series[t - 1] for t in range(11520, 14400 - 96 + 1)])
    # exact in float64 (the float32 series' differences are exact there); the reference: one float32 mean
    errors32 = torch.from_numpy(errors).float()
    assert_within_reference_error(metrics["test/mse"], np.mean(errors ** 2), errors32.pow(2).mean().item(), what="mse")
    assert_within_reference_error(metrics["test/mae"], np.mean(np.abs(errors)), errors32.abs().mean().item(),
                                  what="mae")


@pytest.mark.numerics
def test_moving_average_and_revin_by_hand():
    """Exact answers in float64; float32 within 8 x 8 eps of them (tests/numerics.py)."""
    x = torch.tensor([[1.0, 2.0, 6.0, 3.0]]).unsqueeze(-1)
    # kernel 3, ends padded with the first/last value: [1,1,2,6,3,3]
    expected = torch.tensor([[4 / 3, 3.0, 11 / 3, 4.0]], dtype=torch.float64).unsqueeze(-1)
    assert_within_reference_error(MovingAverage(3)(x), expected, what="moving average")
    revin = RevIN(1)
    y, stats = revin.normalize(x)
    var = x.double().var(unbiased=False).item()  # 3.5: y = (x - mean) / sqrt(var + eps)
    assert_within_reference_error(y.mean(), 0.0, scale=y.abs().max().item(), what="mean of y")
    assert_within_reference_error(y.var(unbiased=False), var / (var + revin.eps), what="variance of y")
    assert_within_reference_error(revin.denormalize(y, stats), x.double(), what="denormalised")
    assert patch_count(96, 16, 8) == 12 and patch_count(96, 16, 16) == 7


def test_dlinear_at_initialisation_forecasts_the_window_mean_plus_bias(tol_seed):
    """Within 8x the error of the float32 mean + bias computed directly (tests/numerics.py)."""
    torch.manual_seed(tol_seed)
    model = DLinear(3, 24, 12)
    x = torch.randn(2, 24, 3)
    bias = (model.seasonal_bias + model.trend_bias).t()  # [12, 1]
    expected = x.mean(1, keepdim=True).expand(-1, 12, -1) + bias
    expected64 = x.double().mean(1, keepdim=True).expand(-1, 12, -1) + model.seasonal_bias.double().t() + \
        model.trend_bias.double().t()
    assert_within_reference_error(model(x), expected64, expected)


@pytest.mark.parametrize("tokens,mixer", [("patch", "mlp"), ("variate", "mlp"), ("variate", "einfft")])
def test_memory_forecaster_shapes_and_a_few_steps_lower_the_loss(tokens, mixer):
    torch.manual_seed(0)
    dm = ForecastingDataModule("etth1", lookback=96, horizon=24, batch_size=16)
    batch = next(iter(dm.train_dataloader()))
    net = MemoryForecaster(7, 96, 24, tokens=tokens, d_model=32, n_layers=1, dropout=0.0, mixer=mixer,
                           memory={"num_heads": 2, "depth": 2, "expansion": 2, "chunk_size": 4})
    assert net(batch["x"]).shape == (16, 24, 7)
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = torch.nn.functional.mse_loss(net(batch["x"]), batch["y"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
    with pytest.raises(ValueError, match="expected x of shape"):
        net(batch["x"][:, :48])


def test_patch_tokens_are_causal_in_time(tol_seed):
    """The first 3 patch tokens' outputs do not see the last patch: as close to the float64 net's as those of the
    unchanged input (tests/numerics.py)."""
    torch.manual_seed(tol_seed)
    net = MemoryForecaster(1, 32, 8, tokens="patch", d_model=16, n_layers=2, patch_len=8, stride=8, revin=False,
                           memory={"num_heads": 2, "chunk_size": 2}).eval()
    net64 = float64_copy(net)
    x = torch.randn(1, 32, 1)

    def hidden(net, x):
        h = net._tokens(x)
        for block in net.blocks:
            h = block(h)
        return h

    h1 = hidden(net, x)
    x2 = x.clone()
    x2[:, 24:] += 1.0  # only the last patch (and the padding after it) changes
    h2 = hidden(net, x2)
    assert_within_reference_error(h2[:, :3], hidden(net64, x2.double())[:, :3], h1[:, :3])
    assert not torch.allclose(h1[:, 3:], h2[:, 3:])


# the experiments that declare the forecasting recipe (configs/recipe/forecasting.yaml), whatever their names
FORECASTING = composing("forecasting")
TS_EXPERIMENTS = sorted(FORECASTING)


def test_there_is_an_lmm_and_a_dlinear_experiment_per_table3_dataset():
    declared = {(d.selects["data"], d.selects["model"]) for d in FORECASTING.values()}
    for name in DATASETS:
        assert (name, "ts_lmm") in declared and (name, "ts_dlinear") in declared, name


@pytest.mark.parametrize("name", TS_EXPERIMENTS)
def test_forecasting_experiments_compose_and_instantiate(name, tmp_path, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))
    cfg = _compose(tmp_path, [f"experiment={name}"])
    assert cfg.task_name == name and cfg.test is True and cfg.data.lookback == 96
    assert cfg.callbacks.model_checkpoint.monitor == "val/mse" and cfg.get("tokenizer") is None
    dataset = FORECASTING[name].selects["data"]
    assert cfg.hydra.runtime.choices.data == dataset
    net_inputs = {"n_variates": DATASETS[dataset].n_variates, "lookback": 96, "horizon": 192}
    module = hydra.utils.instantiate(cfg.model, net=net_inputs, _convert_="all")
    assert isinstance(module, LitForecaster)
    assert module.net(torch.zeros(2, 96, net_inputs["n_variates"])).shape == (2, 192, net_inputs["n_variates"])
    from titans.training.pipeline import instantiate

    if dataset.startswith("etth"):
        dm = instantiate(cfg.data)
        assert dm.net_inputs == {"n_variates": 7, "lookback": 96, "horizon": 96}
    else:
        with pytest.raises(DataUnavailableError, match=DATASETS[dataset].file if dataset.startswith("ett")
                           else "data.root"):
            instantiate(cfg.data)


@pytest.mark.slow
def test_train_py_fits_validates_and_tests_a_forecaster(tmp_path):
    experiment = "ts_etth1_lmm"  # the DLinear experiments differ only in model.net
    run_train([f"experiment={experiment}", "data.horizon=48", "trainer.max_epochs=2", "+trainer.limit_train_batches=4",
               "+trainer.limit_val_batches=3", "+trainer.limit_test_batches=3", "model.net.d_model=16"], tmp_path)
    run = run_dirs(tmp_path, experiment)[0]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_step"] == 8 and metrics["epochs"] == 2
    assert metrics["test/mse"] > 0 and metrics["test/mae"] > 0 and metrics["best/val/mse"] > 0
    assert metrics["test_ckpt_path"].startswith(str(run / "checkpoints"))
