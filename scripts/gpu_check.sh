#!/usr/bin/env bash
# One-shot GPU check: tests, memory-scan and training throughput on one GPU, about 8 minutes on an H100/H200.
# Writes experiments/results/gpu/gpu_check.{json,md}. Needs torch with CUDA and triton (pip install -e '.[gpu]').
#   scripts/gpu_check.sh            the whole check (fails fast without CUDA)
#   scripts/gpu_check.sh --cpu      the harness at tiny sizes on CPU (Triton interpreter)
#   scripts/gpu_check.sh --sm90     compile the Triton kernels for sm_90 without a GPU (registers, spills)
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
export TRITON_DEFAULT_FP_FUSION="${TRITON_DEFAULT_FP_FUSION:-1}"
# the Python harness keeps its own deadline (460 s); this is the hard stop behind it
exec timeout --kill-after=10 480 "$PY" scripts/gpu_check.py "$@"
