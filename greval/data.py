"""Load a dataset into `Sample`s: the first step of load -> prompt -> generate -> parse -> score.

`load_samples(source, data=None, manifest=None)` takes the `dataset:` mapping of a task
YAML; `data` (the CLI's `--data`) replaces the source's `path`. Loading reads annotation
files only: images are never opened or stat'ed here (pixels load lazily through
`Sample.image_bytes()` / `load_image()`; `greval.validate` checks the files). A bad row
(missing or out-of-range coordinate, duplicate id, image path that leaves the data
folder) becomes a `Problem` naming the sample and is skipped; the rest loads. A file
that cannot be parsed at all raises `DataError` with file and line.

Formats (`format:`), with the YAML that selects each:

1. greval-bench: a folder with GREval-Bench.json (a JSON list of
   {"sample_id", "image_path", "gt_cot", "gt_lat", "gt_lon"}, optional "scene"; other
   fields are kept in `metadata`) and images under it (`image_path` is relative to it).
   Without a local path the Hub copy is fetched (and cached) by huggingface_hub::

       dataset:
         format: greval-bench
         hub: Anonymous0515/GREval-Bench     # used when neither path nor --data is given
         # path: ~/data/GREval-Bench         # a folder, or the .json / .jsonl file itself

2. table: a CSV / TSV / JSON / JSONL / parquet file read by pandas. Column names are
   configurable; every other column is kept in `metadata` (e.g. OSV-5M's country and
   city, for country-level scoring)::

       # Im2GPS3k: im2gps3k_places365.csv (IMG_ID, AUTHOR, LAT, LON, S3_Label, ...);
       # IMG_ID is the image's file name.
       dataset:
         format: table
         path: ~/data/im2gps3k               # folder holding the CSV (or the CSV itself)
         file: im2gps3k_places365.csv
         id_column: IMG_ID
         lat_column: LAT
         lon_column: LON
         image_column: IMG_ID                # file name relative to image_dir
         image_dir: images                   # relative to the CSV's folder; default "."

       # YFCC4k: yfcc4k_places365.csv has the same layout as Im2GPS3k.
       dataset: {format: table, path: ~/data/yfcc4k, file: yfcc4k_places365.csv,
                 id_column: IMG_ID, lat_column: LAT, lon_column: LON,
                 image_column: IMG_ID, image_dir: images}

       # OSV-5M test split: test.csv (id, latitude, longitude, country, region,
       # sub-region, city, ...); images are {id}.jpg somewhere under images/test/
       # (the official zips unpack into sub-folders 00/, 01/, ...).
       dataset:
         format: table
         path: ~/data/osv5m
         file: test.csv
         id_column: id
         lat_column: latitude
         lon_column: longitude
         image_template: "{id}.jpg"          # any column name may appear in braces
         image_dir: images/test
         image_search: recursive             # find each file name anywhere below image_dir
                                             # (one directory listing, no per-image stat)
         # scene_column: ..., cot_column: ... (optional)

   Defaults: id_column "id"; lat/lon columns: the first of lat/latitude/gt_lat/LAT
   (lon/lng/longitude/gt_lon/LON) present; image_template "{id}.jpg" when no
   image_column is set.

3. exif: a folder (searched recursively) of the user's own photos with GPS in EXIF
   (GPSLatitude/GPSLongitude + Ref). The sample id is the path relative to the folder.
   Photos without GPS are Problems. HEIC needs the `pillow-heif` package::

       dataset: {format: exif, path: ~/Pictures/trip}

4. hf: a Hugging Face `datasets` dataset: a `save_to_disk` folder, parquet files, or a
   `load_dataset` name. Image bytes are read per row on demand::

       dataset:
         format: hf
         path: ~/data/my_ds                  # save_to_disk folder, parquet file/folder, or hub name
         split: test                         # default: "test", or the only split
         image_column: image                 # an Image feature, bytes, or a path string
         lat_column: lat
         lon_column: lon
         # id_column: id (default: the row number), config: ..., data_files: ...
         # scene_column: ..., cot_column: ...

Scene labels are assigned afterwards by `greval.scenes.assign_scenes` (manifest, then
the data's label, then the reasoning-text classifier).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import io
import json
import math
import os
import posixpath
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greval.problems import DataError, Problem
from greval.types import Sample

__all__ = ["DataError", "LoadResult", "Problem", "load_samples", "register_format"]

_LOADERS: dict[str, Callable[[dict, str | Path | None], LoadResult]] = {}
_SOURCE_KEYS: dict[str, set[str]] = {}
_COLUMN_KEYS = {"id_column", "lat_column", "lon_column", "image_column", "scene_column", "cot_column"}


def register_format(name: str, keys: set[str]):
    """Decorator: `loader(source, data) -> LoadResult` reads `format: name`, whose
    `dataset:` mapping may hold `keys` (any other key is refused as a likely typo)."""

    def wrap(loader):
        _LOADERS[name] = loader
        _SOURCE_KEYS[name] = {"format", *keys}
        return loader

    return wrap


GREVAL_BENCH_FILE = "GREval-Bench.json"
EXIF_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".heic", ".heif")
_LAT_NAMES = ("lat", "latitude", "gt_lat", "LAT", "Latitude", "LATITUDE")
_LON_NAMES = ("lon", "lng", "longitude", "gt_lon", "LON", "Longitude", "LONGITUDE")


@dataclass
class LoadResult:
    samples: list[Sample]
    problems: list[Problem]
    source_hash: str  # sha256 (16 hex) of the annotation file(s): provenance for run records
    # The folder image paths are relative to (None for `datasets` images held in the
    # dataset itself): `Prediction.image` = sample.image_path.relative_to(root).
    root: Path | None = None
    format: str = "greval-bench"
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the resolved annotation file


def load_samples(source: dict, data: str | Path | None = None, manifest: str | Path | None = None) -> LoadResult:
    """Load every good sample of `source` and report the bad ones (see the module docstring)."""
    from greval.scenes import assign_scenes

    fmt = source.get("format", "greval-bench")
    if ".py:" in str(fmt):  # `format: loader.py:function`: a user's own format (see _load_plugin)
        with _gc_paused():
            result = _load_plugin(source, data)
        result.extra["n_skipped"] = len(result.problems)
        result.problems.extend(assign_scenes(result.samples, manifest))
        return result
    loader = _LOADERS.get(fmt)
    if loader is None:
        raise DataError(f"unknown dataset format {fmt!r}; use one of: {', '.join(_LOADERS)}, or FILE.py:FUNCTION")
    # A misspelt key (`id_colum:`) would otherwise be ignored and its default used in silence.
    unknown = sorted(set(source) - _SOURCE_KEYS[fmt])
    if unknown:
        raise DataError(
            f"unknown `dataset:` key(s) {unknown} for format {fmt!r}; known: {', '.join(sorted(_SOURCE_KEYS[fmt]))}"
        )
    if source.get("image_search") not in (None, "recursive"):
        raise DataError(f"`image_search: {source['image_search']}` is not known; the only value is `recursive`")
    with _gc_paused():
        result = loader(source, data)
        result.format = fmt
        # Every loader problem left its row out; the scene problems after them do not.
        result.extra["n_skipped"] = len(result.problems)
        result.problems.extend(assign_scenes(result.samples, manifest))
    return result


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: loading makes ~10 objects per row and none are
    garbage, yet each 700 allocations trigger a collection that walks them all (a third
    of the time for 100k rows). Reference counting still frees memory as usual."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# ---------------------------------------------------------------- shared row checks


class _RowError(ValueError):
    pass


def _coordinate(value: Any, name: str, limit: float) -> float:
    if (type(value) is float or type(value) is int) and -limit <= value <= limit:  # the common case, fast
        return float(value)
    if value is None or isinstance(value, bool):
        raise _RowError(f"{name} is missing")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _RowError(f"{name} is not a number: {value!r}") from None
    if math.isnan(number):
        raise _RowError(f"{name} is missing (NaN)")
    if not -limit <= number <= limit:
        raise _RowError(f"{name} {value!r} is out of range [-{limit:g}, {limit:g}]")
    return number


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


class _ImagePaths:
    """root / a relative path from the data, refusing paths that leave root. Checked on
    the text alone (no file access). Parent folders are cached because building
    pathlib.Path objects is the main cost of loading 100k rows."""

    def __init__(self, root: Path, name: str = "image_path") -> None:
        self.root, self.name = root, name
        self._folders: dict[str, Path] = {"": root}

    def __call__(self, value: Any) -> Path:
        root, name = self.root, self.name
        if type(value) is not str or not value:
            raise _RowError(f"{name} is missing" if _is_missing(value) else f"{name} is not a string: {value!r}")
        text = value.replace("\\", "/")
        if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
            raise _RowError(f"{name} {value!r} is absolute; it must be relative to the data folder {root}")
        normal = posixpath.normpath(text)
        if normal == ".." or normal.startswith("../"):
            raise _RowError(f"{name} {value!r} leaves the data folder {root}")
        folder, _, file_name = normal.rpartition("/")
        parent = self._folders.get(folder)
        if parent is None:
            parent = self._folders[folder] = root / folder
        return parent / file_name


def _text(value: Any) -> str | None:
    if type(value) is str:
        return value or None
    if _is_missing(value):
        return None
    if isinstance(value, list):  # reasoning given as a list of steps
        return "\n".join(str(step) for step in value)
    return str(value)


def _sample_id(value: Any) -> str | None:
    if type(value) is str:
        return value or None
    if _is_missing(value):
        return None
    if isinstance(value, float) and value.is_integer():  # 12.0 from a numeric column
        return str(int(value))
    return str(value)


def _hash_bytes(*chunks: bytes) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()[:16]


class _Collector:
    """Checks rows one by one; keeps good samples, turns bad rows into Problems."""

    def __init__(self, where_of: Callable[[int], str]) -> None:
        self.samples: list[Sample] = []
        self._bad: list[tuple[int, str | None, str]] = []
        self._first_index: dict[str, int] = {}
        self._where_of = where_of

    def fail(self, index: int, sample_id: str | None, message: str) -> None:
        self._bad.append((index, sample_id, message))

    def add(
        self,
        index: int,
        raw_id: Any,
        lat: Any,
        lon: Any,
        image: Callable[[], Path | None],
        *,
        lat_name: str = "gt_lat",
        lon_name: str = "gt_lon",
        gt_cot: Any = None,
        scene_label: Any = None,
        metadata: dict[str, Any] | None = None,
        image_loader: Callable[[], bytes] | None = None,
    ) -> None:
        sample_id = _sample_id(raw_id)
        if sample_id is None:
            self.fail(index, None, f"row {index} has no sample id")
            return
        try:
            gt_lat = _coordinate(lat, lat_name, 90)
            gt_lon = _coordinate(lon, lon_name, 180)
            image_path = image()
        except _RowError as exc:
            self.fail(index, sample_id, str(exc))
            return
        if sample_id in self._first_index:
            first = self._first_index[sample_id]
            self.fail(index, sample_id, f"duplicate sample id (first seen at {self._where_of(first)}); kept the first")
            return
        self._first_index[sample_id] = index
        metadata = metadata if metadata is not None else {}
        if scene_label is not None and not _is_missing(scene_label):
            metadata["scene_label"] = scene_label
        self.samples.append(
            Sample(
                sample_id=sample_id,
                gt_lat=gt_lat,
                gt_lon=gt_lon,
                image_path=image_path,
                image_loader=image_loader,
                gt_cot=_text(gt_cot),
                metadata=metadata,
            )
        )

    def problems(self) -> list[Problem]:
        return [Problem(sample_id, self._where_of(index), message) for index, sample_id, message in self._bad]


def _local_path(source: dict, data: str | Path | None) -> Path | None:
    location = data if data is not None else source.get("path")
    if location is None or location == "":
        return None
    path = Path(location).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    return path


# ---------------------------------------------------------------- greval-bench


def _fetch_from_hub(repo_id: str, revision: str | None) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, repo_type="dataset", revision=revision))
    except Exception as exc:  # offline, no network, gated repo, ...: all mean "fetch it yourself"
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(
            f"could not fetch the dataset {repo_id} from the Hugging Face Hub ({type(exc).__name__}: {reason}). "
            f"Download it where the Hub is reachable (e.g. `hf download {repo_id} --repo-type dataset "
            f"--local-dir DIR`) and pass --data DIR (the folder holding {GREVAL_BENCH_FILE} and imgs/)."
        ) from exc


def _json_item_lines(text: str) -> list[int]:
    """Line on which each item of a top-level JSON list starts (run only when reporting)."""
    decoder = json.JSONDecoder()
    separators = re.compile(r"[\s,]*")
    lines: list[int] = []
    position, line, counted_to = text.index("[") + 1, 1, 0
    while True:
        position = separators.match(text, position).end()
        if position >= len(text) or text[position] == "]":
            return lines
        line += text.count("\n", counted_to, position)
        counted_to = position
        lines.append(line)
        _, position = decoder.raw_decode(text, position)


def _parse_json(raw: bytes, file: Path) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataError(f"{file}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _parse_jsonl(raw: bytes, file: Path) -> tuple[list[Any], list[int]]:
    """Records of a JSON-lines file and the line each came from (blank lines skipped)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    records, lines = [], []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataError(f"{file}:{line_no}:{exc.colno}: not valid JSON ({exc.msg})") from None
        lines.append(line_no)
    return records, lines


