"""Coasts and borders (issue 8 §5): within 5 km of land (in km, at any latitude) takes that
land's country, even for a small island the fixed probes missed; beyond is sea; country
decisions within 1 km of a border are flagged `near_border`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely

from greval import geo

KM_PER_DEG = 111.32


def _km_to_part(lat: float, lon: float, part) -> float:
    """Great-circle km from the point to the part's outline densified to ~50 m steps (an
    upper bound, within ~25 m, of the true distance), with longitudes taken the short way
    round: an independent check of geo's own km."""
    coords = shapely.get_coordinates(shapely.segmentize(shapely.get_exterior_ring(part), 0.0005))
    la1, la2 = np.radians(lat), np.radians(coords[:, 1])
    dlon = np.radians((coords[:, 0] - lon + 180.0) % 360.0 - 180.0)
    h = np.sin((la2 - la1) / 2) ** 2 + np.cos(la1) * np.cos(la2) * np.sin(dlon / 2) ** 2
    return float((2 * 6371.0088 * np.arcsin(np.sqrt(h))).min())


def _parts_near(lat: float, lon: float, code: str) -> list:
    parts, codes, table = geo._parts()
    return [parts[i] for i in range(len(parts)) if table[codes[i]] == code and _km_to_part(lat, lon, parts[i]) < 60]


def _isolated_small_part(lat_range: tuple[float, float]):
    """The smallest polygon part in the latitude band with no other part within ~40 km: an
    islet where any land within 5 km is this part's."""
    parts, codes, table = geo._parts()
    tree = geo._tree()
    order = np.argsort(shapely.area(parts))
    for i in order:
        lat = shapely.get_y(shapely.centroid(parts[i]))
        if not (lat_range[0] <= lat <= lat_range[1]) or table[codes[i]] in ("", "-"):
            continue
        near = tree.query(parts[i], predicate="dwithin", distance=0.4 / max(np.cos(np.radians(abs(lat))), 0.1))
        if len(near) == 1:
            return parts[i], table[codes[i]]
    raise AssertionError("no isolated islet in the band")


def test_a_point_km_off_a_small_island_takes_its_country():
    part, code = _isolated_small_part((-50.0, 50.0))
    coords = shapely.get_coordinates(part)
    lon, lat = coords[np.argmax(coords[:, 1])]  # the northernmost vertex
    off = lambda km: lat + km / KM_PER_DEG  # noqa: E731 - due north: nothing of the part is nearer
    got = geo.country_of([off(2.2), off(4.8), off(5.3)], [lon, lon, lon])
    assert list(got) == [code, code, None]
    assert list(geo.country_of_exact([off(2.2), off(5.3)], [lon, lon])) == [code, None]


def test_five_km_are_kilometres_at_high_latitude_too():
    """At 70°+ a degree of longitude is a third of a degree of latitude: a radius in degrees
    would miss land 4.5 km to the east."""
    part, code = _isolated_small_part((68.0, 80.0))
    coords = shapely.get_coordinates(part)
    lon, lat = coords[np.argmax(coords[:, 0])]  # the easternmost vertex
    per_km = 1 / (KM_PER_DEG * np.cos(np.radians(lat)))
    got = geo.country_of([lat, lat], [lon + 4.5 * per_km, lon + 5.5 * per_km])
    assert list(got) == [code, None]


def test_a_point_160_m_off_key_west_is_in_the_us():
    parts, codes, table = geo._parts()
    (i,) = [j for j in geo._tree().query(shapely.points(-81.78, 24.555), predicate="intersects")]
    coords = shapely.get_coordinates(parts[i])
    lon, lat = coords[np.argmin(coords[:, 1])]  # the southernmost vertex of the key
    assert geo.country_of([lat - 0.16 / KM_PER_DEG], [lon])[0] == "US"


