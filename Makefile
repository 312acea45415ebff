# Every target installs what it needs on a fresh machine (a .venv in the repository).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch first, pinned: any other spec makes pip fetch a multi-GB CUDA build on CPU machines.
TORCH_SPEC ?= torch==2.13.0
ARGS ?=
# test workers (pytest-xdist, one torch thread each); TEST_JOBS=0 runs the tests in this process
TEST_JOBS ?= auto

export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export WANDB_MODE ?= offline

.PHONY: install install-bench train test test-fast test-triton gpu-check bench bench-throughput eval demo-long-context demo-recall ablations-small reproduce-table reproduce-small clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

# the tests also run the Triton kernels in the Triton interpreter (the gpu extra: triton, ~290 MB download)
$(VENV)/.installed-gpu: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[dev,gpu]"
	touch $@

install-bench: install
	$(BIN)/pip install -q -e ".[dev,bench]"

## the embedded default: a small model on the bundled corpus (python train.py, no arguments)
train: install
	$(BIN)/python train.py $(ARGS)

## the whole test suite, offline, on CPU (slow tests included), one worker per core
test: install $(VENV)/.installed-gpu
	$(BIN)/python -m pytest -q -n $(TEST_JOBS) --durations=25 $(ARGS)

test-fast: install
	$(BIN)/python -m pytest -q -n $(TEST_JOBS) -m "not slow" $(ARGS)

## the Triton memory kernels (in the Triton interpreter on CPU) and the flex-attention masks
test-triton: install $(VENV)/.installed-gpu
	$(BIN)/python -m pytest -q tests/memory/test_memory_triton.py tests/layers/test_attention_flex.py $(ARGS)

## one-shot GPU check (about 8 minutes on one H100/H200): experiments/results/gpu/gpu_check.{json,md}
## ARGS="--cpu" runs the harness at tiny sizes on CPU, ARGS="--sm90" compiles the kernels for sm_90 without a GPU
gpu-check: install $(VENV)/.installed-gpu
	PYTHON=$(BIN)/python scripts/gpu_check.sh $(ARGS)

## speed and memory tables (CPU; GPU when present)
bench: install-bench
	$(BIN)/python scripts/bench_memory.py $(ARGS)
	$(BIN)/python scripts/bench_models.py $(ARGS)

## evaluate a checkpoint: make eval ARGS="ckpt=PATH suite=niah_cpu"
eval: install
	$(BIN)/python eval.py $(ARGS)

## tiny MAC vs tiny SWA on S-NIAH passkey beyond the attention span (CPU, bounded time)
demo-long-context: install
	$(BIN)/python scripts/demo_long_context.py $(ARGS)

## associative recall (MQAR) beyond the attention window, every variant: table + plot in experiments/results/recall/
## (up to 20 CPU-minutes per run, two runs at a time; ARGS="--minutes 5" for a shorter budget)
demo-recall: install
	$(BIN)/python scripts/demo_recall.py $(ARGS)

## the Table 5 rows of the LMM at CPU scale (MQAR beyond the window + bundled corpus, 3 seeds): experiments/results/ablations/
ablations-small: install
	$(BIN)/python scripts/ablate_small.py $(ARGS)

## the paper's Tables 1, 2, 5 and Figures 6-9 with our results beside its rows (every result under experiments/results/):
## experiments/results/report/report.md + PNGs; ARGS="--tables 5 fig7", ARGS="--ckpt PATH --suites niah perplexity"
reproduce-table: install
	$(BIN)/python scripts/reproduce_table.py $(ARGS)

## the same tables at CPU scale: tiny Table 5 / Table 1 rows on the bundled corpus (ablate_small's runs reused), offline
## S-NIAH, BABILong and perplexity, then the report (hours of CPU; docs/experiments.md, "The CPU-scale report")
reproduce-small: install
	$(BIN)/python scripts/reproduce_small.py $(ARGS)

## training tokens/s by sequence length, batch x length and memory depth (Figures 8-9): experiments/results/throughput/
bench-throughput: install
	$(BIN)/python scripts/bench_throughput.py $(ARGS)

clean:
	rm -rf logs outputs multirun .pytest_cache data/cache