_BENCH_FIELDS = ("sample_id", "image_path", "gt_cot", "gt_lat", "gt_lon", "scene")


@register_format("greval-bench", {"path", "file", "hub", "revision"})
def _load_greval_bench(source: dict, data: str | Path | None) -> LoadResult:
    file_name = source.get("file", GREVAL_BENCH_FILE)
    path = _local_path(source, data)
    if path is None:
        hub = source.get("hub")
        if not hub:
            raise DataError("the dataset has neither a local `path` nor a `hub` id; pass --data DIR")
        path = _fetch_from_hub(hub, source.get("revision"))
        found = sorted(path.rglob(file_name), key=lambda p: len(p.parts))
        if not found:
            raise DataError(f"{hub}: the Hub copy at {path} has no {file_name}; try `format: hf` for it")
        path = found[0]
    if path.is_dir():
        file = path / file_name
        if not file.is_file():
            raise DataError(f"{path}: no {file_name} here (expected the GREval-Bench layout: {file_name} + imgs/)")
    else:
        file = path
    root = file.parent
    image_paths = _ImagePaths(root)
    raw = file.read_bytes()

    if file.suffix.lower() in (".jsonl", ".ndjson"):
        items, item_lines = _parse_jsonl(raw, file)

        def where_of(index: int) -> str:
            return f"{file}:{item_lines[index]}"
    else:
        items = _parse_json(raw, file)
        if not isinstance(items, list):
            raise DataError(f"{file}:1: expected a JSON list of samples, found a {type(items).__name__}")

        @functools.cache
        def item_lines() -> list[int]:
            return _json_item_lines(raw.decode("utf-8-sig"))

        def where_of(index: int) -> str:
            return f"{file}:{item_lines()[index]} (item {index})"

    rows = _Collector(where_of)
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            rows.fail(index, None, f"item {index} is not a JSON object")
            continue
        rows.add(
            index,
            item.get("sample_id"),
            item.get("gt_lat"),
            item.get("gt_lon"),
            functools.partial(image_paths, item.get("image_path")),
            gt_cot=item.get("gt_cot"),
            scene_label=item.get("scene"),
            metadata={k: v for k, v in item.items() if k not in _BENCH_FIELDS},
        )
    return LoadResult(rows.samples, rows.problems(), _hash_bytes(raw), root=root, extra={"file": str(file)})


