import numpy as np

from greval.geo import world_outlines


def test_world_outlines_are_closed_lon_lat_rings_in_range():
    rings = world_outlines()
    assert len(rings) > 200  # ~250 admin-0 units, many with islands
    for ring in rings:
        assert ring.ndim == 2 and ring.shape[1] == 2 and len(ring) >= 4
        assert np.array_equal(ring[0], ring[-1])
        assert (np.abs(ring[:, 0]) <= 180).all() and (np.abs(ring[:, 1]) <= 90).all()
    # Light enough to plot the whole world: tens of thousands of points, not half a million.
    assert sum(len(r) for r in rings) < 100_000
