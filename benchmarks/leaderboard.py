"""Build the leaderboard site for many runs and print how long it takes and how big it is.

    python benchmarks/leaderboard.py [--runs 20] [--samples 3000] [--workdir DIR]

Target (issue): 20 runs × 3,000 samples build in ≤ 30 s on the reference machine,
significance matrix included, and the main page stays under 2 MB. The runs share one
folder of 3,000 JPEG photos (640×480), as runs over one benchmark do; outputs are ~600
characters of reasoning each. Making the inputs is not timed. The second build shows a
rebuild, where fresh thumbnails are reused.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from leaderboard_fixtures import make_images, make_run  # noqa: E402

from greval.leaderboard import build_site  # noqa: E402

KINDS = ("api", "open-weights", "offline")


def make_inputs(workdir: Path, runs: int, samples: int) -> list[Path]:
    data = workdir / "data"
    if not (data / "imgs" / f"{samples - 1:05d}.jpg").exists():
        make_images(data, samples, size=(640, 480))
    dirs = []
    for r in range(runs):
        run_dir = workdir / "runs" / f"run{r:02d}"
        if not (run_dir / "run.json").exists():
            make_run(
                run_dir,
                run_id=f"run{r:02d}",
                model=f"model-{r:02d}",
                adapter=("openai", "transformers", "vllm")[r % 3],
                kind=KINDS[r % 3],
                tasks=("greval-bench",),
                n=samples,
                skill_km=100 + 150 * r,
                seed=r,
                data_dir=data,
                plots=True,
                cot=r % 2 == 0,
                output_chars=600,
            )
        dirs.append(run_dir)
    return dirs


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep inputs here between runs (default: a temp folder)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        t0 = time.perf_counter()
        run_dirs = make_inputs(workdir, args.runs, args.samples)
        print(
            f"inputs: {args.runs} runs × {args.samples} samples ready in {time.perf_counter() - t0:.1f} s (not timed)"
        )
        site = workdir / "site"
        for label in ("fresh build", "rebuild"):
            if label == "fresh build" and (site / "thumbs").exists():
                for thumb in (site / "thumbs").iterdir():
                    thumb.unlink()
            t0 = time.perf_counter()
            index = build_site(run_dirs, site)
            elapsed = time.perf_counter() - t0
            print(f"{label}: {elapsed:.1f} s  (target ≤ 30 s, {os.cpu_count()} CPUs)")
        run_pages = sorted((site / "runs").glob("*/index.html"))
        print(f"index.html: {index.stat().st_size / 1e6:.2f} MB  (target < 2 MB)")
        print(f"largest run page: {max(p.stat().st_size for p in run_pages) / 1e6:.2f} MB")
        print(
            f"thumbnails: {len(list((site / 'thumbs').iterdir()))} files, {folder_bytes(site / 'thumbs') / 1e6:.1f} MB"
        )
        print(f"whole site: {folder_bytes(site) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
