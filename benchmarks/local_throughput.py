"""Local VLM throughput: output tokens/s per batch setting, against the weight-read floor.

    python benchmarks/local_throughput.py --shape tiny            # CPU smoke test (CI)
    python benchmarks/local_throughput.py --shape 7b --backend both   # on a GPU (benchmarks/gpu_check.sh)

Builds a random Qwen2.5-VL offline (`greval.testing.build_tiny_vlm`, `--shape 7b` with the
real 7B dimensions), makes --n photos of 896×672, and generates through greval's own
`HFAdapter.generate` (and vLLM's `VLLMAdapter` with --backend vllm|both, when importable)
with EOS suppressed, so every sample writes exactly --tokens tokens. For each batch
setting it prints output tokens/s, samples/s, peak GPU memory, and, on a GPU, the ratio
of the measured time per decode step to the weight-read floor (weight bytes / memory
bandwidth: a decode step reads every weight once). `auto` is greval's --batch-size auto.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

BANDWIDTH_GBS = {"H200": 4800, "H100": 3350, "A100": 2039, "L40S": 864, "A10G": 600, "RTX 4090": 1008}


def _photos(folder: Path, n: int, size: tuple[int, int]):
    from PIL import Image

    from greval.types import Request, Sample

    requests = []
    for i in range(n):
        path = folder / f"p{i}.jpg"
        Image.new("RGB", size, ((37 * i) % 255, (91 * i) % 255, (13 * i) % 255)).save(path)
        requests.append(
            Request(sample=Sample(f"p{i}", 0.0, 0.0, image_path=path), task="bench", prompt="Where is this?")
        )
    return requests


def _bandwidth(name: str | None, given: float | None) -> float | None:
    if given:
        return given
    for key, gbs in BANDWIDTH_GBS.items():
        if name and key in name:
            return gbs
    return None


def bench_hf(model_dir: Path, requests, tokens: int, settings: list[str], device: str) -> None:
    import torch
    from greval.adapters.hf import HFAdapter

    from greval.types import GenerationConfig

    for request in requests:
        request.generation = GenerationConfig(max_tokens=tokens)
    dtype = "bfloat16" if device.startswith("cuda") else "float32"
    for setting in settings:
        adapter = HFAdapter(str(model_dir), batch_size=setting, dtype=dtype, device=device)
        adapter.eos_ids = {adapter.model.config.text_config.vocab_size + 1}  # never produced: exact lengths
        adapter.prepare(requests)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        size = adapter.batch_size
        started = time.perf_counter()
        out = []
        for i in range(0, len(requests), size):
            out += adapter.generate(requests[i : i + size])
        seconds = time.perf_counter() - started
        produced = sum(r.usage.output_tokens for r in out)
        peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
        line = f"hf  batch {setting} (={size}): {produced / seconds:,.0f} output tokens/s, {len(out) / seconds:.2f} samples/s"
        line += f", peak {peak:.1f} GiB" if peak is not None else ""
        weights = sum(p.numel() * p.element_size() for p in adapter.model.parameters())
        gbs = _bandwidth(torch.cuda.get_device_name() if device.startswith("cuda") else None, ARGS.bandwidth_gbs)
        if gbs:
            steps = -(-len(requests) // size) * tokens
            floor = steps * weights / (gbs * 1e9)
            line += f", {seconds / floor:.1f}x the weight-read floor ({weights / 1e9:.1f} GB at {gbs:,} GB/s)"
        print(line, flush=True)
        adapter.close()


def bench_vllm(model_dir: Path, requests, tokens: int) -> None:
    try:
        from greval.adapters.vllm import VLLMAdapter
    except Exception as exc:  # noqa: BLE001
        print(f"vllm: not run ({type(exc).__name__}: {exc})")
        return
    from greval.types import GenerationConfig

    for request in requests:
        request.generation = GenerationConfig(max_tokens=tokens)
    adapter = VLLMAdapter(str(model_dir), dtype="bfloat16", max_model_len=4096)
    started = time.perf_counter()
    out = adapter.generate(requests)
    seconds = time.perf_counter() - started
    produced = sum(r.usage.output_tokens for r in out)
    print(f"vllm: {produced / seconds:,.0f} output tokens/s, {len(out) / seconds:.2f} samples/s", flush=True)
    adapter.close()


def main() -> None:
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=("tiny", "7b"), default="tiny")
    parser.add_argument("--backend", choices=("hf", "vllm", "both"), default="hf")
    parser.add_argument("--n", type=int, default=None, help="photos [tiny: 16, 7b: 256]")
    parser.add_argument("--tokens", type=int, default=None, help="output tokens per sample [tiny: 8, 7b: 128]")
    parser.add_argument("--batch-sizes", default=None, help="comma list [tiny: 1,8; 7b: 8,32,128,auto]")
    parser.add_argument("--bandwidth-gbs", type=float, help="GPU memory bandwidth, GB/s (default: from the GPU name)")
    ARGS = parser.parse_args()
    import torch

    from greval.testing import build_tiny_vlm

    big = ARGS.shape == "7b"
    n = ARGS.n or (256 if big else 16)
    tokens = ARGS.tokens or (128 if big else 8)
    settings = (ARGS.batch_sizes or ("8,32,128,auto" if big else "1,8")).split(",")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        model_dir = build_tiny_vlm(tmp / "model", shape=ARGS.shape, max_pixels=896 * 672 if big else 224 * 224)
        print(
            f"built the random {ARGS.shape} model in {time.perf_counter() - started:.1f} s; {n} photos, {tokens} tokens each, {device}"
        )
        (tmp / "photos").mkdir()
        requests = _photos(tmp / "photos", n, (896, 672) if big else (224, 168))
        if ARGS.backend in ("hf", "both"):
            bench_hf(model_dir, requests, tokens, settings, device)
        if ARGS.backend in ("vllm", "both"):
            bench_vllm(model_dir, requests, tokens)


ARGS: argparse.Namespace

if __name__ == "__main__":
    main()