# ---------------------------------------------------------------- table


def _pick_column(columns: list[str], configured: str | None, defaults: tuple[str, ...], what: str, file: Any) -> str:
    if configured is not None:
        if configured not in columns:
            raise DataError(f"{file}: no column {configured!r} for {what} (columns: {', '.join(map(str, columns))})")
        return configured
    for name in defaults:
        if name in columns:
            return name
    raise DataError(
        f"{file}: cannot tell which column holds {what}; set `{what}_column` (columns: {', '.join(map(str, columns))})"
    )


_COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zip": "zip", ".xz": "xz", ".zst": "zstd"}


def _read_table(file: Path, raw: bytes, id_column: str | None):
    import pandas as pd

    suffixes = [s.lower() for s in file.suffixes] or [""]
    compression = _COMPRESSION.get(suffixes[-1])
    kind = suffixes[-2] if compression and len(suffixes) > 1 else suffixes[-1]
    if kind in (".csv", ".tsv", ".txt"):
        try:
            frame = pd.read_csv(
                io.BytesIO(raw),
                sep="\t" if kind == ".tsv" else ",",
                dtype={id_column: str} if id_column else None,
                compression=compression,
            )
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
            raise DataError(f"{file}: not a valid CSV ({' '.join(str(exc).split())})") from None
        return frame, lambda index: f"{file}:{index + 2}"  # header is line 1
    if kind in (".jsonl", ".ndjson"):
        records, lines = _parse_jsonl(raw, file)
        return _frame_from_records(records, file), lambda index: f"{file}:{lines[index]}"
    if kind == ".json":
        records = _parse_json(raw, file)
        if not isinstance(records, list):
            raise DataError(f"{file}:1: expected a JSON list of rows, found a {type(records).__name__}")
        return _frame_from_records(records, file), lambda index: f"{file} (row {index})"
    if kind == ".parquet":
        try:
            frame = pd.read_parquet(io.BytesIO(raw))
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise DataError(f"{file}: not a valid parquet file ({exc})") from None
        return frame, lambda index: f"{file} (row {index})"
    raise DataError(f"{file}: unknown table type {kind!r}; use .csv, .tsv, .json, .jsonl or .parquet")


