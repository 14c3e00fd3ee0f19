"""Coastal lookups: how often "sea" is answered for a point with land within 4.9 km.

    python benchmarks/coast.py [--n 200000]

Draws random points, keeps those in no polygon but in a raster cell near a coast, and
compares the old rule (16 fixed probes around the point) with greval's (the probes, then
an exact nearest-land search in km where the probes find nothing). "Missed" is the share
of "sea" answers that have land within 4.9 km by the exact search. Prints both and the
time per 100,000 points of `country_of` on these coastal points.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from greval import geo, geo_km


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()
    geo.prepare()
    rng = np.random.default_rng(0)
    lat = np.degrees(np.arcsin(rng.uniform(-0.95, 0.95, args.n)))
    lon = rng.uniform(-180, 180, args.n)
    lat, lon, _ = geo._normalise(lat, lon)
    inside = geo._lookup_index(lat, lon)
    labels = geo._raster()
    rows = np.clip(((90 - lat) / geo.RESOLUTION_DEG).astype(int), 0, labels.shape[0] - 1)
    cols = ((lon + 180) / geo.RESOLUTION_DEG).astype(int) % labels.shape[1]
    coastal = (inside == 0) & (np.asarray(labels[rows, cols]) == geo._MIXED)
    lat, lon = lat[coastal], lon[coastal]
    old = geo._probe_codes(lat, lon, geo.COAST_TOLERANCE_KM, True).max(axis=1) > 0
    start = time.perf_counter()
    new = geo.country_of(lat, lon) != None  # noqa: E711 - elementwise
    seconds = time.perf_counter() - start
    parts = geo._parts()[0]
    p, q, shift = geo_km.candidates(geo._tree(), parts, lat, lon, 4.9)
    d = geo_km.distance_km(parts, lat, lon, p, q, 4.9, shift)
    land_near = np.zeros(len(lat), dtype=bool)
    country_land = geo._parts()[1][q] > 1  # not sea, not land of no country (Spratly Islands, ...)
    land_near[p[(d <= 4.9) & country_land]] = True
    print(f"{len(lat):,} coastal sea points (of {args.n:,} drawn)")
    for name, found in (("16 probes (before)", old), ("probes + exact km search (now)", new)):
        sea = ~found
        missed = (sea & land_near).sum() / max(sea.sum(), 1)
        print(f"{name:32s} sea answers {sea.sum():7,}  with a country's land within 4.9 km: {100 * missed:.2f} %")
    print(f"country_of on these points: {seconds / len(lat) * 1e5:.2f} s per 100,000")


if __name__ == "__main__":
    main()
