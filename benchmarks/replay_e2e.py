"""End to end: `greval run --adapter replay` on N samples — files in, predictions,
metrics, report and plots out — timed as a user would see it (a fresh process).

    python benchmarks/replay_e2e.py [--n 100000]

Target on the 2-core reference machine: ≤ 15 s for 100,000 samples. The replay adapter
needs no pixels, so the dataset's images are never opened (and need not exist).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _answers import realistic_answers  # noqa: E402


def write_inputs(folder: Path, n: int) -> tuple[Path, Path]:
    answers = realistic_answers(n, seed=0)
    bench = folder / "bench"
    bench.mkdir(parents=True)
    rows, outputs = [], []
    for i, (text, lat, lon) in enumerate(answers):
        sid = f"s{i:06d}"
        # Truth near the answer's coordinates (or anywhere for refusals): spreads distances.
        glat = 0.0 if lat != lat else max(-89.0, min(89.0, lat + (i % 7 - 3) * 0.5))
        glon = 0.0 if lon != lon else lon
        rows.append(
            {
                "sample_id": sid,
                "image_path": f"imgs/{sid}.jpg",
                "gt_cot": "",
                "gt_lat": glat,
                "gt_lon": glon,
                "scene": ("urban", "natural", "landmark")[i % 3],
            }
        )
        outputs.append(json.dumps({"sample_id": sid, "output": text}))
    (bench / "GREval-Bench.json").write_text(json.dumps(rows))
    replay = folder / "outputs.jsonl"
    replay.write_text("\n".join(outputs) + "\n")
    return bench, replay


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bench, replay = write_inputs(tmp, args.n)
        greval = [sys.executable, "-m", "greval.cli"]

        def replay_run(output: Path, *extra: str) -> None:
            command = [*greval, "run", "-q", "--adapter", "replay", "--predictions", str(replay), "--data", str(bench)]
            subprocess.run([*command, *extra, "--output", str(output)], check=True, capture_output=True)

        # Warm one-time caches (country raster) so the timing is a steady-state run.
        replay_run(tmp / "warm", "--limit", "10")
        t0 = time.perf_counter()
        replay_run(tmp / "run", "--tasks", "all")
        t_run = time.perf_counter() - t0
        t1 = time.perf_counter()
        subprocess.run([*greval, "report", str(tmp / "run"), "--format", "md"], check=True, capture_output=True)
        t_report = time.perf_counter() - t1
        lines = (tmp / "run" / "predictions.jsonl").read_text().count("\n")
        plots = sorted(p.name for p in (tmp / "run" / "plots").glob("*"))
    total = t_run + t_report
    print(f"samples: {args.n}  predictions written: {lines}")
    print(f"greval run (parse, score, metrics, summary): {t_run:.2f} s")
    print(f"greval report (tables + {len(plots)} plot files): {t_report:.2f} s")
    print(
        f"end to end: {total:.2f} s  (target ≤ 15 s for 100,000)  ratio to target: {total / 15 * 100_000 / args.n:.2f}"
    )


if __name__ == "__main__":
    main()
