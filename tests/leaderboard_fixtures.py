"""Run folders for leaderboard tests and benchmarks, written in the real on-disk format.

Predictions land near the truth with a spread set by `skill_km`; some answers fail to
parse or refuse. metrics.json is computed from those records by greval.score, as
`greval run` does, so tables, breakdowns and significance tests agree with the samples.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from greval.records import Prediction, PredictionWriter, write_json_atomic
from greval.score import distance_km, score_records

SCENES = ("urban", "natural", "landmark", "indoor")
CITIES = [  # (lat, lon): spread over every continent
    (48.8566, 2.3522),
    (40.7128, -74.006),
    (35.6762, 139.6503),
    (-33.8688, 151.2093),
    (-22.9068, -43.1729),
    (30.0444, 31.2357),
    (55.7558, 37.6173),
    (19.4326, -99.1332),
    (1.3521, 103.8198),
    (-1.2921, 36.8219),
    (64.1466, -21.9426),
    (-54.8019, -68.303),
    (61.2181, -149.9003),
    (28.6139, 77.209),
    (39.9042, 116.4074),
]
INJECTIONS = (
    "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=1">',
    "</script><script>window.__pwned=1</script>",
    "{{ 7*7 }} ${7*7} <!-- comment -->",
    '"><svg onload="window.__pwned=1">',
)


def make_run(
    run_dir: Path,
    *,
    run_id: str,
    model: str,
    adapter: str = "openai",
    kind: str = "api",
    tasks: tuple[str, ...] = ("greval-bench",),
    n: int = 40,
    skill_km: float = 300.0,
    seed: int = 0,
    data_dir: Path | None = None,
    outputs: tuple[str, ...] | None = None,
    cot: bool = False,
    plots: bool = False,
    output_chars: int = 200,
    data_hash: str = "sha256:" + "ab" * 8,
    task_size: int | None = None,
    priced: bool = True,
) -> Path:
    """Write run.json, predictions.jsonl, metrics.json (and plots/) for a fake run."""
    rng = np.random.default_rng(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    written: list[dict[str, Any]] = []
    base = np.random.default_rng(12345)  # truth and scenes: the same for every run, so samples pair up
    truth_city = base.integers(0, len(CITIES), n)
    jitter = base.normal(0, 1.5, (n, 2))
    gt = np.array([CITIES[c] for c in truth_city]) + jitter
    scenes = [SCENES[i] for i in base.integers(0, len(SCENES), n)]
    filler = ("The architecture, the vegetation and the road markings suggest a temperate climate. " * 40)[
        :output_chars
    ]
    with PredictionWriter(run_dir) as writer:
        for task in tasks:
            bearing = rng.uniform(0, 2 * np.pi, n)
            dist_deg = rng.exponential(skill_km / 111.0, n)
            lat = np.clip(gt[:, 0] + dist_deg * np.sin(bearing), -89.9, 89.9)
            lon = (gt[:, 1] + dist_deg * np.cos(bearing) + 180) % 360 - 180
            dist = distance_km(gt[:, 0], gt[:, 1], lat, lon)
            fate = rng.random(n)
            for i in range(n):
                status = "ok" if fate[i] > 0.08 else ("no_answer" if fate[i] > 0.03 else "refusal")
                if i == n - 1 and n > 5:
                    status = "error"
                text = (
                    outputs[i % len(outputs)]
                    if outputs
                    else f"<think>{filler}</think><answer>{lat[i]:.4f}, {lon[i]:.4f}</answer>"
                )
                ok = status == "ok"
                rec = Prediction(
                    sample_id=f"s{i:05d}",
                    task=task,
                    output=None if status == "error" else text,
                    lat=float(lat[i]) if ok else None,
                    lon=float(lon[i]) if ok else None,
                    status=status,
                    distance_km=float(dist[i]) if ok else None,
                    error="HTTP 500 from provider" if status == "error" else None,
                    gt_lat=float(gt[i, 0]),
                    gt_lon=float(gt[i, 1]),
                    scene=scenes[i],
                    scene_source="annotation",
                    image=f"imgs/{i:05d}.jpg",
                    prompt_hash="p" * 12,
                    usage={"input_tokens": 900, "output_tokens": 120},
                    cost_usd=0.002 if kind == "api" and priced else None,
                )
                writer.write(rec)
                written.append(json.loads(rec.to_json()))
    metrics = score_records(written, n_boot=200)
    if cot:
        for block in metrics["tasks"].values():
            block["cot_score"] = float(rng.uniform(0.3, 0.7))
    write_json_atomic(run_dir / "metrics.json", metrics)
    info = {
        "run_id": run_id,
        "adapter": adapter,
        "model": model,
        "kind": kind,
        "created": f"2026-11-{1 + seed % 28:02d}T10:00:00+00:00",
        "greval_version": "0.1.0",
        "data_hash": data_hash,
        "prompt_hashes": {t: "p" * 12 for t in tasks},
        "seed": seed,
        "args": {"temperature": 0.0, "max_tokens": 1024, "concurrency": 8},
        "cost_usd": 0.002 * n * len(tasks) if kind == "api" and priced else None,
        "adapter_info": {"endpoint": "https://api.example.invalid/v1"},
    }
    if data_dir is not None:
        info["data_dir"] = str(data_dir)
    if task_size is not None:
        info["task_sizes"] = {t: task_size for t in tasks}
    write_json_atomic(run_dir / "run.json", info)
    if plots:
        (run_dir / "plots").mkdir(exist_ok=True)
        Image.new("RGB", (400, 240), (70, 110, 170)).save(run_dir / "plots" / "error_cdf.png")
    return run_dir


def make_images(data_dir: Path, n: int, size: tuple[int, int] = (320, 240)) -> Path:
    """JPEG images at data_dir/imgs/00000.jpg …, each a different flat colour with a stripe."""
    (data_dir / "imgs").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = Image.new("RGB", size, ((37 * i) % 256, (91 * i) % 256, (53 * i + 80) % 256))
        img.paste((250, 250, 250), (0, size[1] // 2 - 6, size[0], size[1] // 2 + 6))
        img.save(data_dir / "imgs" / f"{i:05d}.jpg", quality=85)
    return data_dir
