from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest
from _skips import require
from PIL import Image, TiffImagePlugin

from greval.data import DataError, load_samples

BENCH = {"format": "greval-bench"}


def _jpeg(path: Path, color=(10, 20, 30), size=(16, 16), exif=None) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, color)
    image.save(path, format="JPEG", **({"exif": exif} if exif is not None else {}))
    return path.read_bytes()


# ---------------------------------------------------------------- greval-bench


def test_fixture_bench_loads_with_coordinates_images_and_metadata(fixture_bench):
    result = load_samples(BENCH, fixture_bench)
    assert result.problems == []
    assert len(result.samples) == 24
    records = json.loads((fixture_bench / "GREval-Bench.json").read_text())
    for sample, record in zip(result.samples, records, strict=True):
        assert sample.sample_id == record["sample_id"]
        assert (sample.gt_lat, sample.gt_lon) == (record["gt_lat"], record["gt_lon"])
        assert sample.image_path == fixture_bench / record["image_path"]
        assert sample.metadata["city"] == record["city"]
        assert (sample.scene, sample.scene_source) == (record["scene"], "data")
    assert result.samples[0].image_bytes() == (fixture_bench / records[0]["image_path"]).read_bytes()
    assert result.samples[0].image_path.relative_to(result.root).as_posix() == records[0]["image_path"]
    # the --data override may also name the file itself; the hash depends on the file only
    by_file = load_samples({**BENCH, "path": "/nonexistent"}, fixture_bench / "GREval-Bench.json")
    assert by_file.source_hash == result.source_hash and len(by_file.samples) == 24


def test_fixture_bench_is_deterministic_and_scenes_come_from_the_text(tmp_path):
    from greval.testing import make_fixture_bench

    a = make_fixture_bench(tmp_path / "a", n=30, seed=3, with_scene=False)
    b = make_fixture_bench(tmp_path / "b", n=30, seed=3, with_scene=False)
    c = make_fixture_bench(tmp_path / "c", n=30, seed=4, with_scene=False)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 31
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert (a / "GREval-Bench.json").read_bytes() != (c / "GREval-Bench.json").read_bytes()
    images = {(a / f).read_bytes() for f in files if f.suffix == ".jpg"}
    assert len(images) == 30  # all distinct
    samples = load_samples(BENCH, a).samples
    assert [s.scene for s in samples] == [("urban", "natural", "landmark")[i % 3] for i in range(30)]
    assert {s.scene_source for s in samples} == {"classifier"}
    assert all(-90 <= s.gt_lat <= 90 and -180 <= s.gt_lon <= 180 for s in samples)


def _write_bench(folder: Path, items: list) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "GREval-Bench.json").write_text(json.dumps(items, indent=2))
    return folder


def _item(sample_id, lat=10.0, lon=20.0, image=None, **extra):
    item = {"sample_id": sample_id, "image_path": image or f"imgs/{sample_id}.jpg", "gt_cot": "a street"}
    item.update(gt_lat=lat, gt_lon=lon, **extra)
    return item


def test_bad_rows_become_problems_naming_the_sample_and_the_rest_loads(tmp_path):
    items = [
        _item("good", lat="45.5"),  # numeric text is accepted
        _item("no-lat", lat=None),
        _item("nan-lon", lon=float("nan")),
        _item("far-north", lat=95.0),
        _item("good", lat=1.0),  # duplicate id
        _item("escape", image="../secret.jpg"),
        _item("absolute", image="/etc/passwd"),
        _item("word-lat", lat="north"),
        {"image_path": "imgs/x.jpg", "gt_lat": 1, "gt_lon": 2},
        _item(7, image="imgs/../imgs/7.jpg"),  # int id, path that stays inside: fine
    ]
    result = load_samples(BENCH, _write_bench(tmp_path / "b", items))
    assert [s.sample_id for s in result.samples] == ["good", "7"]
    assert result.samples[0].gt_lat == 45.5 and result.samples[1].image_path == tmp_path / "b/imgs/7.jpg"
    by_id = {p.sample_id: str(p) for p in result.problems}
    assert set(by_id) == {"no-lat", "nan-lon", "far-north", "good", "escape", "absolute", "word-lat", None}
    assert "gt_lat is missing" in by_id["no-lat"]
    assert "gt_lon is missing (NaN)" in by_id["nan-lon"]
    assert "out of range" in by_id["far-north"]
    assert "duplicate" in by_id["good"]
    assert "leaves the data folder" in by_id["escape"]
    assert "absolute" in by_id["absolute"]
    assert "not a number" in by_id["word-lat"]
    # where = file:line of the item; indent=2 puts item k at line 2 + 7*k for these 7-line items
    assert "GREval-Bench.json:9 (item 1)" in by_id["no-lat"]