def _frame_from_records(records: list[Any], file: Path):
    import pandas as pd

    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise DataError(f"{file}: row {index} is not a JSON object")
    return pd.DataFrame.from_records(records)


def _metadata_rows(frame, skip: set[str]) -> list[dict[str, Any]]:
    """Remaining columns of each row as plain Python values, missing values as None."""
    rest = frame[[c for c in frame.columns if c not in skip]]
    if rest.columns.empty:
        return [{} for _ in range(len(frame))]
    rest = rest.astype(object).where(rest.notna(), None)
    return rest.to_dict("records")


def _image_index(image_dir: Path) -> dict[str, Path]:
    """File name -> path for every file under image_dir (first by sorted path wins)."""
    index: dict[str, Path] = {}
    for folder, dirs, files in os.walk(image_dir):
        dirs.sort()
        for name in sorted(files):
            index.setdefault(name, Path(folder) / name)
    return index


@register_format("table", {"path", "file", "image_template", "image_dir", "image_search", *_COLUMN_KEYS})
def _load_table(source: dict, data: str | Path | None) -> LoadResult:
    path = _local_path(source, data)
    if path is None:
        raise DataError("a `table` dataset needs a `path` (or --data FILE_OR_DIR)")
    if path.is_dir():
        if not source.get("file"):
            raise DataError(f"{path} is a folder: set `file:` to the table inside it, or pass the file itself")
        file = path / source["file"]
        if not file.is_file():
            raise DataError(f"{file}: no such file")
    else:
        file = path
    image_dir = file.parent / Path(source.get("image_dir", ".")).expanduser()
    raw = file.read_bytes()
    frame, where_of = _read_table(file, raw, source.get("id_column", "id"))
    columns = [str(c) for c in frame.columns]
    id_col = _pick_column(columns, source.get("id_column"), ("id", "sample_id", "ID", "IMG_ID"), "id", file)
    lat_col = _pick_column(columns, source.get("lat_column"), _LAT_NAMES, "lat", file)
    lon_col = _pick_column(columns, source.get("lon_column"), _LON_NAMES, "lon", file)
    image_col = source.get("image_column")
    if image_col is not None:
        _pick_column(columns, image_col, (), "image", file)
    template = source.get("image_template", "{id}.jpg")
    scene_col = source.get("scene_column")
    cot_col = source.get("cot_column")
    for optional, what in ((scene_col, "scene"), (cot_col, "cot")):
        if optional is not None:
            _pick_column(columns, optional, (), what, file)
    found = _image_index(image_dir) if source.get("image_search") == "recursive" else None

    ids = frame[id_col].tolist()
    lats, lons = frame[lat_col].tolist(), frame[lon_col].tolist()
    images = frame[image_col].tolist() if image_col else None
    cots = frame[cot_col].tolist() if cot_col else [None] * len(frame)
    scenes = frame[scene_col].tolist() if scene_col else [None] * len(frame)
    metadata = _metadata_rows(frame, {id_col, lat_col, lon_col, image_col, cot_col, scene_col})
    needs_row = template is not None and image_col is None and re.search(r"\{(?!id\})", template) is not None

    relative_image = _ImagePaths(image_dir, image_col or "image")

    def image_name(index: int) -> Any:
        if images is not None:
            return images[index]
        fields = {**metadata[index], "id": _sample_id(ids[index])} if needs_row else {"id": _sample_id(ids[index])}
        try:
            return template.format(**fields)
        except (KeyError, IndexError, ValueError) as exc:
            raise _RowError(f"image_template {template!r} cannot be filled: {exc}") from None

    def image_for(index: int) -> Path:
        name = image_name(index)
        if found is not None and isinstance(name, str) and name in found:
            return found[name]
        return relative_image(name)

    rows = _Collector(where_of)
    for index in range(len(ids)):
        rows.add(
            index,
            ids[index],
            lats[index],
            lons[index],
            functools.partial(image_for, index),
            lat_name=lat_col,
            lon_name=lon_col,
            gt_cot=cots[index],
            scene_label=scenes[index],
            metadata=metadata[index],
        )
    return LoadResult(rows.samples, rows.problems(), _hash_bytes(raw), root=image_dir, extra={"file": str(file)})


