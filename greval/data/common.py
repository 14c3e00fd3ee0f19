"""What every format shares: the registry, `LoadResult`, and the row checks that turn a bad row
into a `Problem` naming the sample."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import math
import posixpath
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greval.problems import DataError, Problem
from greval.types import Sample

LOADERS: dict[str, Callable[[dict, str | Path | None], LoadResult]] = {}

SOURCE_KEYS: dict[str, set[str]] = {}

COLUMN_KEYS = {"id_column", "lat_column", "lon_column", "image_column", "scene_column", "cot_column"}


def register_format(name: str, keys: set[str]):
    """Decorator: `loader(source, data) -> LoadResult` reads `format: name`, whose
    `dataset:` mapping may hold `keys` (any other key is refused as a likely typo)."""

    def wrap(loader):
        LOADERS[name] = loader
        SOURCE_KEYS[name] = {"format", *keys}
        return loader

    return wrap


GREVAL_BENCH_FILE = "GREval-Bench.json"

EXIF_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".heic", ".heif")

LAT_NAMES = ("lat", "latitude", "gt_lat", "LAT", "Latitude", "LATITUDE")

LON_NAMES = ("lon", "lng", "longitude", "gt_lon", "LON", "Longitude", "LONGITUDE")


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


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
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


class RowError(ValueError):
    pass


def coordinate(value: Any, name: str, limit: float) -> float:
    if (type(value) is float or type(value) is int) and -limit <= value <= limit:  # the common case, fast
        return float(value)
    if value is None or isinstance(value, bool):
        raise RowError(f"{name} is missing")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RowError(f"{name} is not a number: {value!r}") from None
    if math.isnan(number):
        raise RowError(f"{name} is missing (NaN)")
    if not -limit <= number <= limit:
        raise RowError(f"{name} {value!r} is out of range [-{limit:g}, {limit:g}]")
    return number


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


class ImagePaths:
    """root / a relative path from the data, refusing paths that leave root. Checked on
    the text alone (no file access). Parent folders are cached because building
    pathlib.Path objects is the main cost of loading 100k rows."""

    def __init__(self, root: Path, name: str = "image_path") -> None:
        self.root, self.name = root, name
        self._folders: dict[str, Path] = {"": root}

    def __call__(self, value: Any) -> Path:
        root, name = self.root, self.name
        if type(value) is not str or not value:
            raise RowError(f"{name} is missing" if is_missing(value) else f"{name} is not a string: {value!r}")
        text = value.replace("\\", "/")
        if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
            raise RowError(f"{name} {value!r} is absolute; it must be relative to the data folder {root}")
        normal = posixpath.normpath(text)
        if normal == ".." or normal.startswith("../"):
            raise RowError(f"{name} {value!r} leaves the data folder {root}")
        folder, _, file_name = normal.rpartition("/")
        parent = self._folders.get(folder)
        if parent is None:
            parent = self._folders[folder] = root / folder
        return parent / file_name


def as_text(value: Any) -> str | None:
    if type(value) is str:
        return value or None
    if is_missing(value):
        return None
    if isinstance(value, list):  # reasoning given as a list of steps
        return "\n".join(str(step) for step in value)
    return str(value)


def as_sample_id(value: Any) -> str | None:
    if type(value) is str:
        return value or None
    if is_missing(value):
        return None
    if isinstance(value, float) and value.is_integer():  # 12.0 from a numeric column
        return str(int(value))
    return str(value)


def hash_bytes(*chunks: bytes) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()[:16]


class Collector:
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
        sample_id = as_sample_id(raw_id)
        if sample_id is None:
            self.fail(index, None, f"row {index} has no sample id")
            return
        try:
            gt_lat = coordinate(lat, lat_name, 90)
            gt_lon = coordinate(lon, lon_name, 180)
            image_path = image()
        except RowError as exc:
            self.fail(index, sample_id, str(exc))
            return
        if sample_id in self._first_index:
            first = self._first_index[sample_id]
            self.fail(index, sample_id, f"duplicate sample id (first seen at {self._where_of(first)}); kept the first")
            return
        self._first_index[sample_id] = index
        metadata = metadata if metadata is not None else {}
        if scene_label is not None and not is_missing(scene_label):
            metadata["scene_label"] = scene_label
        self.samples.append(
            Sample(
                sample_id=sample_id,
                gt_lat=gt_lat,
                gt_lon=gt_lon,
                image_path=image_path,
                image_loader=image_loader,
                gt_cot=as_text(gt_cot),
                metadata=metadata,
            )
        )

    def problems(self) -> list[Problem]:
        return [Problem(sample_id, self._where_of(index), message) for index, sample_id, message in self._bad]


def local_path(source: dict, data: str | Path | None) -> Path | None:
    location = data if data is not None else source.get("path")
    if location is None or location == "":
        return None
    path = Path(location).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    return path


def json_item_lines(text: str) -> list[int]:
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


def parse_json(raw: bytes, file: Path) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataError(f"{file}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def parse_jsonl(raw: bytes, file: Path) -> tuple[list[Any], list[int]]:
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


def pick_column(columns: list[str], configured: str | None, defaults: tuple[str, ...], what: str, file: Any) -> str:
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


@dataclass
class Columns:
    """The columns a table-like format (table, hf) reads: each one configured in the
    `dataset:` mapping (`lat_column: ...`) is checked against the data's own; the required
    ones not configured are found by their usual names; the optional ones stay None."""

    id: str | None
    lat: str
    lon: str
    image: str | None
    scene: str | None
    cot: str | None

    @classmethod
    def pick(cls, source: dict, columns: list[str], where: Any, defaults: dict[str, tuple[str, ...]]) -> Columns:
        """`defaults`: the usual names of the format's required columns beyond lat and lon."""
        defaults = {"lat": LAT_NAMES, "lon": LON_NAMES, **defaults}
        picked = {}
        for what in ("id", "lat", "lon", "image", "scene", "cot"):
            configured = source.get(f"{what}_column")
            if configured is None and what not in defaults:
                picked[what] = None  # optional and not asked for
            else:
                picked[what] = pick_column(columns, configured, defaults.get(what, ()), what, where)
        return cls(**picked)

    def values(self, frame, name: str | None) -> list[Any]:
        """The column's values as Python objects; None for each row when it is not read."""
        return frame[name].tolist() if name else [None] * len(frame)

    def metadata(self, frame) -> list[dict[str, Any]]:
        """Every other column of each row (`Sample.metadata`)."""
        return metadata_rows(frame, {self.id, self.lat, self.lon, self.image, self.scene, self.cot})


def metadata_rows(frame, skip: set[str | None]) -> list[dict[str, Any]]:
    """Remaining columns of each row as plain Python values, missing values as None."""
    rest = frame[[c for c in frame.columns if c not in skip]]
    if rest.columns.empty:
        return [{} for _ in range(len(frame))]
    rest = rest.astype(object).where(rest.notna(), None)
    return rest.to_dict("records")