def test_malformed_json_is_a_data_error_with_the_line(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "GREval-Bench.json").write_text('[\n {"sample_id": "a",\n  "gt_lat": 1,,\n}]\n')
    with pytest.raises(DataError, match=r"GREval-Bench\.json:3:\d+: not valid JSON"):
        load_samples(BENCH, folder)
    (folder / "GREval-Bench.json").write_text('{"sample_id": "a"}')
    with pytest.raises(DataError, match="expected a JSON list"):
        load_samples(BENCH, folder)
    with pytest.raises(DataError, match="no GREval-Bench.json here"):
        load_samples(BENCH, tmp_path)
    with pytest.raises(DataError, match="no such file or folder"):
        load_samples(BENCH, tmp_path / "missing")


def test_jsonl_annotations_report_their_line(tmp_path):
    file = tmp_path / "bench.jsonl"
    file.write_text(json.dumps(_item("a")) + "\n\n" + json.dumps(_item("b", lat=-91)) + "\n")
    result = load_samples(BENCH, file)
    assert [s.sample_id for s in result.samples] == ["a"]
    assert [str(p).split(": ")[0] for p in result.problems] == [f"{file}:3"]
    file.write_text(json.dumps(_item("a")) + "\n{oops\n")
    with pytest.raises(DataError, match=r"bench\.jsonl:2:"):
        load_samples(BENCH, file)


