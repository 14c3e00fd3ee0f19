"""Kilometres from points to the polygon parts near them, for greval.geo's coast and border rules.

Degrees are not kilometres: a degree of longitude shrinks with cos(latitude), so a radius
in degrees that reaches 5 km north reaches only 1.7 km east at 70°. Here every search box
is as wide in degrees as `km` needs at the point's latitude, and distances are measured in
a local frame in km. The functions take the parts (shapely polygons that never cross the
antimeridian, as Natural Earth splits them at ±180°) and their STRtree as arguments, so
this module knows nothing of where they come from.
"""

from __future__ import annotations

import numpy as np
import shapely

KM_PER_DEG_LAT = 111.32


def radii_deg(lats: np.ndarray, km: float) -> tuple[np.ndarray, np.ndarray]:
    """Half-height and half-width in degrees of a box that holds every spot within `km`
    (its width grows with 1 / cos(latitude), taken at the box's poleward edge)."""
    dlat = np.full(len(lats), km / KM_PER_DEG_LAT)
    widest = np.cos(np.radians(np.minimum(np.abs(lats) + dlat, 89.9)))
    return dlat, np.minimum(dlat / widest, 180.0)


def candidates(
    tree: shapely.STRtree, parts: np.ndarray, lats: np.ndarray, lons: np.ndarray, km: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(point, part, shift) triples whose part meets the point's box (see `radii_deg`): a
    superset of the parts within `km`. Bounding boxes first, then the prepared parts' own
    test: ~15x faster than a `dwithin` query. A box that reaches over the antimeridian is
    also looked up moved by 360°; `shift` (0 or ±360) is what to add to the point's
    longitude to meet the part where it is drawn."""
    dlat, dlon = radii_deg(lats, km)
    east, west = np.flatnonzero(lons + dlon > 180.0), np.flatnonzero(lons - dlon < -180.0)
    owner = np.concatenate((np.arange(len(lats)), east, west))
    shift = np.concatenate((np.zeros(len(lats)), np.full(len(east), -360.0), np.full(len(west), 360.0)))
    la, lo, dy, dx = lats[owner], lons[owner] + shift, dlat[owner], dlon[owner]
    boxes = shapely.box(lo - dx, la - dy, lo + dx, la + dy)
    box_idx, part_idx = tree.query(boxes)
    meets = shapely.intersects(parts[part_idx], boxes[box_idx])
    box_idx, part_idx = box_idx[meets], part_idx[meets]
    return owner[box_idx], part_idx, shift[box_idx]


def distance_km(
    parts: np.ndarray,
    lats: np.ndarray,
    lons: np.ndarray,
    point_idx: np.ndarray,
    part_idx: np.ndarray,
    km: float,
    shift: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Distance in km from each point to each part (`candidates`' triples), to about 10 m
    at 5 km below 70° of latitude, for distances up to `km` (farther ones come out > km):
    the part is clipped to the point's box, moved into a local equirectangular frame in km
    centred on the point, and measured there."""
    if len(point_idx) == 0:
        return np.zeros(0)
    dlat, dlon = radii_deg(lats[point_idx], km)
    la, lo = lats[point_idx], lons[point_idx] + shift
    clipped = shapely.intersection(parts[part_idx], shapely.box(lo - dlon, la - dlat, lo + dlon, la + dlat))
    out = np.full(len(point_idx), np.inf)
    keep = np.flatnonzero(~shapely.is_empty(clipped))
    if len(keep) == 0:
        return out
    coords, owner = shapely.get_coordinates(clipped[keep], return_index=True)
    lat0, lon0 = la[keep][owner], lo[keep][owner]
    local = np.column_stack(
        ((coords[:, 0] - lon0) * KM_PER_DEG_LAT * np.cos(np.radians(lat0)), (coords[:, 1] - lat0) * KM_PER_DEG_LAT)
    )
    in_km = shapely.set_coordinates(shapely.from_wkb(shapely.to_wkb(clipped[keep])), local)
    out[keep] = shapely.distance(shapely.points(np.zeros(len(keep)), np.zeros(len(keep))), in_km)
    return out


def units_per_point(n: int, point_idx: np.ndarray, unit_of_pair: np.ndarray) -> np.ndarray:
    """How many different units (codes) each of `n` points is paired with."""
    if len(point_idx) == 0:
        return np.zeros(n, dtype=np.int64)
    pairs = np.unique(np.column_stack((point_idx, unit_of_pair.astype(np.int64))), axis=0)
    return np.bincount(pairs[:, 0], minlength=n)
