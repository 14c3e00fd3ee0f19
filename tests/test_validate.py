from __future__ import annotations

import json
import shutil

import pytest
from _skips import require
from PIL import Image

from greval.data import DataError
from greval.testing import make_fixture_bench
from greval.validate import validate

BENCH = {"format": "greval-bench"}


def test_clean_fixture_has_no_problems(fixture_bench):
    assert validate(BENCH, fixture_bench) == []


def test_each_image_problem_is_named_with_its_sample(tmp_path):
    bench = make_fixture_bench(tmp_path / "bench", n=8)
    (bench / "imgs/fx-00001.jpg").write_bytes(b"this is not a jpeg")
    (bench / "imgs/fx-00002.jpg").unlink()
    Image.new("RGB", (300, 300)).save(bench / "imgs/fx-00003.jpg")  # 90,000 px
    outside = tmp_path / "outside.jpg"
    shutil.copy(bench / "imgs/fx-00004.jpg", outside)
    (bench / "imgs/fx-00004.jpg").unlink()
    (bench / "imgs/fx-00004.jpg").symlink_to(outside)
    records = json.loads((bench / "GREval-Bench.json").read_text())
    records[5]["gt_lat"] = None
    records[6]["image_path"] = "../outside.jpg"
    (bench / "GREval-Bench.json").write_text(json.dumps(records))

    problems = validate(BENCH, bench, max_pixels=224 * 224)
    by_id = {p.sample_id: p.message for p in problems}
    assert set(by_id) == {"fx-00001", "fx-00002", "fx-00003", "fx-00004", "fx-00005", "fx-00006"}
    assert "unreadable image" in by_id["fx-00001"]
    assert "not found" in by_id["fx-00002"]
    assert "300x300 = 90,000 pixels, over the limit of 50,176" in by_id["fx-00003"]
    assert "outside the data folder" in by_id["fx-00004"]
    assert "gt_lat is missing" in by_id["fx-00005"]
    assert "leaves the data folder" in by_id["fx-00006"]
    # load problems first, then image problems in sample order
    assert [p.sample_id for p in problems] == ["fx-00005", "fx-00006", "fx-00001", "fx-00002", "fx-00003", "fx-00004"]


def test_truncated_jpeg_is_caught_when_decoding(tmp_path):
    bench = make_fixture_bench(tmp_path / "bench", n=2)
    raw = (bench / "imgs/fx-00000.jpg").read_bytes()
    (bench / "imgs/fx-00000.jpg").write_bytes(raw[: len(raw) // 2])
    problems = validate(BENCH, bench, decode=True)
    assert [p.sample_id for p in problems] == ["fx-00000"] and "truncated" in problems[0].message


def test_dataset_images_without_files_are_checked_from_bytes(tmp_path):
    datasets = require("datasets", "hub")
    table = {"image": [{"bytes": b"junk", "path": None}], "lat": [1.0], "lon": [2.0]}
    features = datasets.Features(
        {"image": datasets.Image(), "lat": datasets.Value("float64"), "lon": datasets.Value("float64")}
    )
    datasets.Dataset.from_dict(table, features=features).save_to_disk(str(tmp_path / "ds"))
    problems = validate({"format": "hf"}, tmp_path / "ds")
    assert [(p.sample_id, p.message.split(" (")[0]) for p in problems] == [("0", "unreadable image")]


def test_unparseable_annotation_file_raises(tmp_path):
    (tmp_path / "GREval-Bench.json").write_text("[{")
    with pytest.raises(DataError, match="GREval-Bench.json:1:"):
        validate(BENCH, tmp_path)
