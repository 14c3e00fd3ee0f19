"""Realistic raw model answers with the coordinates they state, for benchmarks.

`realistic_answers(n, seed)` writes answers the way the model families do (GPT-4o and
Gemini JSON, Claude prose then JSON, GRE `<think>`/`<answer>`, Qwen/InternVL/LLaVA
sentences, markdown labels, DMS, lon-first labels, hedged candidates with a final
answer, Chinese reasoning), about 5 % refusals or garbage (true coordinates NaN).
The scoring and replay benchmarks use them; run this file to time `parse_answer`:

    .venv/bin/python benchmarks/_answers.py            # 100,000 answers
    .venv/bin/python benchmarks/_answers.py 20000 7    # n, seed
"""

from __future__ import annotations

import math
import random
import sys
import time

_PLACES = [
    ("Paris, France", "the Haussmann facades and zinc roofs"),
    ("Tokyo, Japan", "the kanji signage and narrow streets with overhead wires"),
    ("Sydney, Australia", "the eucalyptus trees and left-hand traffic"),
    ("New York City, USA", "the yellow cabs and fire escapes"),
    ("Cape Town, South Africa", "Table Mountain in the background"),
    ("Rio de Janeiro, Brazil", "the Portuguese pavement patterns"),
    ("Reykjavik, Iceland", "the barren volcanic landscape"),
    ("Milan, Italy", "the Gothic spires of the cathedral"),
    ("a village in the Swiss Alps", "the chalet-style wooden houses"),
    ("Marrakesh, Morocco", "the red sandstone walls and souk stalls"),
    ("Hanoi, Vietnam", "the dense motorbike traffic and tube houses"),
    ("rural Kenya", "the red laterite soil and acacia trees"),
]
_FILLER = [
    "The architecture suggests a European influence, and the building was probably built around 1890.",
    "There is a road sign indicating a town about 25 km away.",
    "The vegetation looks temperate; the photo seems to be taken around 3 pm given the shadows.",
    "The street has 2 lanes and the cars drive on the right side.",
    "The elevation seems low, perhaps 50 m above sea level.",
    "Roughly 60% of the image is sky, which makes it harder.",
    "The license plates are white with black characters.",
]
_REFUSALS = [
    "I'm sorry, but I can't determine the exact location of this photo.",
    "I am unable to identify where this image was taken.",
    '{"latitude": null, "longitude": null}',
    "Unknown",
    "N/A",
    "",
    "<think>The image shows a forest with tall conifers. It could be Canada or Scandinavia. The light",
    "The photo shows a quiet beach at sunset with a few palm trees.",
    "Sorry, I cannot help with identifying locations from personal photos.",
]


def _fmt(x: float, d: int) -> str:
    return f"{x:.{d}f}"


def _hemi(lat: str, lon: str) -> tuple[str, str, str, str]:
    la, lo = float(lat), float(lon)
    return lat.lstrip("-"), ("N" if la >= 0 else "S"), lon.lstrip("-"), ("E" if lo >= 0 else "W")


def _dms(rng: random.Random) -> tuple[str, float, float]:
    ld, lm, ls = rng.randint(0, 75), rng.randint(0, 59), rng.randint(0, 59)
    od, om, os_ = rng.randint(0, 179), rng.randint(0, 59), rng.randint(0, 59)
    ns, ew = rng.choice("NS"), rng.choice("EW")
    lat = ld + lm / 60.0 + ls / 3600.0
    lon = od + om / 60.0 + os_ / 3600.0
    lat, lon = (-lat if ns == "S" else lat), (-lon if ew == "W" else lon)
    style = rng.randrange(3)
    if style == 0:
        text = f"{ld}°{lm:02d}'{ls:02d}\"{ns} {od}°{om:02d}'{os_:02d}\"{ew}"
    elif style == 1:
        text = f"{ld}° {lm}′ {ls}″ {ns}, {od}° {om}′ {os_}″ {ew}"
    else:
        text = f"Coordinates: {ld}°{lm}'{ls}\" {ns}, {od}°{om}'{os_}\" {ew}"
    return text, lat, lon