# ---------------------------------------------------------------- exif


def _rational(value: Any) -> float:
    number = float(value)  # IFDRational with a zero denominator gives nan
    if math.isnan(number):
        raise _RowError("GPS value has a zero denominator")
    return number


def _gps_degrees(value: Any, ref: Any, name: str, negative_ref: str) -> float:
    if value is None:
        raise _RowError(f"no {name} in the EXIF GPS block")
    parts = tuple(value) if isinstance(value, tuple | list) else (value,)
    degrees = sum(_rational(part) / 60**i for i, part in enumerate(parts[:3]))
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    if isinstance(ref, str) and ref.strip("\x00 ").upper() == negative_ref:
        degrees = -degrees
    return degrees


def _register_heif() -> bool:
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    register_heif_opener()
    return True


@register_format("exif", {"path"})
def _load_exif(source: dict, data: str | Path | None) -> LoadResult:
    from PIL import Image, UnidentifiedImageError

    folder = _local_path(source, data)
    if folder is None or not folder.is_dir():
        raise DataError(f"an `exif` dataset needs a folder of photos (`path` or --data DIR), got {folder}")
    heif = _register_heif()
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXIF_SUFFIXES and p.is_file())
    rows = _Collector(lambda index: str(files[index]))
    digest_lines = []
    for index, file in enumerate(files):
        sample_id = file.relative_to(folder).as_posix()
        try:
            with Image.open(file) as image:
                gps = image.getexif().get_ifd(0x8825)
        except (UnidentifiedImageError, OSError) as exc:
            hint = (
                " (install pillow-heif to read HEIC)" if file.suffix.lower() in (".heic", ".heif") and not heif else ""
            )
            rows.fail(index, sample_id, f"cannot read the photo{hint}: {exc}")
            continue
        if not gps:
            rows.fail(index, sample_id, "the photo has no GPS position in its EXIF data")
            continue
        try:
            lat = _gps_degrees(gps.get(2), gps.get(1), "GPSLatitude", "S")
            lon = _gps_degrees(gps.get(4), gps.get(3), "GPSLongitude", "W")
        except (_RowError, TypeError, ValueError, ZeroDivisionError) as exc:
            rows.fail(index, sample_id, f"unreadable EXIF GPS position: {exc}")
            continue
        rows.add(index, sample_id, lat, lon, lambda file=file: file, lat_name="GPS latitude", lon_name="GPS longitude")
        digest_lines.append(f"{sample_id}\t{lat!r}\t{lon!r}\n")
    if not files:
        raise DataError(f"{folder}: no photos here (looked for {', '.join(EXIF_SUFFIXES)}, in sub-folders too)")
    return LoadResult(rows.samples, rows.problems(), _hash_bytes("".join(digest_lines).encode()), root=folder)


