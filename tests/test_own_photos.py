"""Your own photos with one flag (issue 10 §2): `--data photos.csv` or `--data folder/`
without --tasks, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_data import _gps_exif, _jpeg

from greval.cli import main

PLACES = [(48.8566, 2.3522), (40.7128, -74.006), (-33.8688, 151.2093), (35.6762, 139.6503), (-22.9068, -43.1729)]


def _greval(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _table(folder: Path, header: str = "image,latitude,longitude") -> Path:
    rows = []
    for i, (lat, lon) in enumerate(PLACES):
        _jpeg(folder / "pics" / f"p{i}.jpg", color=(i * 40, 10, 10))
        rows.append(f"pics/p{i}.jpg,{lat},{lon}")
    path = folder / "photos.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_a_csv_of_photos_runs_with_data_alone(tmp_path):
    table = _table(tmp_path)
    out = tmp_path / "run"
    result = _greval("run", "-q", "--adapter", "random", "--data", table, "-o", out)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())["tasks"]
    assert list(metrics) == ["photos"] and metrics["photos"]["n"] == 5
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(r["sample_id"] for r in records) == [f"pics/p{i}.jpg" for i in range(5)]  # no id column: the path
    assert (records[0]["gt_lat"], records[0]["gt_lon"]) in PLACES
    assert _greval("data", "validate", "--data", table).exit_code == 0


def test_a_folder_of_geotagged_photos_runs_and_lists_photos_without_gps(tmp_path):
    photos = tmp_path / "trip"
    for i, (lat, lon) in enumerate(PLACES[:4]):
        _jpeg(
            photos / f"{i}.jpg", exif=_gps_exif(abs(lat), abs(lon), "N" if lat >= 0 else "S", "E" if lon >= 0 else "W")
        )
    _jpeg(photos / "no_gps.jpg")
    out = tmp_path / "run"
    result = _greval("run", "-q", "--adapter", "random", "--data", photos, "-o", out)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())["tasks"]
    assert list(metrics) == ["trip"] and metrics["trip"]["n"] == 4
    assert "no_gps.jpg" in result.output
    assert json.loads((out / "run.json").read_text())["skipped"]


def test_ambiguous_columns_say_so_and_columns_settles_it(tmp_path):
    table = _table(tmp_path, header="image,lat,lon")
    text = table.read_text().splitlines()
    table.write_text("\n".join([text[0] + ",latitude"] + [row + ",0" for row in text[1:]]) + "\n")
    out = tmp_path / "run"
    result = _greval("run", "-q", "--adapter", "random", "--data", table, "-o", out)
    assert result.exit_code == 2
    assert "ambiguous lat column: lat and latitude" in result.output and "--columns" in result.output
    assert "Traceback" not in result.output
    fixed = _greval("run", "-q", "--adapter", "random", "--data", table, "--columns", "lat=lat", "-o", out)
    assert fixed.exit_code == 0, fixed.output
    assert json.loads((out / "metrics.json").read_text())["tasks"]["photos"]["n"] == 5


@pytest.mark.parametrize(
    "content, message",
    [
        ("photo,y,x\na.jpg,1,2\n", "no lat column found"),
        ('\x00\x01 not,a "table\n\n', "photos.csv"),
    ],
)
def test_an_unusable_table_names_the_flag(tmp_path, content, message):
    table = tmp_path / "photos.csv"
    table.write_text(content)
    result = _greval("run", "-q", "--adapter", "random", "--data", table, "-o", tmp_path / "run")
    assert result.exit_code == 2 and message in result.output and "--columns" in result.output
    assert "not valid JSON" not in result.output


def test_a_greval_bench_folder_still_runs_the_builtin_tasks(fixture_bench, tmp_path):
    result = _greval("run", "-q", "--adapter", "random", "--data", fixture_bench, "-o", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert list(json.loads((tmp_path / "run" / "metrics.json").read_text())["tasks"]) == ["all"]
