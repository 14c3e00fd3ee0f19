"""API runs: are they as fast as the concurrency allows, cheap per request, small in memory?

Runs `greval run --adapter openai` (a separate process, as a user would) against the fake
OpenAI-compatible server of tests/_fake_api.py (in this process, so client and server
never share a GIL) and prints:

1. throughput: N = 256 requests, 2 s server latency, --concurrency 32. The ideal is
   N · latency / concurrency = 16 s. Printed: (request phase) / ideal, where the request
   phase runs from the first request reaching the server to the last answer leaving it
   (target ≤ 1.15, aim 1.05); and (wall time − start-up) / ideal, which also counts the
   end-of-run scoring and report (start-up = process start → first request).
2. client cost per request at zero latency: the request phase of N = 1,000 requests at
   --concurrency 32, divided by N (target ≤ 5 ms). An upper bound: it includes the
   server's own time when the server is the slower side.
3. peak memory (max RSS of the greval process) of a 3,000-sample run with 1-megapixel
   photo-like JPEGs (~560 KB each, noisy: a worst case) at zero latency (target ≤ 600 MB),
   and the peak while requests are being sent (sampled every 20 ms), which is the part
   the API client owns; what comes after is the end-of-run scoring.

    .venv/bin/python benchmarks/api_throughput.py            # all three, ~2 minutes
    .venv/bin/python benchmarks/api_throughput.py --quick    # smaller N, for a smoke check
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from _fake_api import FakeAPI  # noqa: E402

from greval.testing import make_fixture_bench  # noqa: E402


def run_greval(server: FakeAPI, bench: Path, work: Path, concurrency: int) -> dict[str, float]:
    """One `greval run` in a child process; timings on the server's clock, child's max RSS."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env["GREVAL_CACHE_DIR"] = str(work / "cache")  # fresh: every request really goes out
    # The country raster is a one-time build per machine, not per run: build it before timing.
    subprocess.run([sys.executable, "-c", "from greval.geo import prepare; prepare()"], env=env, check=True)
    command = [
        sys.executable,
        "-m",
        "greval",
        "run",
        "--adapter",
        "openai",
        "--model",
        "gpt-4o",
        "--base-url",
        server.openai_url,
        "--data",
        str(bench),
        "--tasks",
        "all",
        "--output",
        str(work / "run"),
        "--concurrency",
        str(concurrency),
        "--quiet",
    ]
    before = len(server.log)
    started = time.monotonic()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples: list[tuple[float, int]] = []  # (time, RSS bytes), to split the peak by phase
    watcher = threading.Thread(target=_watch_rss, args=(child.pid, samples), daemon=True)
    watcher.start()
    _, status, usage = os.wait4(child.pid, 0)
    ended = time.monotonic()
    watcher.join()
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"greval run failed ({child.returncode}): {child.stderr.read().decode()[-2000:]}")
    arrivals = sorted(entry.t for entry in server.log[before:])
    requests_end = arrivals[-1] + server.latency
    return {
        "rss_requests_mb": max((rss for t, rss in samples if t <= requests_end), default=0) / 2**20,
        "requests": len(arrivals),
        "startup_s": arrivals[0] - started,
        "request_phase_s": arrivals[-1] + server.latency - arrivals[0],
        "wall_s": ended - started,
        "tail_s": ended - requests_end,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "max_rss_mb": usage.ru_maxrss / 1024,  # Linux reports KiB
    }


def _watch_rss(pid: int, samples: list[tuple[float, int]]) -> None:
    import psutil

    try:
        process = psutil.Process(pid)
        while True:
            samples.append((time.monotonic(), process.memory_info().rss))
            time.sleep(0.02)
    except psutil.Error:
        pass  # it ended


