"""Your own photos with one flag: `greval run --adapter X --data photos.csv` (no --tasks).

`--data` alone names what to evaluate on; its form says how to read it:

- a CSV / TSV / JSONL / parquet table: read directly. The image-path, latitude and
  longitude columns are found by their common names (IMAGE_NAMES, LAT_NAMES, LON_NAMES,
  in any letter case), the id column when there is one (ID_NAMES; else the image path is
  the id). Image paths are relative to the table's folder. `--columns image=…,lat=…,lon=…`
  (and `id=…`) settles what the names cannot: two candidates for one role, or none;
- a folder of photos with GPS in their EXIF: read directly (photos without GPS are
  listed as skipped);
- a GREval-Bench folder or .json file: as before, the built-in tasks (`all` by default).

The task is named after the file or folder. `greval data validate --data` takes the same
forms. This module only decides the form and builds the `dataset:` mapping; reading is
greval.data's `table` and `exif` formats.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from greval.data import DataError

IMAGE_NAMES = ("image", "image_path", "path", "file", "filename", "file_name", "img", "photo")
LAT_NAMES = ("lat", "latitude", "gt_lat")
LON_NAMES = ("lon", "lng", "long", "longitude", "gt_lon")
ID_NAMES = ("id", "sample_id")
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".parquet")
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".heic", ".heif", ".tif", ".tiff", ".webp")
COLUMNS_HINT = "pass --columns image=COLUMN,lat=COLUMN,lon=COLUMN (and id=COLUMN)"
_ROLES = {"image": IMAGE_NAMES, "lat": LAT_NAMES, "lon": LON_NAMES, "id": ID_NAMES}


def parse_columns(text: str | None) -> dict[str, str]:
    """`image=photo,lat=y,lon=x` -> {"image": "photo", ...}; roles image, lat, lon, id."""
    if not text:
        return {}
    out = {}
    for item in text.split(","):
        role, sep, column = item.partition("=")
        role = role.strip().lower()
        if not sep or role not in _ROLES or not column.strip():
            raise DataError(f"--columns {text!r}: expected ROLE=COLUMN pairs with ROLE in image, lat, lon, id")
        out[role] = column.strip()
    return out


def _is_table(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes]
    return any(s in TABLE_SUFFIXES for s in suffixes)


def _header(path: Path) -> list[str]:
    """The table's column names, reading as little as the format allows."""
    import pandas as pd

    try:
        suffixes = [s.lower() for s in path.suffixes]
        if ".parquet" in suffixes:
            import pyarrow.parquet as pq

            return [str(c) for c in pq.read_schema(path).names]
        if ".jsonl" in suffixes:
            return [str(c) for c in pd.read_json(path, lines=True, nrows=50).columns]
        sep = "\t" if ".tsv" in suffixes else ","
        return [str(c) for c in pd.read_csv(path, sep=sep, nrows=0).columns]
    except Exception as exc:  # noqa: BLE001 - any reader failure is the same user problem
        raise DataError(f"{path}: cannot read this table ({type(exc).__name__}: {exc}); {COLUMNS_HINT}") from None


def _pick(role: str, columns: list[str], given: dict[str, str], path: Path, required: bool) -> str | None:
    if role in given:
        if given[role] not in columns:
            raise DataError(f"{path}: --columns names {given[role]!r} for {role}, but the columns are {columns}")
        return given[role]
    found = [c for c in columns if c.lower() in _ROLES[role]]
    if len(found) > 1:
        raise DataError(f"{path}: ambiguous {role} column: {' and '.join(found)} could both be it; {COLUMNS_HINT}")
    if not found and required:
        raise DataError(
            f"{path}: no {role} column found (looked for {', '.join(_ROLES[role])}; columns: {columns}); {COLUMNS_HINT}"
        )
    return found[0] if found else None


def table_dataset(path: Path, given: dict[str, str]) -> dict[str, Any]:
    """The `table` dataset mapping of a user's table, its columns detected or given."""
    columns = _header(path)
    image = _pick("image", columns, given, path, True)
    lat = _pick("lat", columns, given, path, True)
    lon = _pick("lon", columns, given, path, True)
    if len({image, lat, lon}) < 3:
        raise DataError(
            f"{path}: one column cannot play two roles (image {image}, lat {lat}, lon {lon}); {COLUMNS_HINT}"
        )
    ident = _pick("id", columns, given, path, False) or image
    return {"format": "table", "path": str(path), "image_column": image, "lat_column": lat, "lon_column": lon,
            "id_column": ident}  # fmt: skip


def data_task(data: str | Path, columns: str | None = None):
    """A TaskSpec for `--data` alone, or None for a GREval-Bench folder or file (the built-in
    tasks read it as before)."""
    from greval.task import TaskSpec, available_tasks, load_task_file

    path = Path(data).expanduser()
    given = parse_columns(columns)
    if not path.exists():
        raise DataError(f"--data {data}: no such file or folder")
    if path.is_file() and _is_table(path):
        dataset = table_dataset(path, given)
        name = path.name.split(".")[0]
    elif path.is_dir() and not any(path.glob("*.json")) and _has_photos(path):
        if given:
            raise DataError(f"--columns is for tables; {path} is a folder of photos (their GPS is in the EXIF)")
        dataset = {"format": "exif", "path": str(path)}
        name = path.resolve().name
    else:
        if given:
            raise DataError(f"--columns is for a CSV / TSV / JSONL / parquet table, not {path}")
        return None
    base = load_task_file(available_tasks()["all"])  # the benchmark's generation settings
    return TaskSpec(name=name or "photos", dataset=dataset, generation=base.generation,
                    description=f"photos from {path}")  # fmt: skip


def _has_photos(folder: Path) -> bool:
    return any(p.suffix.lower() in PHOTO_SUFFIXES for p in folder.rglob("*") if p.is_file())