# ---------------------------------------------------------------- hf (datasets)


def _open_hf_dataset(source: dict, data: str | Path | None):
    import datasets

    location = data if data is not None else source.get("path")
    if location is None:
        raise DataError("an `hf` dataset needs a `path` (save_to_disk folder, parquet, or dataset name) or --data")
    split = source.get("split")
    local = Path(location).expanduser()
    try:
        if local.is_dir() and any((local / f).is_file() for f in ("state.json", "dataset_dict.json")):
            loaded = datasets.load_from_disk(str(local))
        elif source.get("data_files") or (local.is_file() and local.suffix == ".parquet"):
            files = source.get("data_files") or str(local)
            loaded = datasets.load_dataset(source.get("builder", "parquet"), data_files=files)
        else:
            loaded = datasets.load_dataset(str(location) if local.exists() else location, source.get("config"))
    except Exception as exc:  # datasets raises many types (missing files, offline hub, bad config)
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"{location}: cannot open as a `datasets` dataset ({type(exc).__name__}: {reason})") from None
    if isinstance(loaded, datasets.DatasetDict):
        names = list(loaded)
        chosen = split or ("test" if "test" in names else names[0] if len(names) == 1 else None)
        if chosen not in loaded:
            raise DataError(f"{location}: choose a split with `split:` (splits: {', '.join(names)})")
        loaded = loaded[chosen]
    return loaded, local if local.exists() else None