def test_hub_unreachable_says_how_to_pass_data(tmp_path):
    code = (
        "from greval.data import load_samples, DataError\n"
        "try:\n"
        "    load_samples({'format': 'greval-bench', 'hub': 'Anonymous0515/GREval-Bench'})\n"
        "except DataError as e:\n"
        "    print(e)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert "could not fetch the dataset Anonymous0515/GREval-Bench" in out.stdout, out.stderr
    assert "--data DIR" in out.stdout


# ---------------------------------------------------------------- table


def test_im2gps3k_style_csv(tmp_path):
    root = tmp_path / "im2gps3k"
    a = _jpeg(root / "images/1_a@N00.jpg")
    _jpeg(root / "images/2_b@N00.jpg")
    (root / "im2gps3k_places365.csv").write_text(
        "IMG_ID,AUTHOR,LAT,LON,S3_Label,Prob_natural\n"
        "1_a@N00.jpg,alice,48.85,2.35,1,0.2\n"
        "2_b@N00.jpg,bob,-33.86,151.2,2,\n"
        "3_c@N00.jpg,carol,,10,0,0.5\n"
    )
    source = {
        "format": "table",
        "file": "im2gps3k_places365.csv",
        "id_column": "IMG_ID",
        "lat_column": "LAT",
        "lon_column": "LON",
        "image_column": "IMG_ID",
        "image_dir": "images",
    }
    result = load_samples(source, root)
    assert [(s.sample_id, s.gt_lat, s.gt_lon) for s in result.samples] == [
        ("1_a@N00.jpg", 48.85, 2.35),
        ("2_b@N00.jpg", -33.86, 151.2),
    ]
    assert result.samples[0].image_bytes() == a
    assert result.samples[1].metadata == {"AUTHOR": "bob", "S3_Label": 2, "Prob_natural": None}
    assert [(p.sample_id, p.where) for p in result.problems] == [
        ("3_c@N00.jpg", f"{root / 'im2gps3k_places365.csv'}:4")
    ]
    assert "LAT is missing (NaN)" in str(result.problems[0])


def test_osv5m_style_csv_with_template_and_recursive_image_search(tmp_path):
    root = tmp_path / "osv5m"
    img = _jpeg(root / "images/test/01/123.jpg")
    _jpeg(root / "images/test/00/456.jpg")
    (root / "test.csv").write_text(
        "id,latitude,longitude,country,region,sub-region,city\n"
        "123,45.1,7.6,IT,Piedmont,Turin,Turin\n"
        "456,-23.5,-46.6,BR,Sao Paulo,,Sao Paulo\n"
        "789,1,2,SG,,,\n"
    )
    source = {
        "format": "table",
        "file": "test.csv",
        "id_column": "id",
        "lat_column": "latitude",
        "lon_column": "longitude",
        "image_template": "{id}.jpg",
        "image_dir": "images/test",
        "image_search": "recursive",
    }
    result = load_samples(source, root)
    assert [s.sample_id for s in result.samples] == ["123", "456", "789"]
    assert result.samples[0].image_bytes() == img
    assert result.samples[0].metadata["country"] == "IT" and result.samples[1].metadata["sub-region"] is None
    # not found in the listing: the path is where it would be, and validation reports it
    assert result.samples[2].image_path == root / "images/test/789.jpg"


def test_table_defaults_jsonl_parquet_and_scene_cot_columns(tmp_path):
    rows = [
        {"id": "r1", "lat": 1.5, "lon": 2.5, "kind": "natural scene", "why": "a street"},
        {"id": "r2", "lat": 3.5, "lon": 200.0, "kind": None, "why": "the famous temple"},
        {"id": "r3", "lat": 5.5, "lon": 6.5, "kind": None, "why": "the famous temple"},
    ]
    extra = {"scene_column": "kind", "cot_column": "why"}
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pd.DataFrame(rows).to_parquet(tmp_path / "t.parquet")
    for name in ("t.jsonl", "t.parquet"):
        result = load_samples({"format": "table", **extra}, tmp_path / name)
        assert [s.sample_id for s in result.samples] == ["r1", "r3"], name
        assert [(s.scene, s.scene_source) for s in result.samples] == [("natural", "data"), ("landmark", "classifier")]
        assert result.samples[1].gt_cot == "the famous temple"
        assert result.samples[0].image_path == tmp_path / "r1.jpg"  # default template {id}.jpg
        assert [p.sample_id for p in result.problems] == ["r2"] and "lon 200.0 is out of range" in str(
            result.problems[0]
        )
    assert "t.jsonl:2" in str(load_samples({"format": "table"}, tmp_path / "t.jsonl").problems[0])


def test_table_errors_are_data_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text('id,lat,lon\n1,2,3\n"4,5,6\n')
    with pytest.raises(DataError, match="bad.csv: not a valid CSV"):
        load_samples({"format": "table"}, bad)
    good = tmp_path / "good.csv"
    good.write_text("id,y,x\n1,2,3\n")
    with pytest.raises(DataError, match="cannot tell which column holds lat"):
        load_samples({"format": "table"}, good)
    with pytest.raises(DataError, match="no column 'LAT'"):
        load_samples({"format": "table", "lat_column": "LAT"}, good)
    with pytest.raises(DataError, match="set `file:`"):
        load_samples({"format": "table"}, tmp_path)
    with pytest.raises(DataError, match="unknown dataset format"):
        load_samples({"format": "zip"}, tmp_path)


def test_table_paths_may_not_leave_the_image_folder(tmp_path):
    (tmp_path / "t.csv").write_text("id,lat,lon,file\na,1,2,../../etc/passwd\nb,1,2,ok.jpg\n")
    result = load_samples({"format": "table", "image_column": "file"}, tmp_path / "t.csv")
    assert [s.sample_id for s in result.samples] == ["b"]
    assert result.problems[0].sample_id == "a" and "leaves the data folder" in result.problems[0].message


# ---------------------------------------------------------------- exif


def _gps_exif(lat: float, lon: float, lat_ref: str, lon_ref: str) -> Image.Exif:
    def dms(value: float) -> tuple:
        degrees = int(value)
        minutes = int((value - degrees) * 60)
        seconds = Fraction((value - degrees - minutes / 60) * 3600).limit_denominator(1000)
        return (
            TiffImagePlugin.IFDRational(degrees, 1),
            TiffImagePlugin.IFDRational(minutes, 1),
            TiffImagePlugin.IFDRational(seconds.numerator, seconds.denominator),
        )

    exif = Image.Exif()
    gps = exif.get_ifd(0x8825)
    gps.update({1: lat_ref, 2: dms(lat), 3: lon_ref, 4: dms(lon)})
    return exif


def test_exif_folder_signs_follow_refs_and_photos_without_gps_are_problems(tmp_path):
    photos = tmp_path / "photos"
    _jpeg(photos / "sydney.jpg", exif=_gps_exif(33.8688, 151.2093, "S", "E"))
    _jpeg(photos / "trip/nyc.JPEG", exif=_gps_exif(40.7128, 74.006, "N", "W"))
    _jpeg(photos / "trip/deeper/rio.jpg", exif=_gps_exif(22.9068, 43.1729, "S", "W"))
    _jpeg(photos / "no_gps.jpg")
    (photos / "broken.png").write_bytes(b"not a png")
    (photos / "notes.txt").write_text("ignored")
    result = load_samples({"format": "exif"}, photos)
    got = {s.sample_id: (round(s.gt_lat, 3), round(s.gt_lon, 3)) for s in result.samples}
    assert got == {
        "sydney.jpg": (-33.869, 151.209),
        "trip/nyc.JPEG": (40.713, -74.006),
        "trip/deeper/rio.jpg": (-22.907, -43.173),
    }
    problems = {p.sample_id: p.message for p in result.problems}
    assert set(problems) == {"no_gps.jpg", "broken.png"}
    assert "no GPS" in problems["no_gps.jpg"] and "cannot read" in problems["broken.png"]
    assert next(s for s in result.samples if s.sample_id == "sydney.jpg").load_image().size == (16, 16)


# ---------------------------------------------------------------- hf (datasets)


def test_hf_dataset_from_disk_loads_image_bytes_lazily(tmp_path):
    datasets = require("datasets", "hub")
    encoded = []
    for color in ((255, 0, 0), (0, 255, 0), (0, 0, 255)):
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "latitude": datasets.Value("float64"),
            "longitude": datasets.Value("float64"),
            "uid": datasets.Value("string"),
            "country": datasets.Value("string"),
        }
    )
    table = {
        "image": [{"bytes": b, "path": None} for b in encoded],
        "latitude": [10.0, 95.0, -5.0],
        "longitude": [20.0, 0.0, -6.0],
        "uid": ["x", "y", "z"],
        "country": ["FR", "US", "BR"],
    }
    datasets.Dataset.from_dict(table, features=features).save_to_disk(str(tmp_path / "ds"))
    source = {"format": "hf", "id_column": "uid", "lat_column": "latitude", "lon_column": "longitude"}
    result = load_samples(source, tmp_path / "ds")
    assert [(s.sample_id, s.gt_lat, s.gt_lon) for s in result.samples] == [("x", 10.0, 20.0), ("z", -5.0, -6.0)]
    assert [p.sample_id for p in result.problems] == ["y"]
    assert result.samples[0].image_path is None and result.samples[0].metadata == {"country": "FR"}
    assert result.samples[0].image_bytes() == encoded[0]
    assert result.samples[1].image_bytes() == encoded[2]
    assert result.samples[1].load_image().getpixel((0, 0)) == (0, 0, 255)
    # default column names find latitude/longitude; the id is then the row number
    assert [s.sample_id for s in load_samples({"format": "hf"}, tmp_path / "ds").samples] == ["0", "2"]
    with pytest.raises(DataError, match="no column 'lat'"):
        load_samples({"format": "hf", "lat_column": "lat"}, tmp_path / "ds")
    with pytest.raises(DataError, match="cannot open as a `datasets` dataset"):
        load_samples({"format": "hf"}, tmp_path / "nothing-here")


def test_hf_parquet_files(tmp_path):
    require("datasets", "hub")
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(buffer, format="JPEG")
    frame = pd.DataFrame({"image": [{"bytes": buffer.getvalue(), "path": "a.jpg"}], "lat": [1.0], "lon": [2.0]})
    frame.to_parquet(tmp_path / "data.parquet")
    result = load_samples({"format": "hf"}, tmp_path / "data.parquet")
    assert [(s.sample_id, s.gt_lat) for s in result.samples] == [("0", 1.0)]
    assert result.samples[0].image_bytes() == buffer.getvalue()
