"""A task YAML may name its own format: `format: loader.py:load` (issue 9 §4)."""

from __future__ import annotations

import json

from click.testing import CliRunner
from PIL import Image

from greval.cli import main

LOADER = '''
import csv
from pathlib import Path


def load(options):
    """My lab's layout: places.txt of `id;y;x` and <id>.png beside it."""
    root = Path(options["path"])
    for row in csv.reader((root / "places.txt").open(), delimiter=";"):
        yield {"sample_id": row[0], "image_path": f"{row[0]}.png", "gt_lat": float(row[1]), "gt_lon": row[2],
               "scene": "urban", "photographer": "me"}
'''


def test_a_task_with_its_own_format_runs_end_to_end(tmp_path):
    photos = tmp_path / "lab"
    photos.mkdir()
    places = [("a", 48.85, 2.35), ("b", -33.87, 151.21), ("c", 35.68, 139.69), ("bad", 95.0, 0.0)]
    for sid, _, _ in places:
        Image.new("RGB", (16, 16), (1, 2, 3)).save(photos / f"{sid}.png")
    (photos / "places.txt").write_text("\n".join(f"{s};{y};{x}" for s, y, x in places) + "\n")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "loader.py").write_text(LOADER)
    (tasks / "lab.yaml").write_text(f"dataset:\n  format: loader.py:load\n  path: {photos}\ntemplate: coords\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "-q", "-a", "random", "--tasks", str(tasks / "lab.yaml"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())["tasks"]["lab"]
    assert metrics["n"] == 3 and metrics["scene_counts"] == {"urban": 3}
    assert "bad" in result.output and "gt_lat 95.0 is out of range" in result.output  # checked like any format
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert {r["sample_id"] for r in records} == {"a", "b", "c"}


def test_a_broken_format_file_and_the_unused_metrics_key_say_what_is_wrong(tmp_path):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "loader.py").write_text("def load(options):\n    raise OSError('disk gone')\n")
    (tasks / "t.yaml").write_text(f"dataset:\n  format: loader.py:load\n  path: {tmp_path}\n")
    result = CliRunner().invoke(
        main, ["run", "-q", "-a", "random", "--tasks", str(tasks / "t.yaml"), "-o", str(tmp_path / "r")]
    )
    assert result.exit_code == 2 and "loader.py:load failed after 0 rows: OSError: disk gone" in result.output
    (tasks / "m.yaml").write_text(f"dataset:\n  format: loader.py:load\n  path: {tmp_path}\nmetrics: [acc]\n")
    result = CliRunner().invoke(
        main, ["run", "-q", "-a", "random", "--tasks", str(tasks / "m.yaml"), "-o", str(tmp_path / "r")]
    )
    assert result.exit_code == 2 and "`metrics:` is not a task setting" in result.output