def _hf_image_bytes(images, column: str, index: int, base: Path | None) -> bytes:
    value = images[index][column]
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"]
        if value.get("path"):
            path = Path(value["path"])
            return (path if path.is_absolute() or base is None else base / path).read_bytes()
    raise ValueError(f"row {index}: column {column!r} holds no image")


@register_format("hf", {"path", "split", "config", "data_files", "builder", *_COLUMN_KEYS})
def _load_hf(source: dict, data: str | Path | None) -> LoadResult:
    import datasets
    import pandas as pd

    dataset, local = _open_hf_dataset(source, data)
    where = str(data if data is not None else source.get("path"))
    columns = list(dataset.column_names)
    image_col = _pick_column(columns, source.get("image_column"), ("image", "img", "image_path"), "image", where)
    lat_col = _pick_column(columns, source.get("lat_column"), _LAT_NAMES, "lat", where)
    lon_col = _pick_column(columns, source.get("lon_column"), _LON_NAMES, "lon", where)
    id_col = source.get("id_column")
    if id_col is not None:
        _pick_column(columns, id_col, (), "id", where)
    scene_col, cot_col = source.get("scene_column"), source.get("cot_column")
    for optional, what in ((scene_col, "scene"), (cot_col, "cot")):
        if optional is not None:
            _pick_column(columns, optional, (), what, where)

    feature = dataset.features[image_col]
    paths_as_text = isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")
    if isinstance(feature, datasets.Image):
        dataset = dataset.cast_column(image_col, datasets.Image(decode=False))  # bytes, not decoded pixels
    images = dataset.select_columns([image_col])
    table = (
        dataset.remove_columns([image_col]).to_pandas() if len(columns) > 1 else pd.DataFrame(index=range(len(dataset)))
    )
    image_paths = list(dataset[image_col]) if paths_as_text else None
    base = local if local is not None and local.is_dir() else (local.parent if local is not None else None)

    ids = table[id_col].tolist() if id_col else list(range(len(table)))
    lats, lons = table[lat_col].tolist(), table[lon_col].tolist()
    cots = table[cot_col].tolist() if cot_col else [None] * len(table)
    scenes = table[scene_col].tolist() if scene_col else [None] * len(table)
    metadata = _metadata_rows(table, {id_col, lat_col, lon_col, cot_col, scene_col})

    def no_path() -> None:
        return None

    relative_image = _ImagePaths(base, image_col) if base is not None else None
    rows = _Collector(lambda index: f"{where} (row {index})")
    for index in range(len(table)):
        if image_paths is not None:
            if base is None:
                rows.fail(index, _sample_id(ids[index]), "image paths in a Hub dataset cannot be resolved")
                continue
            image, loader = functools.partial(relative_image, image_paths[index]), None
        else:
            image, loader = no_path, functools.partial(_hf_image_bytes, images, image_col, index, base)
        rows.add(
            index,
            ids[index],
            lats[index],
            lons[index],
            image,
            lat_name=lat_col,
            lon_name=lon_col,
            gt_cot=cots[index],
            scene_label=scenes[index],
            metadata=metadata[index],
            image_loader=loader,
        )
    key_columns = [c for c in (id_col, lat_col, lon_col) if c]
    digest = pd.util.hash_pandas_object(table[key_columns], index=True).to_numpy().tobytes() if key_columns else b""
    return LoadResult(rows.samples, rows.problems(), _hash_bytes(digest), root=base if paths_as_text else None)