def test_the_nearest_land_wins_where_the_probes_see_only_the_farther_country():
    """0.6 km off the Chafarinas Islands (ES), 4 km off Morocco: the probes around the point
    land on Morocco only, but the nearest land is Spain's islet."""
    lat, lon = 35.181, -2.4428
    es = min(_km_to_part(lat, lon, p) for p in _parts_near(lat, lon, "ES"))
    ma = min(_km_to_part(lat, lon, p) for p in _parts_near(lat, lon, "MA"))
    assert es < 0.7 and 3.5 < ma < 5.0
    assert geo._lookup_index(np.array([lat]), np.array([lon]))[0] == 0  # in no polygon
    assert list(geo.country_of([lat], [lon])) == list(geo.country_of_exact([lat], [lon])) == ["ES"]


def test_land_across_the_antimeridian_counts():
    """Chukotka at 69.03°N: Russia's polygon east of 180° is 4 km away, its part on this side
    (the data splits polygons at ±180°) 5.3 km: within 5 km of land, so Russia."""
    lat, lon = 69.03, -179.995
    d = sorted(_km_to_part(lat, lon, p) for p in _parts_near(lat, lon, "RU"))
    assert 3.5 < d[0] < 4.5 and d[1] > 5.0
    assert list(geo.country_of([lat], [lon])) == list(geo.country_of_exact([lat], [lon])) == ["RU"]


BORDER_CITIES = {  # riverside cities whose 1:10m border is within the data's precision
    "El Paso": (31.7619, -106.4850),
    "Niagara Falls NY": (43.0945, -79.0568),
    "Goma": (-1.6792, 29.2228),
    "Drobeta-Turnu Severin": (44.6369, 22.6597),
}
FAR_FROM_BORDERS = {"Paris": (48.8566, 2.3522), "Berlin": (52.52, 13.405), "Dover coast": (51.12, 1.33)}


def test_near_border_where_it_should_and_not_elsewhere():
    lats, lons = zip(*BORDER_CITIES.values(), strict=True)
    assert geo.near_border(lats, lons).all()
    lats, lons = zip(*FAR_FROM_BORDERS.values(), strict=True)
    assert not geo.near_border(lats, lons).any()  # a coast is not a border
    rng = np.random.default_rng(3)
    lat, lon = rng.uniform(-60, 70, 5000), rng.uniform(-180, 180, 5000)
    assert (geo.near_border(lat, lon) == geo.near_border(lat, lon, use_raster=False)).all()


def test_near_border_is_flagged_and_counted_but_not_an_extraction_doubt(tmp_path):
    from click.testing import CliRunner

    from greval.cli import main
    from greval.records import read_predictions

    bench = tmp_path / "bench.json"
    (tmp_path / "a.jpg").write_bytes(b"")
    rows = [
        {"sample_id": "elpaso", "image_path": "a.jpg", "gt_lat": 31.7619, "gt_lon": -106.485},
        {"sample_id": "paris", "image_path": "a.jpg", "gt_lat": 48.8566, "gt_lon": 2.3522},
    ]
    bench.write_text(json.dumps(rows))
    outputs = tmp_path / "out.jsonl"
    outputs.write_text(
        json.dumps({"sample_id": "elpaso", "output": "Latitude: 31.7619, Longitude: -106.485"})
        + "\n"
        + json.dumps({"sample_id": "paris", "output": "Latitude: 48.8566, Longitude: 2.3522"})
        + "\n"
    )
    out = tmp_path / "run"
    args = ["run", "-q", "-a", "replay", "--predictions", outputs, "-m", "m", "--data", bench, "--tasks", "all"]
    result = CliRunner().invoke(main, [str(a) for a in [*args, "-o", out]])
    assert result.exit_code == 0, result.output
    flags = {r["sample_id"]: r["flags"] for r in read_predictions(out)}
    assert flags == {"elpaso": ["near_border"], "paris": []}
    m = json.loads((out / "metrics.json").read_text())["tasks"]["all"]
    assert m["near_border_rate"] == pytest.approx(0.5) and m["flagged_rate"] == 0.0
