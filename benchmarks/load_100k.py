"""Time `load_samples` on large annotation files (images are never opened, so none exist).

    python benchmarks/load_100k.py [--n 100000]

Cases: GREval-Bench JSON with scene labels (no classifier), the same without labels and
with ~300- or ~1,000-character reference reasoning (the classifier reads every text),
and an OSV-5M-style CSV. Prints the best of 3 runs per case (wall and process CPU time).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from greval.data import load_samples

_SENTENCES = (
    "The image shows a narrow street lined with old stone buildings and shop signs.",
    "In the distance a mountain ridge covered in pine forest is visible.",
    "The architectural style, with terracotta roofs and balconies, suggests southern Europe.",
    "Cars drive on the right and the license plates are European.",
    "A famous cathedral rises above the square.",
    "The vegetation is Mediterranean, with olive trees on dry hills.",
)


def _cot(rng: random.Random, chars: int) -> str:
    text = ""
    while len(text) < chars:
        text += rng.choice(_SENTENCES) + " "
    return text.strip()


def write_bench(folder: Path, n: int, cot_chars: int, labels: bool) -> Path:
    rng = random.Random(0)
    rows = []
    for i in range(n):
        row = {
            "sample_id": f"s{i:06d}",
            "image_path": f"imgs/s{i:06d}.jpg",
            "gt_cot": _cot(rng, cot_chars),
            "gt_lat": round(rng.uniform(-60, 70), 5),
            "gt_lon": round(rng.uniform(-180, 180), 5),
        }
        if labels:
            row["scene"] = rng.choice(("urban", "natural scene", "cultural sites"))
        rows.append(row)
    folder.mkdir(parents=True)
    (folder / "GREval-Bench.json").write_text(json.dumps(rows, indent=1))
    return folder


def write_osv5m(folder: Path, n: int) -> Path:
    rng = random.Random(0)
    lines = ["id,latitude,longitude,country,region,sub-region,city"]
    for i in range(n):
        lines.append(f"{1000000 + i},{rng.uniform(-60, 70):.5f},{rng.uniform(-180, 180):.5f},FR,Occitanie,Herault,Sete")
    folder.mkdir(parents=True)
    (folder / "test.csv").write_text("\n".join(lines) + "\n")
    return folder


def best_of(runs: int, source: dict, data: Path) -> tuple[float, float, int]:
    """Best wall time and best CPU time of this process (the latter is steadier on a busy machine)."""
    walls, cpus, count = [], [], 0
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        result = load_samples(source, data)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        count = len(result.samples)
    return min(walls), min(cpus), count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    bench = {"format": "greval-bench"}
    osv = {"format": "table", "file": "test.csv", "id_column": "id", "image_template": "{id}.jpg"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cases = [
            ("greval-bench, scene labels, 300-char cot", bench, write_bench(root / "a", args.n, 300, True)),
            ("greval-bench, no labels (classifier), 300-char cot", bench, write_bench(root / "b", args.n, 300, False)),
            (
                "greval-bench, no labels (classifier), 1000-char cot",
                bench,
                write_bench(root / "c", args.n, 1000, False),
            ),
            ("table, OSV-5M-style CSV", osv, write_osv5m(root / "d", args.n)),
        ]
        for name, source, folder in cases:
            size = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
            wall, cpu, count = best_of(3, source, folder)
            print(f"{name:53s} {count:>7,} samples {size:6.1f} MB  wall {wall:6.3f} s  cpu {cpu:6.3f} s")


if __name__ == "__main__":
    main()
