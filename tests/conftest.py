"""Test-wide settings: everything offline, deterministic, small thread pools."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# train.py runs in the tests use the eager memory step: compiling it would cost more than the few steps gain
os.environ.setdefault("TITANS_COMPILE", "false")
# under pytest-xdist (make test runs one worker per core) each worker and its subprocesses keep to one thread
_XDIST_WORKER = "PYTEST_XDIST_WORKER" in os.environ
if _XDIST_WORKER:
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

if _XDIST_WORKER:
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def single_thread():
    """One torch thread: small per-chunk ops gain nothing from threads, and OpenMP spin-waits badly on a busy CPU."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def float64_default():
    """Every tensor created without a dtype is float64 (the memory's oracle checks); restored afterwards."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


# ----------------------------------------------------------------------------------------------- tolerances
# Tests whose float32/bf16 comparisons go through tests/numerics.py take their random data's seed offset from
# ``tol_seed`` (0 in a normal run); those whose data is fixed carry the ``numerics`` mark instead.
# TITANS_TOLERANCE_SEEDS=N (scripts/check_tolerances.py) runs only these tests: the former with the offsets
# 0..N-1, the latter once.
TOLERANCE_SEEDS = int(os.environ.get("TITANS_TOLERANCE_SEEDS", "0") or 0)


@pytest.fixture
def tol_seed():
    return 0


def pytest_generate_tests(metafunc):
    if TOLERANCE_SEEDS and "tol_seed" in metafunc.fixturenames:
        metafunc.parametrize("tol_seed", range(TOLERANCE_SEEDS), ids=lambda s: f"seed{s}")


def pytest_collection_modifyitems(config, items):
    if TOLERANCE_SEEDS:
        keep = [item for item in items
                if "tol_seed" in getattr(item, "fixturenames", ()) or item.get_closest_marker("numerics")]
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep
