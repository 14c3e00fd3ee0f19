"""Local throughput (issue 11), on the CPU with the tiny model: --batch-size auto, length-aware
batches whose outputs equal batch size 1's on mixed image sizes, the throughput record, and
the vLLM hint."""

from __future__ import annotations

import json
import sys
import types

import pytest
from _skips import require
from click.testing import CliRunner
from PIL import Image

require("transformers", "local")
require("torchvision", "local")

from greval.adapters import hf as hf_module  # noqa: E402

from greval.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def mixed_bench(tmp_path_factory):
    """Nine photos of three very different sizes, shuffled: batches by length must regroup them."""
    root = tmp_path_factory.mktemp("mixed")
    (root / "imgs").mkdir()
    sizes = [(64, 48), (224, 224), (32, 96)] * 3
    rows = []
    for i, size in enumerate(sizes):
        Image.new("RGB", size, (i * 25, 100, 200 - i * 20)).save(root / "imgs" / f"m{i}.png")
        rows.append({"sample_id": f"m{i}", "image_path": f"imgs/m{i}.png", "gt_lat": 10.0 + i, "gt_lon": 20.0 - i})
    (root / "GREval-Bench.json").write_text(json.dumps(rows))
    return root


def _run(tiny, bench, out, *extra):
    # --no-cache: each run must generate (a second run would otherwise be answered from the cache).
    args = ["run", "-q", "-a", "hf", "-m", str(tiny), "--data", str(bench), "--tasks", "all", "--max-tokens", "6", "--no-cache"]
    result = CliRunner().invoke(main, [*args, "--dtype", "float32", "--device", "cpu", "-o", str(out), *extra])
    assert result.exit_code == 0, result.output
    return {
        json.loads(line)["sample_id"]: json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()
    }


def test_auto_batches_by_length_give_the_outputs_of_batch_size_one(tiny, mixed_bench, tmp_path):
    one = _run(tiny, mixed_bench, tmp_path / "one", "--batch-size", "1")
    auto = _run(tiny, mixed_bench, tmp_path / "auto", "--batch-size", "auto")
    assert {k: r["output"] for k, r in auto.items()} == {k: r["output"] for k, r in one.items()}
    info = json.loads((tmp_path / "auto" / "run.json").read_text())
    assert info["adapter_info"]["batch_size"] == 8 and info["adapter_info"]["batch_size_source"] == "auto (CPU)"
    # Length-aware: each batch holds one image size, so the first batch is the 3 smallest, etc.
    sizes = {k: tuple(r["meta"]["image_size"]) for k, r in auto.items()}
    assert len(sizes) == 9 and {r["meta"]["batch"] for r in auto.values()} == {8, 1}
    throughput = info["throughput"]
    assert throughput["output_tokens_per_s"] > 0 and throughput["samples_per_s"] > 0
    assert throughput["peak_gpu_memory_gib"] is None  # no GPU: unknown, not 0
    assert throughput["batch_size"] == 8


def test_length_grouping_orders_jobs_by_input_size(tiny, mixed_bench):
    from greval.adapters._batching import input_size

    from greval.engine import Job, batched_for
    from greval.types import Request, Sample

    rows = json.loads((mixed_bench / "GREval-Bench.json").read_text())
    jobs = [
        Job(Request(sample=Sample(r["sample_id"], r["gt_lat"], r["gt_lon"], image_path=mixed_bench / r["image_path"]),
                     task="all", prompt="p"), [])
        for r in rows
    ]  # fmt: skip

    class Local:
        kind = "open-weights"

        def input_size(self, request):
            return input_size(request)

    ordered = [input_size(j.request)[0] for j in batched_for(Local(), jobs)]
    assert ordered == sorted(ordered) and ordered[0] == 32 * 96 and ordered[-1] == 224 * 224


def test_the_vllm_hint_is_given_once_on_cuda_when_vllm_is_importable(monkeypatch, caplog):
    fake = types.ModuleType("vllm")
    fake.__spec__ = types.SimpleNamespace(name="vllm", loader=None, submodule_search_locations=None)
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setattr(hf_module, "_HINTED", [])
    assert hf_module.vllm_hint("cpu") is False  # CPU: no hint
    with caplog.at_level("WARNING", logger="greval"):
        assert hf_module.vllm_hint("cuda:0") is True
        assert hf_module.vllm_hint("cuda:0") is False  # once
    assert "--backend vllm" in caplog.text and "--adapter vllm" in caplog.text
    monkeypatch.delitem(sys.modules, "vllm")
    monkeypatch.setattr(hf_module, "_HINTED", [])
    assert hf_module.vllm_hint("cuda:0") is False  # vLLM not installed: nothing to suggest


def test_the_throughput_benchmark_runs_on_cpu_with_the_tiny_shape(tmp_path):
    import subprocess

    out = subprocess.run(
        [sys.executable, "benchmarks/local_throughput.py", "--shape", "tiny", "--n", "6", "--tokens", "4",
         "--batch-sizes", "1,3"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "tokens/s" in out.stdout and "batch 3" in out.stdout
