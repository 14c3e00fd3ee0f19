"""A generated GREval-Bench-layout folder for tests and demos (no download needed).

`make_fixture_bench(path)` writes `GREval-Bench.json` and `imgs/*.jpg`: small distinct
JPEGs, coordinates near real cities on every inhabited continent, and reference
reasoning (`gt_cot`) that greval's scene classifier maps to the intended scene. The
same arguments always give byte-identical files.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

# (city, country, lat, lon). Names avoid the classifier's cue words (no "Lake", "City", ...).
CITIES: tuple[tuple[str, str, float, float], ...] = (
    ("Paris", "France", 48.8566, 2.3522),
    ("London", "United Kingdom", 51.5074, -0.1278),
    ("Madrid", "Spain", 40.4168, -3.7038),
    ("Rome", "Italy", 41.9028, 12.4964),
    ("Berlin", "Germany", 52.52, 13.405),
    ("Stockholm", "Sweden", 59.3293, 18.0686),
    ("Warsaw", "Poland", 52.2297, 21.0122),
    ("Athens", "Greece", 37.9838, 23.7275),
    ("Istanbul", "Turkey", 41.0082, 28.9784),
    ("Moscow", "Russia", 55.7558, 37.6173),
    ("Cairo", "Egypt", 30.0444, 31.2357),
    ("Lagos", "Nigeria", 6.5244, 3.3792),
    ("Nairobi", "Kenya", -1.2921, 36.8219),
    ("Johannesburg", "South Africa", -26.2041, 28.0473),
    ("Casablanca", "Morocco", 33.5731, -7.5898),
    ("Addis Ababa", "Ethiopia", 9.03, 38.74),
    ("Dubai", "United Arab Emirates", 25.2048, 55.2708),
    ("Tehran", "Iran", 35.6892, 51.389),
    ("Mumbai", "India", 19.076, 72.8777),
    ("Delhi", "India", 28.7041, 77.1025),
    ("Bangkok", "Thailand", 13.7563, 100.5018),
    ("Hanoi", "Vietnam", 21.0278, 105.8342),
    ("Beijing", "China", 39.9042, 116.4074),
    ("Shanghai", "China", 31.2304, 121.4737),
    ("Seoul", "South Korea", 37.5665, 126.978),
    ("Tokyo", "Japan", 35.6762, 139.6503),
    ("Jakarta", "Indonesia", -6.2088, 106.8456),
    ("Manila", "Philippines", 14.5995, 120.9842),
    ("Sydney", "Australia", -33.8688, 151.2093),
    ("Perth", "Australia", -31.9505, 115.8605),
    ("Auckland", "New Zealand", -36.8485, 174.7633),
    ("Toronto", "Canada", 43.6532, -79.3832),
    ("Vancouver", "Canada", 49.2827, -123.1207),
    ("Chicago", "United States", 41.8781, -87.6298),
    ("San Francisco", "United States", 37.7749, -122.4194),
    ("Denver", "United States", 39.7392, -104.9903),
    ("Havana", "Cuba", 23.1136, -82.3666),
    ("Bogota", "Colombia", 4.711, -74.0721),
    ("Lima", "Peru", -12.0464, -77.0428),
    ("Santiago", "Chile", -33.4489, -70.6693),
    ("Buenos Aires", "Argentina", -34.6037, -58.3816),
    ("Reykjavik", "Iceland", 64.1466, -21.9426),
)

# Reference reasoning per scene: each sentence carries several cues of its scene only.
_COT = {
    "urban": (
        "The photo shows a busy street lined with multi-storey buildings, shop signs and parked cars. "
        "Road markings, traffic lights and the storefronts suggest a dense neighborhood of {city}, {country}."
    ),
    "natural": (
        "The photo shows a forest on steep hills above a river valley, with rock outcrops and thick vegetation. "
        "The terrain and trees suggest the countryside around {city}, {country}."
    ),
    "landmark": (
        "The photo shows a famous monument: an iconic landmark whose tower is known worldwide. "
        "This landmark identifies {city}, {country}."
    ),
}
# Colour families make the scene visible at a glance in viewers.
_PALETTE = {"urban": (120, 120, 130), "natural": (60, 140, 70), "landmark": (190, 160, 70)}


def _image(rng: random.Random, index: int, scene: str, size: tuple[int, int]) -> bytes:
    from PIL import Image, ImageDraw

    width, height = size
    base = _PALETTE.get(scene, (128, 128, 128))
    background = tuple(max(0, min(255, c + rng.randint(-40, 40))) for c in base)
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = x0 + rng.randint(8, width // 2), y0 + rng.randint(8, height // 2)
        color = tuple(rng.randrange(256) for _ in range(3))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)([x0, y0, x1, y1], fill=color)
    # The index as a row of black/white blocks: no two images are alike even by chance.
    block = max(2, width // 16)
    for bit in range(12):
        on = (index >> bit) & 1
        draw.rectangle([bit * block, 0, bit * block + block - 1, block - 1], fill=(255, 255, 255) if on else (0, 0, 0))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=70)
    return out.getvalue()


def make_fixture_bench(
    path: str | Path,
    n: int = 24,
    seed: int = 0,
    *,
    scenes: tuple[str, ...] = ("urban", "natural", "landmark"),
    with_scene: bool = True,
    image_size: tuple[int, int] = (224, 224),
) -> Path:
    """Write an n-sample GREval-Bench-layout folder at `path` and return it.

    Sample i (id "fx-00000" ...) has scene scenes[i % len(scenes)] and lies within
    ~5 km of a city from CITIES (cities are taken in a seed-shuffled order, cycling when
    n exceeds their number). Each record holds sample_id, image_path, gt_cot, gt_lat,
    gt_lon, city, country, and `scene` when with_scene.
    """
    if not scenes:
        raise ValueError("scenes must name at least one scene")
    root = Path(path)
    (root / "imgs").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    order = rng.sample(range(len(CITIES)), len(CITIES))
    records = []
    for index in range(n):
        city, country, lat, lon = CITIES[order[index % len(order)]]
        scene = scenes[index % len(scenes)]
        sample_id = f"fx-{index:05d}"
        image_path = f"imgs/{sample_id}.jpg"
        (root / image_path).write_bytes(_image(rng, index, scene, image_size))
        record = {
            "sample_id": sample_id,
            "image_path": image_path,
            "gt_cot": _COT[scene].format(city=city, country=country),
            "gt_lat": round(lat + rng.uniform(-0.03, 0.03), 5),
            "gt_lon": round(lon + rng.uniform(-0.03, 0.03), 5),
            "city": city,
            "country": country,
        }
        if with_scene:
            record["scene"] = scene
        records.append(record)
    text = json.dumps(records, indent=1, ensure_ascii=False) + "\n"
    (root / "GREval-Bench.json").write_text(text, encoding="utf-8")
    return root