# ---------------------------------------------------------------- your own format


def _load_plugin(source: dict, data: str | Path | None) -> LoadResult:
    """`format: path/to/loader.py:function` (the task loader makes the path absolute,
    relative to the YAML). The function gets the `dataset:` options (with `path` replaced
    by --data when given) and returns or yields dicts with `sample_id`, `image_path` (a
    path relative to `path` or absolute) or `image` (encoded bytes), `gt_lat`, `gt_lon`,
    and optionally `gt_cot` and `scene`. Rows go through the same checks as every format."""
    import hashlib

    from greval.user_code import load_file

    file, _, function = str(source["format"]).rpartition(":")
    path = Path(file).expanduser()
    module = load_file(path, "greval_user_format", "format file", DataError)
    loader = getattr(module, function, None)
    if not callable(loader):
        raise DataError(f"{path} defines no function {function!r}")
    options = {k: v for k, v in source.items() if k != "format"}
    if data is not None:
        options["path"] = str(data)
    root = Path(options["path"]).expanduser() if options.get("path") else path.parent
    rows_so_far: list[Any] = []
    try:
        for row in loader(options):
            rows_so_far.append(row)
    except Exception as exc:
        raise DataError(f"{path}:{function} failed after {len(rows_so_far)} rows: {type(exc).__name__}: {exc}") from exc
    collector = _Collector(lambda i: f"{path.name}:{function} row {i}")
    for index, row in enumerate(rows_so_far):
        if not isinstance(row, dict):
            collector.fail(index, None, f"row {index} is a {type(row).__name__}, not a dict")
            continue
        image_bytes = row.get("image")
        image_path = row.get("image_path")

        def image(p=image_path, b=image_bytes) -> Path | None:
            if p is None:
                if b is None:
                    raise _RowError("needs `image_path` or `image`")
                return None
            return Path(p) if Path(p).is_absolute() else root / p

        collector.add(
            index,
            row.get("sample_id"),
            row.get("gt_lat"),
            row.get("gt_lon"),
            image,
            gt_cot=row.get("gt_cot"),
            scene_label=row.get("scene"),
            metadata={k: v for k, v in row.items() if k not in _PLUGIN_FIELDS},
            image_loader=(lambda b=image_bytes: b) if image_bytes is not None else None,
        )
    content = repr([{k: v for k, v in r.items() if k != "image"} if isinstance(r, dict) else r for r in rows_so_far])
    digest = hashlib.sha256(path.read_bytes() + content.encode()).hexdigest()[:16]
    return LoadResult(collector.samples, collector.problems(), digest, root=root, extra={"file": str(path)})


_PLUGIN_FIELDS = {"sample_id", "image_path", "image", "gt_lat", "gt_lon", "gt_cot", "scene"}
