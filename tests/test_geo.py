"""Reverse geocoding against Natural Earth polygons: known places, borders, sea, edges."""

import numpy as np
import pytest

from greval import geo
from greval.geo import continent_of, country_of, country_of_exact, world_outlines

# (lat, lon, expected ISO code or None)
PLACES = {
    "Paris": (48.8566, 2.3522, "FR"),
    "Tokyo": (35.6762, 139.6503, "JP"),
    "Nairobi": (-1.2921, 36.8219, "KE"),
    "Sao Paulo": (-23.5505, -46.6333, "BR"),
    "Sydney": (-33.8688, 151.2093, "AU"),
    # two sides of a border, a few km apart
    "Basel": (47.5596, 7.5886, "CH"),
    "Weil am Rhein": (47.5936, 7.6204, "DE"),
    "El Paso": (31.7619, -106.4850, "US"),
    "Ciudad Juarez": (31.6904, -106.4245, "MX"),
    "Strasbourg": (48.5734, 7.7521, "FR"),
    "Kehl": (48.5727, 7.8156, "DE"),
    # enclaves and micro-states
    "Vatican": (41.9029, 12.4534, "VA"),
    "Maseru (Lesotho inside South Africa)": (-29.31, 27.48, "LS"),
    # antimeridian: Fiji and Chukotka on both sides of 180 degrees
    "Fiji, Taveuni west of 180": (-16.95, 179.98, "FJ"),
    "Fiji, east of 180": (-16.7, -179.9, "FJ"),
    "Fiji, Lakeba": (-18.2, -178.8, "FJ"),
    "Anadyr (Chukotka, 177E)": (64.7337, 177.4968, "RU"),
    "Uelen (Chukotka, 170W)": (66.16, -169.81, "RU"),
    # poles and open sea
    "North Pole (sea ice)": (90.0, 0.0, None),
    "South Pole": (-90.0, 0.0, "AQ"),
    "mid-Atlantic": (30.0, -40.0, None),
    "mid-Pacific": (0.0, -140.0, None),
    # coast: 2 km off Nice is France (tolerance), 30 km off is open sea
    "2 km off Nice": (43.676, 7.27, "FR"),
    "30 km off Nice": (43.4, 7.27, None),
    # documented special cases
    "Cayenne (French Guiana)": (4.9372, -52.326, "GF"),
    "Saint-Denis (Reunion)": (-20.8821, 55.4504, "RE"),
    "Longyearbyen (Svalbard)": (78.2232, 15.6267, "SJ"),
    "Pristina (Kosovo)": (42.6629, 21.1655, "XK"),
    "Hargeisa (Somaliland)": (9.56, 44.065, "SO"),
    "North Nicosia": (35.19, 33.36, "CY"),
    "Sevastopol": (44.6, 33.52, "UA"),
    "Taipei": (25.033, 121.565, "TW"),
    "Bir Tawil (terra nullius)": (21.87, 33.74, None),
    "Honolulu": (21.3069, -157.8583, "US"),
}


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory):
    # Build the raster into a fresh folder: this also proves the build works from scratch.
    mp = pytest.MonkeyPatch()
    mp.setenv("GREVAL_CACHE_DIR", str(tmp_path_factory.mktemp("greval-cache")))
    geo._raster_data.cache_clear()
    yield
    mp.undo()
    geo._raster_data.cache_clear()


@pytest.mark.parametrize("name", list(PLACES))
def test_known_places(name):
    lat, lon, expected = PLACES[name]
    assert country_of(lat, lon)[0] == expected
    assert country_of_exact(lat, lon)[0] == expected


def test_vectorised_and_continents():
    lats = np.array([p[0] for p in PLACES.values()])
    lons = np.array([p[1] for p in PLACES.values()])
    codes = country_of(lats, lons)
    assert list(codes) == [p[2] for p in PLACES.values()]
    continents = dict(zip(PLACES, continent_of(codes), strict=True))
    assert continents["Paris"] == "Europe"
    assert continents["Cayenne (French Guiana)"] == "South America"
    assert continents["Saint-Denis (Reunion)"] == "Africa"
    assert continents["Sao Paulo"] == "South America"
    assert continents["El Paso"] == "North America"
    assert continents["Sydney"] == "Oceania"
    assert continents["South Pole"] == "Antarctica"
    assert continents["mid-Atlantic"] is None


def test_coast_tolerance_can_be_switched_off():
    assert country_of(43.676, 7.27, coast_km=0)[0] is None  # the same point as "2 km off Nice"


def test_bad_coordinates_resolve_to_none_and_longitudes_wrap():
    codes = country_of([np.nan, 95.0, 48.8566, -89.0], [2.35, 0.0, 2.3522 + 360.0, np.inf])
    assert list(codes) == [None, None, "FR", None]


def test_raster_matches_exact_point_in_polygon_on_random_points():
    rng = np.random.default_rng(7)
    n = 20_000
    lats = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    lons = rng.uniform(-180, 180, n)
    # half of them near the borders and coasts of Europe, where cells are mixed
    lats[: n // 2] = rng.uniform(35, 60, n // 2)
    lons[: n // 2] = rng.uniform(-10, 30, n // 2)
    fast, exact = country_of(lats, lons), country_of_exact(lats, lons)
    assert (fast == exact).all()
    assert 0.2 < np.mean(fast[n // 2 :] != None) < 0.45  # noqa: E711 - land share of the globe ~ 29 %


def test_every_code_has_a_continent():
    table = geo.country_table()
    assert len(table) > 240
    assert set(table.values()) == {
        "Africa",
        "Antarctica",
        "Asia",
        "Europe",
        "North America",
        "Oceania",
        "South America",
    }
    assert continent_of(["FR", "GF", "BR", None, "ZZ"]).tolist() == [
        "Europe",
        "South America",
        "South America",
        None,
        None,
    ]


def test_world_outlines_are_closed_lon_lat_rings_in_range():
    rings = world_outlines()
    assert len(rings) > 200  # ~250 admin-0 units, many with islands
    for ring in rings:
        assert ring.ndim == 2 and ring.shape[1] == 2 and len(ring) >= 4
        assert np.array_equal(ring[0], ring[-1])
        assert (np.abs(ring[:, 0]) <= 180).all() and (np.abs(ring[:, 1]) <= 90).all()
    # Light enough to plot the whole world: tens of thousands of points, not half a million.
    assert sum(len(r) for r in rings) < 100_000
