"""Samples per second of the `hf` adapter at batch sizes 1 and 8.

    .venv/bin/python benchmarks/local_throughput.py                 # tiny model, CPU (and GPU if present)
    .venv/bin/python benchmarks/local_throughput.py --model DIR     # also a real checkpoint, bf16 on the GPU

Builds the tiny random Qwen2.5-VL and a fixture bench in a temporary folder, then
times `HFAdapter.generate` on the same requests at each batch size (one untimed
warm-up pass per setting, best of --repeats). Greedy, fixed --max-new-tokens, so every
batch size does the same work. Target on CPU: batch 8 at least 3x batch 1.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def _requests(bench: Path, n: int, max_new_tokens: int):
    from greval.types import GenerationConfig, Request, Sample

    rows = json.loads((bench / "GREval-Bench.json").read_text())[:n]
    gen = GenerationConfig(max_tokens=max_new_tokens)
    return [
        Request(
            sample=Sample(
                sample_id=r["sample_id"], gt_lat=r["gt_lat"], gt_lon=r["gt_lon"], image_path=bench / r["image_path"]
            ),
            task="bench",
            prompt="Where was this photo taken? Reply with its latitude and longitude.",
            generation=gen,
        )
        for r in rows
    ]


def _samples_per_s(adapter, requests, batch_size: int, repeats: int) -> float:
    def one_pass() -> float:
        started = time.perf_counter()
        for i in range(0, len(requests), batch_size):
            responses = adapter.generate(requests[i : i + batch_size])
            assert all(r.error is None for r in responses), responses
        return time.perf_counter() - started

    one_pass()  # warm-up: kernels, allocator, caches for this batch shape
    return len(requests) / min(one_pass() for _ in range(repeats))


def measure(label: str, model: str, batch_sizes, requests, repeats: int, **options) -> dict[int, float]:
    from greval.adapter import get_adapter_class

    adapter = get_adapter_class("hf")(model, **options)
    info = adapter.info()
    rates = {bs: _samples_per_s(adapter, requests, bs, repeats) for bs in batch_sizes}
    adapter.close()
    base = rates[batch_sizes[0]]
    print(
        f"{label}: {info['dtype']} on {info['device']}, {len(requests)} samples, {requests[0].generation.max_tokens} new tokens each"
    )
    for bs, rate in rates.items():
        print(f"  batch {bs:>3}: {rate:8.2f} samples/s  ({rate / base:.2f}x batch {batch_sizes[0]})")
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", help="A real checkpoint (hub id or folder) to time in bf16 on the GPU as well.")
    args = parser.parse_args()

    import torch

    from greval.testing import build_tiny_vlm, make_fixture_bench

    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        tiny = str(build_tiny_vlm(Path(tmp) / "tiny"))
        bench = make_fixture_bench(Path(tmp) / "bench", n=args.samples, seed=0)
        requests = _requests(bench, args.samples, args.max_new_tokens)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, cuda={torch.cuda.is_available()}")
        rates = measure("tiny Qwen2.5-VL", tiny, batch_sizes, requests, args.repeats, dtype="float32", device="cpu")
        if len(batch_sizes) > 1:
            ratio = rates[batch_sizes[-1]] / rates[batch_sizes[0]]
            verdict = "meets" if ratio >= 3 else "misses"
            print(
                f"  -> batch {batch_sizes[-1]} is {ratio:.2f}x batch {batch_sizes[0]} on CPU ({verdict} the 3x target)"
            )
        if torch.cuda.is_available():
            print(f"GPU: {torch.cuda.get_device_name()}")
            measure("tiny Qwen2.5-VL", tiny, batch_sizes, requests, args.repeats, dtype="bfloat16", device="cuda")
            if args.model:
                measure(args.model, args.model, batch_sizes, requests, args.repeats, dtype="bfloat16", device="cuda")
        elif args.model:
            print(f"no CUDA GPU: skipping {args.model} in bf16")


if __name__ == "__main__":
    main()