def _answer(rng: random.Random) -> tuple[str, float, float]:
    lat = round(rng.uniform(-55.0, 70.0), 6)
    lon = round(rng.uniform(-180.0, 180.0), 6)
    d = rng.choice((2, 3, 4, 4, 4, 5, 6))
    slat, slon = _fmt(lat, d), _fmt(lon, d)
    lat, lon = float(slat), float(slon)
    place, clue = rng.choice(_PLACES)
    filler = " ".join(rng.sample(_FILLER, rng.randint(0, 3)))
    kind = rng.randrange(16)
    if kind == 0:  # GPT-4o, as asked
        text = f'{{"latitude": {slat}, "longitude": {slon}}}'
    elif kind == 1:  # Gemini: fenced JSON
        text = f'```json\n{{\n  "latitude": {slat},\n  "longitude": {slon}\n}}\n```'
    elif kind == 2:  # Claude: prose, then JSON
        text = (
            f"Looking at this image, I can see {clue}. {filler} This strongly suggests {place}.\n\n"
            f'{{"latitude": {slat}, "longitude": {slon}}}'
        )
    elif kind == 3:  # GRE, paper format
        text = (
            f"<think>I see {clue}. {filler} These clues point to {place}.</think>\n"
            f'<answer>"Latitude": "{slat} °", "Longitude": "{slon} °"</answer>'
        )
    elif kind == 4:  # GRE, JSON inside the answer; reasoning mentions a wrong candidate
        text = (
            f"<think>First I thought of somewhere near 10.5, 20.5 but {clue} rules that out. {filler}</think>"
            f'<answer>{{"Latitude": {slat}, "Longitude": {slon}}}</answer>'
        )
    elif kind == 5:  # markdown labels with hemispheres
        a, ns, b, ew = _hemi(slat, slon)
        text = f"Based on {clue}, this is likely {place}.\n\n**Latitude:** {a}° {ns}\n**Longitude:** {b}° {ew}"
    elif kind == 6:  # plain pair with explanation after
        text = f"({slat}, {slon}) — which is near {place}, judging by {clue}."
    elif kind == 7:  # DMS
        text, lat, lon = _dms(rng)
        text = f"{filler} The photo was most likely taken here: {text}".strip()
    elif kind == 8:  # hedged candidates, then a final answer
        text = (
            f"Possible locations:\n1. {place} ({_fmt(lat + 1.5, d)}, {_fmt(lon - 2.25, d)})\n"
            f"2. Somewhere nearby ({_fmt(lat - 0.75, d)}, {_fmt(lon + 0.5, d)})\n\n"
            f"Final answer: {slat}, {slon}"
        )
    elif kind == 9:  # Qwen-style sentence with hemispheres
        a, ns, b, ew = _hemi(slat, slon)
        text = f"The coordinates of this location are approximately {a}° {ns}, {b}° {ew}."
    elif kind == 10:  # LLaVA
        text = f"The image was taken in {place}. Coordinates: {slat}, {slon}"
    elif kind == 11:  # Chinese reasoning, JSON answer
        text = (
            f"从图片中可以看到{clue}，建筑风格和植被表明这里可能是{place}。距离海岸约 25 公里。\n"
            f'最终答案：{{"latitude": {slat}, "longitude": {slon}}}'
        )
    elif kind == 12:  # lon-first labels
        text = f"Longitude: {slon}, Latitude: {slat}"
    elif kind == 13:  # InternVL lines
        text = f"Location: {place}\nLatitude: {slat}\nLongitude: {slon}"
    elif kind == 14:  # numbers that are not coordinates, then the answer
        text = (
            f"{filler} The tower was built in 1889, is 330 m tall and about 25 km from the airport. "
            f"My best guess is {place} at {slat}, {slon}, with confidence 0.7."
        )
    else:  # nested JSON, values as strings
        text = f'{{"location": {{"name": "{place}", "lat": "{slat}", "lng": "{slon}"}}, "confidence": 0.6}}'
    return text, lat, lon


def realistic_answers(n: int, seed: int) -> list[tuple[str, float, float]]:
    """`n` raw answers with the (lat, lon) each states; NaN for refusals and garbage."""
    rng = random.Random(seed)
    out: list[tuple[str, float, float]] = []
    for _ in range(n):
        if rng.random() < 0.05:
            out.append((rng.choice(_REFUSALS), math.nan, math.nan))
        else:
            out.append(_answer(rng))
    return out


def agrees(parsed, lat: float, lon: float, tol: float = 1e-6) -> bool:
    """Whether a ParsedAnswer matches the stated coordinates (no answer for NaN)."""
    if math.isnan(lat):
        return parsed.lat is None
    return parsed.lat is not None and abs(parsed.lat - lat) <= tol and abs(parsed.lon - lon) <= tol


def main(argv: list[str]) -> None:
    from greval.parse import parse_answer

    n = int(argv[1]) if len(argv) > 1 else 100_000
    seed = int(argv[2]) if len(argv) > 2 else 0
    answers = realistic_answers(n, seed)
    t0 = time.perf_counter()
    parsed = [parse_answer(text) for text, _, _ in answers]
    seconds = time.perf_counter() - t0
    agree = sum(agrees(p, lat, lon) for p, (_, lat, lon) in zip(parsed, answers, strict=True))
    print(f"parse_answer: {n} answers in {seconds:.2f} s ({1e6 * seconds / n:.1f} µs each)")
    print(f"agreement with the stated coordinates: {agree / n:.4%} ({n - agree} disagree)")
    for p, (text, lat, lon) in zip(parsed, answers, strict=True):
        if not agrees(p, lat, lon):
            print(f"  first disagreement: {text!r} -> {p} (expected {lat}, {lon})")
            break


if __name__ == "__main__":
    main(sys.argv)