def photo_like_bench(path: Path, n: int, size: tuple[int, int] = (1155, 866)) -> Path:
    """A GREval-Bench folder of n distinct ~1 MP JPEGs with photo-like entropy (~250 KB):
    40 noisy base images, each copy made unique by bytes after the JPEG end marker."""
    import numpy as np
    from PIL import Image

    make_fixture_bench(path, n=n, seed=0, image_size=(64, 48))  # layout and ground truth
    rows = json.loads((path / "GREval-Bench.json").read_text())
    rng = np.random.default_rng(0)
    bases = []
    for _ in range(40):
        gradient = np.linspace(0, 255, size[0])[None, :, None] * rng.uniform(0.3, 1.0, 3)
        noise = rng.normal(0, 28, (size[1], size[0], 3))
        pixels = np.clip(gradient + noise, 0, 255).astype("uint8")
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, format="JPEG", quality=90)
        bases.append(out.getvalue())
    for i, row in enumerate(rows):
        (path / row["image_path"]).write_bytes(bases[i % len(bases)] + f"greval-{i}".encode())
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 64 / 300 / 300: a smoke check, not the targets")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    n_throughput, n_overhead, n_memory = (64, 300, 300) if args.quick else (256, 1000, 3000)
    latency, concurrency = 2.0, 32

    with tempfile.TemporaryDirectory(prefix="greval-api-bench-") as tmp:
        tmp = Path(tmp)
        print(f"greval API client benchmark (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")

        bench = make_fixture_bench(tmp / "bench-small", n=max(n_throughput, n_overhead), seed=0)
        subset = tmp / "bench-throughput"
        make_fixture_bench(subset, n=n_throughput, seed=0)
        with FakeAPI(latency=latency, keep_bodies=False) as server:
            r = run_greval(server, subset, tmp / "w1", concurrency)
        ideal = n_throughput * latency / concurrency
        print(f"\n1. throughput: N={r['requests']} at {latency:.0f} s latency, concurrency {concurrency}")
        print(f"   start-up {r['startup_s']:.2f} s, request phase {r['request_phase_s']:.2f} s, ideal {ideal:.2f} s")
        print(f"   request phase / ideal          = {r['request_phase_s'] / ideal:.3f}   (target <= 1.15, aim 1.05)")
        print(
            f"   (wall - start-up) / ideal      = {(r['wall_s'] - r['startup_s']) / ideal:.3f}   "
            f"(includes {r['tail_s']:.2f} s of scoring and report after the last answer)"
        )

        with FakeAPI(latency=0.0, keep_bodies=False) as server:
            r = run_greval(server, bench, tmp / "w2", concurrency)
        per_request_ms = 1000 * r["request_phase_s"] / r["requests"]
        print(f"\n2. client cost at zero latency: N={r['requests']}, concurrency {concurrency}")
        print(
            f"   request phase {r['request_phase_s']:.2f} s -> {per_request_ms:.2f} ms per request   (target <= 5 ms)"
        )
        print(f"   greval process CPU {r['cpu_s']:.1f} s in all (start-up and scoring included)")

        if not args.skip_memory:
            big = photo_like_bench(tmp / "bench-1mp", n_memory)
            sizes = [p.stat().st_size for p in (big / "imgs").iterdir()]
            with FakeAPI(latency=0.0, keep_bodies=False) as server:
                r = run_greval(server, big, tmp / "w3", concurrency)
            print(f"\n3. memory: N={r['requests']} images of 1155x866, mean {sum(sizes) / len(sizes) / 1024:.0f} KB")
            print(f"   peak RSS of greval {r['max_rss_mb']:.0f} MB   (target <= 600 MB)")
            print(
                f"   of which while sending requests {r['rss_requests_mb']:.0f} MB; "
                "the rest is end-of-run scoring (compare: --adapter random on the same data)"
            )
            print(
                f"   request phase {r['request_phase_s']:.1f} s ({1000 * r['request_phase_s'] / r['requests']:.1f} ms/request)"
            )


if __name__ == "__main__":
    main()
