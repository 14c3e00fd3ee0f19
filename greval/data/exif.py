"""`format: exif`: a folder of the user's own photos with GPS positions in their EXIF data."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from greval.data.common import EXIF_SUFFIXES, Collector, LoadResult, RowError, hash_bytes, local_path, register_format
from greval.problems import DataError


def _rational(value: Any) -> float:
    number = float(value)  # IFDRational with a zero denominator gives nan
    if math.isnan(number):
        raise RowError("GPS value has a zero denominator")
    return number


def _gps_degrees(value: Any, ref: Any, name: str, negative_ref: str) -> float:
    if value is None:
        raise RowError(f"no {name} in the EXIF GPS block")
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

    folder = local_path(source, data)
    if folder is None or not folder.is_dir():
        raise DataError(f"an `exif` dataset needs a folder of photos (`path` or --data DIR), got {folder}")
    heif = _register_heif()
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXIF_SUFFIXES and p.is_file())
    rows = Collector(lambda index: str(files[index]))
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
        except (RowError, TypeError, ValueError, ZeroDivisionError) as exc:
            rows.fail(index, sample_id, f"unreadable EXIF GPS position: {exc}")
            continue
        rows.add(index, sample_id, lat, lon, lambda file=file: file, lat_name="GPS latitude", lon_name="GPS longitude")
        digest_lines.append(f"{sample_id}\t{lat!r}\t{lon!r}\n")
    if not files:
        raise DataError(f"{folder}: no photos here (looked for {', '.join(EXIF_SUFFIXES)}, in sub-folders too)")
    return LoadResult(rows.samples, rows.problems(), hash_bytes("".join(digest_lines).encode()), root=folder)
