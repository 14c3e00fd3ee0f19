"""`format: table`: a CSV / TSV / JSON / JSONL / parquet file read by pandas (Im2GPS3k, YFCC4k,
OSV-5M)."""

from __future__ import annotations

import functools
import io
import os
import re
from pathlib import Path
from typing import Any

from greval.data.common import (
    COLUMN_KEYS,
    Collector,
    Columns,
    ImagePaths,
    LoadResult,
    RowError,
    as_sample_id,
    hash_bytes,
    local_path,
    parse_json,
    parse_jsonl,
    register_format,
)
from greval.problems import DataError

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
        records, lines = parse_jsonl(raw, file)
        return _frame_from_records(records, file), lambda index: f"{file}:{lines[index]}"
    if kind == ".json":
        records = parse_json(raw, file)
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


def _image_index(image_dir: Path) -> dict[str, Path]:
    """File name -> path for every file under image_dir (first by sorted path wins)."""
    index: dict[str, Path] = {}
    for folder, dirs, files in os.walk(image_dir):
        dirs.sort()
        for name in sorted(files):
            index.setdefault(name, Path(folder) / name)
    return index


@register_format("table", {"path", "file", "image_template", "image_dir", "image_search", *COLUMN_KEYS})
def _load_table(source: dict, data: str | Path | None) -> LoadResult:
    path = local_path(source, data)
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
    col = Columns.pick(source, columns, file, {"id": ("id", "sample_id", "ID", "IMG_ID")})
    image_col, lat_col, lon_col = col.image, col.lat, col.lon
    template = source.get("image_template", "{id}.jpg")
    found = _image_index(image_dir) if source.get("image_search") == "recursive" else None

    ids, lats, lons = col.values(frame, col.id), col.values(frame, lat_col), col.values(frame, lon_col)
    images = frame[image_col].tolist() if image_col else None
    cots, scenes = col.values(frame, col.cot), col.values(frame, col.scene)
    metadata = col.metadata(frame)
    needs_row = template is not None and image_col is None and re.search(r"\{(?!id\})", template) is not None

    relative_image = ImagePaths(image_dir, image_col or "image")

    def image_name(index: int) -> Any:
        if images is not None:
            return images[index]
        fields = {**metadata[index], "id": as_sample_id(ids[index])} if needs_row else {"id": as_sample_id(ids[index])}
        try:
            return template.format(**fields)
        except (KeyError, IndexError, ValueError) as exc:
            raise RowError(f"image_template {template!r} cannot be filled: {exc}") from None

    def image_for(index: int) -> Path:
        name = image_name(index)
        if found is not None and isinstance(name, str) and name in found:
            return found[name]
        return relative_image(name)

    rows = Collector(where_of)
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
    return LoadResult(rows.samples, rows.problems(), hash_bytes(raw), root=image_dir, extra={"file": str(file)})
