#!/usr/bin/env bash
# One command for a GPU machine: issue 11's throughput targets, measured.
#   bash benchmarks/gpu_check.sh        (greval installed; vLLM optional)
# Builds the random 7B-shaped Qwen2.5-VL (~1 min), then hf at batch 8 (today's default),
# 32, 128 and auto, and vLLM when importable. Estimated 5-7 minutes on one H200; not timed
# here (no GPU was available when it was written).
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python benchmarks/local_throughput.py --shape 7b --backend both --n 256 --tokens 128 --batch-sizes 8,32,128,auto
