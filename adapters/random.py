"""`random`: a seeded baseline that guesses a point uniformly at random over land.

Every table needs its floor: a model must beat this to know anything about where a
photo was taken. Each sample's guess depends only on (seed, sample_id), so it does not
change with --limit, the task list, sharding or resuming. "Land" is whatever
`greval.geo.country_of` puts inside a country, so the baseline and the country
metric agree on what counts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from greval.adapter import Adapter, register
from greval.types import Request, Response

_CANDIDATES = 256  # land is ~29 % of the sphere: P(no land in 256 draws) ≈ 1e-38


def _rng(seed: int, sample_id: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}\x00{sample_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def uniform_sphere(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Points uniform over the sphere's area (not over the lat/lon rectangle)."""
    lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    lon = rng.uniform(-180.0, 180.0, n)
    return lat, lon


@dataclass
class RandomOptions:
    """No options of its own: the run's --seed draws the points."""


@register("random")
class RandomLandAdapter(Adapter):
    Options = RandomOptions
    kind = "offline"
    batch_size = 512

    def __init__(self, model: str | None = None, seed: int = 0, **options: Any) -> None:
        super().__init__(model=model or "random-land", **options)
        self.seed = int(seed)

    def generate(self, requests: list[Request]) -> list[Response]:
        from greval.geo import country_of

        draws = [uniform_sphere(_rng(self.seed, r.sample.sample_id), _CANDIDATES) for r in requests]
        lats = np.concatenate([d[0] for d in draws])
        lons = np.concatenate([d[1] for d in draws])
        on_land = np.array([c is not None for c in country_of(lats, lons)]).reshape(len(requests), _CANDIDATES)
        responses = []
        for i in range(len(requests)):
            j = int(np.argmax(on_land[i]))  # the first candidate on land
            lat, lon = lats[i * _CANDIDATES + j], lons[i * _CANDIDATES + j]
            responses.append(Response(text=f'{{"latitude": {lat:.6f}, "longitude": {lon:.6f}}}', finish_reason="stop"))
        return responses

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "seed": self.seed,
            "method": "uniform over the sphere, rejected until on land (greval.geo.country_of)",
        }
