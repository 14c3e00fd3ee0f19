"""Read a latitude/longitude out of a model's raw answer text.

`parse_answer(text)` never raises and never returns an out-of-range, NaN or infinite
coordinate. It reads what GPT-4o, Claude, Gemini, Qwen2.5-VL, InternVL, LLaVA and the
GRE model write. The trainer's reward calls the same function, so evaluation and
training agree on what an answer means.

Rules, applied in this order
----------------------------
1. **Empty.** `None`, `""` or whitespace only -> EMPTY.

2. **Where the answer is.** Reasoning is never mined when an answer exists:
   - `<think>...</think>` spans are reasoning. A `</think>` with no `<think>` before it
     (chat templates that open the tag in the prompt) makes everything before it
     reasoning. A `<think>` that is never closed is truncated reasoning: everything
     after it is ignored (a truncated chain has not committed to anything).
   - If there is an `<answer>` tag outside the reasoning, the region is the text of the
     LAST one, up to its `</answer>` or to the end of the text when the closing tag is
     missing. Code fences around the block do not matter.
   - Else, if the only `<answer>` blocks are inside reasoning, the last of those.
   - Else the region is the whole text with the reasoning spans removed.
   Tags match case-insensitively (`<Answer>`).
   Regions longer than 64 KB are cut to their first and last 32 KB (a runaway
   generation); the answer is stated at one end or the other.

3. **What counts as a coordinate** (a "candidate"), strongest form first:
   - *Named*: a latitude and a longitude that name their axis, in either order and next
     to each other: JSON or python-dict keys at any depth (`{"lat": ..}`,
     `{"location": {"Latitude": "45.465 °"}}`; source "json"), prose and markdown labels
     (`Latitude: 40.75`, `Lat 35.6, Lon 139.7`, `**Latitude:** 48.8566° N`,
     `48.85 latitude, 2.35 longitude`, Chinese 纬度/经度 and 北纬/南纬/东经/西经, Spanish /
     Italian / German `Latitud`, `Longitudine`, `Breitengrad`; source "labelled").
     Values may be strings, carry degree signs, DMS and hemispheres.
   - *Unnamed pairs*: two numbers next to each other, separated by a comma, semicolon,
     slash or space: `(48.85, 2.35)`, `[40.75, -73.96]`, `48.8566, 2.3522`,
     `33.87° S, 151.21° E`, `48°51'24"N 2°21'08"E`. A plain pair is LATITUDE FIRST,
     the convention, with three exceptions that say otherwise: hemisphere letters or
     axis labels on either number (`2.35 E, 48.85 N`, `Lon: 2.35, 48.85`), a
     `lon, lat` / `lng/lat` header before it, or a GeoJSON `"type": "Point"` object
     (GeoJSON is lon, lat). Otherwise a pair whose first number has |x| > 90 and second
     |y| <= 90 can only be lon, lat and is swapped (source "pair_lonlat"); every other
     order ambiguity is read latitude first. Sources: "pair", "hemisphere", "dms",
     "geojson".
   - A *refusal written as data*: `{"latitude": null}`, `"lat": "unknown"`, NaN, "N/A".
   Not coordinates: a single number; a number followed by a unit (km, m, %, hours,
   °C, years, ...) or led by a non-coordinate label (confidence, altitude, distance,
   score, ...); numbers glued to letters (`221B`, `Qwen2.5`); integers of 4+ digits
   (years); dates and versions (`12.05.2023`). An unnamed pair needs decimals on both
   numbers, a hemisphere or minutes mark, or brackets / a "coordinates:" label around
   integers; "and" joins two numbers only when they carry hemispheres or DMS marks.
   Numbers: ASCII or unicode minus (`−`), `+`, degree signs ° º ˚ and "deg(rees)", primes
   ' ′ ’ and seconds " ″ '' or the words minutes/seconds, hemispheres N/S/E/W or
   north/south/east/west before or after. A hemisphere letter decides the sign (S and W
   negative) even against a written minus sign. Minutes/seconds of 60 or more make the
   value out of range.

4. **Which candidate is the final committed answer.** Inside the region:
   a. If a commitment phrase ("final answer", "final coordinates", "my best guess",
      "I'll go with", "my answer is", "in conclusion", "answer:", 最终答案, ...) is
      followed by a candidate, only the candidates after the LAST such phrase count,
      and the FIRST of them is the answer (what follows it is usually explanation:
      "48.85, 2.35, near the Louvre, 1 km from 48.86, 2.29"). If the last commitment
      phrase introduces a refusal ("Final answer: I cannot tell"), the result is
      REFUSAL (rule 6 says when it does).
   b. Otherwise the LAST candidate is the answer (reasoning comes before conclusions).
   c. Candidates introduced as alternatives are skipped unless nothing else is left:
      an "alternatively", "or", "could also be", "rather than", "less likely", "ruled
      out", "X, not Y" (but not "not far")... in the same sentence before it, or a
      ranked list item 2, 3, ...
      ("2. Lyon (45.76, 4.83)"). So "Paris (48.85, 2.35) or maybe Lyon (45.76, 4.83)"
      is Paris and a ranked list is its first item.
   d. Named coordinates beat unnamed pairs in the same span (a JSON answer followed by
      prose that mentions some other point keeps the JSON).
   The chosen candidate decides the status: OK, OUT_OF_RANGE (|lat| > 90 or
   |lon| > 180, or bad minutes; values never returned), or REFUSAL (data refusal).

5. **No candidate.** A refusal phrase ("I can't determine", "unable to", "sorry",
   "unknown", "N/A", "none", ...) in the region -> REFUSAL; otherwise NO_ANSWER
   (a place name without coordinates is NO_ANSWER: greval does not geocode names).

6. **A caveat never erases a given answer.** A refusal is the answer only when it IS
   what the last commitment phrase introduces, or when no usable coordinate is offered
   at all (rule 5). A caveat about certainty or precision, before or after the answer
   ("my best guess", "I cannot be 100% certain", "impossible to pinpoint the exact
   street", "**Important Note:** ... an educated guess", "I can't be more precise")
   changes nothing: `{"lat": 19.076, "long": 72.8777}` followed by such a note is OK at
   those coordinates. The last commitment phrase introduces a refusal when
   - a coordinate follows it and the refusal is written as its value, ending the clause:
     "Final coordinates: N/A — ...", "Final answer: Unknown. (I first thought 41.9,
     12.5)" (but not "Final answer: Unknown street, Rome: 41.9, 12.5");
   - no coordinate follows it and a refusal phrase after it is not a caveat. A caveat
     is a refusal phrase whose own clause (within , ; : . and at most 60 characters
     either side) names certainty ("certain", "sure", "100 %", "confirm", "verify",
     "guarantee", "more precise", "further") or, except in the clause the phrase
     introduces with ":" or "is", precision ("exact", "precise", "pinpoint", "street", "accurate"). So
     "Final answer: I cannot determine the exact location" is a refusal, while "48.85,
     2.35 is my final answer, though I cannot pinpoint the exact street" stays OK.
   A refusal followed by coordinates ("I can't determine the exact address, but ...
   43.77, 11.26") is OK at the coordinates: they are offered.

7. **Null Island is a placeholder.** An answer of exactly (0, 0) (`"latitude": "0",
   "longitude": "0"` beside `"city": "Unknown"`, `0.0000, 0.0000`) is a refusal written
   as data: REFUSAL (source "null_island"), flagged `null_island`.

`ParsedAnswer.span` is where the decision was read, as offsets into the raw text: the
chosen coordinate (for Null Island too), the refusal phrase, or the final-answer marker
through the refusal it introduces; None for EMPTY and NO_ANSWER. `greval audit` shows
the text around it.

Flags
-----
`ParsedAnswer.flags` names what makes a reading doubtful; `greval audit` lists them
and each run reports the flagged share (see greval/audit.py):
- `coords_in_refusal`: REFUSAL or NO_ANSWER, yet the text holds a usable coordinate
  (in the reasoning, or before a "Final answer: I cannot tell");
- `null_island`: rule 7;
- `multiple_answers`: two different named answers (JSON / labelled, more than ~1 km
  apart), or, with nothing named, several pairs none of which is an alternative (4c);
- `order_guess`: an unlabelled pair both of whose readings are on the globe, read
  latitude first by convention;
- `out_of_range`: the chosen coordinate is off the globe.

Performance: all regular expressions are precompiled, none can backtrack
catastrophically (no nested unbounded quantifiers over overlapping classes), and the
per-number work looks at a bounded window, so time is linear in the text length.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass
from enum import Enum

from greval.parse_patterns import (
    ALTERNATIVE,
    CERTAINTY_WORDS,
    CJK_SIGNS,
    CLAUSE_END,
    CLOSE_BRACKET,
    COMMIT,
    COMMIT_HINTS,
    COMMIT_LOWER,
    COMPONENT,
    DATA_REFUSAL_AFTER_MARKER,
    FORMAT,
    GEOJSON_POINT,
    INTRODUCES,
    LABEL_KINDS,
    LABEL_REV,
    LABEL_WINDOW,
    MINUS,
    NULL_HINTS,
    NULL_VALUE,
    OPEN_BRACKET,
    PAIR_GAP,
    PAIR_GAP_NEWLINE,
    PRECISION_WORDS,
    RANKED_ITEM,
    REFUSAL_RE,
    SENTENCE_END,
    SUFFIX_LABEL,
    TAG,
    UNIT_AFTER,
)

__all__ = ["ParseStatus", "ParsedAnswer", "parse_answer", "has_think_answer_format"]


class ParseStatus(str, Enum):
    OK = "ok"
    EMPTY = "empty"
    NO_ANSWER = "no_answer"
    REFUSAL = "refusal"
    OUT_OF_RANGE = "out_of_range"


@dataclass(frozen=True, slots=True)
class ParsedAnswer:
    lat: float | None
    lon: float | None
    status: ParseStatus
    source: str | None = None  # which rule matched: "json", "labelled", "pair", "dms", ...
    # Doubts about this reading, for `greval audit` (see "Flags" in the module docstring).
    flags: tuple[str, ...] = ()
    # Where in the text the decision was made, [start, end) offsets: the chosen coordinate,
    # or the refusal (from its final-answer marker). None for EMPTY and NO_ANSWER.
    span: tuple[int, int] | None = None

    @property
    def ok(self) -> bool:
        return self.status is ParseStatus.OK


_EMPTY = ParsedAnswer(None, None, ParseStatus.EMPTY)
_NO_ANSWER = ParsedAnswer(None, None, ParseStatus.NO_ANSWER)

_MAX_REGION = 64 * 1024  # longer regions keep their first and last half of this


@dataclass(slots=True)
class _Component:
    start: int
    end: int  # end of the number (incl. degree marks and hemisphere)
    value: float  # signed degrees, hemisphere applied
    hemi_axis: str | None  # "lat" / "lon" from a hemisphere letter or word
    label: str | None  # "lat", "lon", "latlon", "lonlat", "ctx", "noncoord"
    label_start: int
    quoted: bool  # label was a quoted JSON/dict key
    decimal: bool
    dms: bool  # had minutes
    marked: bool  # had a degree sign or hemisphere
    valid: bool  # minutes/seconds < 60
    unit: bool  # followed by a unit: not a coordinate
    geojson: bool = False

    @property
    def axis(self) -> str | None:
        if self.hemi_axis is not None:
            return self.hemi_axis
        if self.label in ("lat", "lon"):
            return self.label
        return None


@dataclass(slots=True)
class _Candidate:
    start: int
    end: int
    lat: float
    lon: float
    named: bool  # both axes named (JSON keys or labels)
    source: str
    refusal: bool = False
    valid: bool = True


# --- public API ----------------------------------------------------------------------


def parse_answer(text: str | None) -> ParsedAnswer:
    """The final committed coordinate in `text` (see the module docstring). Never raises."""
    try:
        return _parse(text)
    except Exception:  # pragma: no cover - a bug here must not kill a paid-for run
        return _NO_ANSWER


def has_think_answer_format(text: str | None) -> bool:
    """True when `text` is exactly `<think>…</think>` then `<answer>…</answer>`.

    Each tag appears once, in that order, with only whitespace outside and between
    the two blocks, and a non-empty answer. Tags are lower case, as the prompt asks.
    This is the GRE format reward's check; whether the answer parses is a separate
    question for `parse_answer`.
    """
    if not isinstance(text, str):
        return False
    for tag in ("<think>", "</think>", "<answer>", "</answer>"):
        if text.count(tag) != 1:
            return False
    m = FORMAT.fullmatch(text)
    return m is not None and bool(m.group(2).strip())


# --- implementation ------------------------------------------------------------------


def _parse(text: str | None) -> ParsedAnswer:
    if not isinstance(text, str) or not text or text.isspace():
        return _EMPTY
    region, pieces = _answer_region(text)
    if len(region) > _MAX_REGION:
        half = _MAX_REGION // 2
        cut = len(region) - half  # region[cut:] follows the "\n" at half
        pieces = _cut_pieces(pieces, half, cut)
        region = region[:half] + "\n" + region[cut:]
    if not region or region.isspace():
        return _NO_ANSWER

    candidates = _candidates(region)
    if not candidates:
        m = REFUSAL_RE.search(region)
        if m is None:
            return _with_flags(_NO_ANSWER, _coords_elsewhere(text, region))
        where = _span(pieces, *m.span())
        return ParsedAnswer(None, None, ParseStatus.REFUSAL, "refusal", _coords_elsewhere(text, region), where)
    chosen, refusal = _choose(region, candidates)
    if chosen is None:
        flags = ("coords_in_refusal",) if any(map(_usable, candidates)) else ()
        return ParsedAnswer(None, None, ParseStatus.REFUSAL, "refusal", flags, refusal and _span(pieces, *refusal))
    where = _span(pieces, chosen.start, chosen.end)
    status = _status(chosen)
    if status is ParseStatus.OK and chosen.lat == 0.0 and chosen.lon == 0.0:
        # Null Island: "0, 0" beside "city: Unknown" is a refusal written as data.
        return ParsedAnswer(None, None, ParseStatus.REFUSAL, "null_island", ("null_island",), where)
    if status is ParseStatus.REFUSAL:  # a refusal written as data: {"lat": null}
        flags = ("coords_in_refusal",) if any(map(_usable, candidates)) else ()
        return ParsedAnswer(None, None, status, "refusal", flags, where)
    flags = _doubts(region, candidates, chosen, status)
    if status is ParseStatus.OK:
        return ParsedAnswer(chosen.lat, chosen.lon, status, chosen.source, flags, where)
    return ParsedAnswer(None, None, status, chosen.source, flags, where)


# Where the pieces of a region come from: (offset in the region, offset in the text), in
# order; a region position maps to the text through the last piece that starts at or before it.
_Pieces = list[tuple[int, int]]
_WHOLE: _Pieces = [(0, 0)]


def _span(pieces: _Pieces, a: int, b: int) -> tuple[int, int]:
    """Region offsets [a, b) as offsets into the raw text."""
    if pieces is _WHOLE:
        return a, b
    return _to_text(pieces, a), _to_text(pieces, max(a, b - 1)) + 1


def _to_text(pieces: _Pieces, pos: int) -> int:
    if len(pieces) == 1:
        return pieces[0][1] + pos
    k = bisect.bisect_right(pieces, (pos, math.inf)) - 1
    return pieces[k][1] + pos - pieces[k][0]


def _cut_pieces(pieces: _Pieces, half: int, cut: int) -> _Pieces:
    """The pieces of region[:half] + "\n" + region[cut:]."""
    head = [p for p in pieces if p[0] < half]
    tail = [(r - cut + half + 1, t) for r, t in pieces if r > cut]
    return [*head, (half + 1, _to_text(pieces, cut)), *tail]


def _answer_region(text: str) -> tuple[str, _Pieces]:
    """The text that may hold the answer: the last <answer> block, else non-reasoning text."""
    if "<" not in text:
        return text, _WHOLE
    tags = list(TAG.finditer(text))
    if not tags:
        return text, _WHOLE
    reasoning: list[tuple[int, int]] = []
    open_at: int | None = None
    seen_think = False
    for t in tags:
        if t.group(2).lower() != "think":
            continue
        closing = bool(t.group(1))
        if not closing:
            if open_at is None:
                open_at = t.start()
        elif open_at is not None:
            reasoning.append((open_at, t.end()))
            open_at = None
        elif not seen_think:
            reasoning.append((0, t.end()))  # the template opened <think> in the prompt
        seen_think = True
    if open_at is not None:
        reasoning.append((open_at, len(text)))  # never closed: truncated reasoning

    starts = [a for a, _ in reasoning]  # spans are disjoint and in order

    def in_reasoning(pos: int) -> bool:
        k = bisect.bisect_right(starts, pos) - 1
        return k >= 0 and pos < reasoning[k][1]

    answers = [t for t in tags if t.group(2).lower() == "answer" and not t.group(1)]
    outside = [t for t in answers if not in_reasoning(t.start())]
    chosen = outside[-1] if outside else (answers[-1] if answers else None)
    if chosen is not None:
        end = len(text)
        for t in tags:
            if t.start() >= chosen.end() and t.group(2).lower() == "answer" and t.group(1):
                end = t.start()
                break
        return text[chosen.end() : end], [(0, chosen.end())]
    if not reasoning:
        return text, _WHOLE
    parts: list[str] = []
    pieces: _Pieces = []
    pos = at = 0
    for a, b in sorted(reasoning):
        if a > pos:
            pieces.append((at, pos))
            parts.append(text[pos:a])
            at += a - pos + 1  # the piece and the "\n" that joins it to the next
        pos = max(pos, b)
    pieces.append((at, pos))
    parts.append(text[pos:])
    return "\n".join(parts), pieces


def _components(region: str) -> list[_Component]:
    comps: list[_Component] = []
    prev_end = 0
    geojson: bool | None = None
    for m in COMPONENT.finditer(region):
        start, end = m.span()
        phemi, sign, deg_text, degmark, minutes, seconds, hemi = m.group(
            "phemi", "sign", "deg", "degmark", "min", "sec", "hemi"
        )
        decimal = "." in deg_text or "," in deg_text
        value = float(deg_text.replace(",", "."))
        valid = True
        if minutes is not None:
            mv = float(minutes)
            sv = float(seconds) if seconds is not None else 0.0
            valid = mv < 60 and sv < 60
            value += mv / 60.0 + sv / 3600.0
        hemi = hemi or phemi
        hemi_axis = None
        negative = sign in MINUS
        if hemi:
            h = hemi[0].upper()
            hemi_axis = "lat" if h in "NS" else "lon"
            negative = h in "SW"
        unit = UNIT_AFTER.match(region, end) is not None

        label = None
        label_start = start
        quoted = False
        window_start = max(prev_end, start - LABEL_WINDOW)
        lm = LABEL_REV.match(region[window_start:start][::-1]) if start > window_start else None
        if lm is not None:
            label_start = start - lm.end()
            tail = lm.group("tail")
            quoted = ("'" in tail or '"' in tail) and (":" in tail or "=" in tail)
            kind = lm.lastgroup
            label = LABEL_KINDS.get(kind, kind)
            if kind in CJK_SIGNS:
                if CJK_SIGNS[kind]:
                    negative = True
                elif hemi is None:
                    negative = False
            if label == "ctx" and lm.group("ctx").lower().endswith("drooc"):
                if geojson is None:
                    geojson = GEOJSON_POINT.search(region) is not None
                if geojson:
                    label = "lonlat"
        label_end = end
        if label is None and not unit:
            sm = SUFFIX_LABEL.match(region, end)
            if sm is not None:
                label = "lat" if sm.group("lat") else "lon"
                label_end = sm.end()
        comps.append(
            _Component(
                start=start,
                end=end,
                value=-value if negative else value,
                hemi_axis=hemi_axis,
                label=label,
                label_start=label_start,
                quoted=quoted,
                decimal=decimal,
                dms=minutes is not None,
                marked=bool(hemi) or degmark is not None,
                valid=valid,
                unit=unit,
                geojson=bool(geojson) and label == "lonlat",
            )
        )
        prev_end = label_end
    return comps


def _in_range(lat: float, lon: float) -> bool:
    return -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0 and math.isfinite(lat) and math.isfinite(lon)


def _named_pair(a: _Component, b: _Component) -> _Candidate | None:
    if a.label not in ("lat", "lon") or b.label not in ("lat", "lon") or a.label == b.label:
        return None
    if b.label_start - a.end > 80:
        return None
    lat_c, lon_c = (a, b) if a.label == "lat" else (b, a)
    source = "json" if a.quoted and b.quoted else "labelled"
    valid = a.valid and b.valid and _in_range(lat_c.value, lon_c.value)
    return _Candidate(a.label_start, b.end, lat_c.value, lon_c.value, True, source, valid=valid)


def _unnamed_pair(region: str, a: _Component, b: _Component) -> _Candidate | None:
    if a.label == "noncoord" or b.label == "noncoord":
        return None
    gap = region[a.end : b.start]
    if len(gap) > 16:
        return None
    strong = a.dms or b.dms or a.hemi_axis is not None or b.hemi_axis is not None
    gm = PAIR_GAP.fullmatch(gap)
    if gm is None:
        if not (strong and PAIR_GAP_NEWLINE.fullmatch(gap)):
            return None
    elif gm.group("and") is not None:
        if not strong:
            return None
    elif gm.group("punct") is None and not ((a.decimal and b.decimal) or strong) or not gap and not strong:
        return None
    bracketed = bool(OPEN_BRACKET.search(region, max(0, a.start - 4), a.start)) and bool(
        CLOSE_BRACKET.match(region, b.end)
    )
    context = a.label in ("ctx", "latlon", "lonlat", "lat", "lon")
    if not (strong or (a.decimal and b.decimal) or bracketed or context):
        return None
    ax_a, ax_b = a.axis, b.axis
    if ax_a is not None and ax_a == ax_b:
        return None
    x, y = a.value, b.value
    valid = a.valid and b.valid
    if ax_a == "lon" or ax_b == "lat":
        lat, lon = y, x
        source = "dms" if a.dms or b.dms else ("hemisphere" if strong else "labelled")
    elif ax_a is None and ax_b is None and a.label == "lonlat":
        lat, lon = y, x
        source = "geojson" if a.geojson else "pair_lonlat"
    elif ax_a is None and ax_b is None and abs(x) > 90 and abs(y) <= 90:
        lat, lon = y, x
        source = "pair_lonlat"
    else:
        lat, lon = x, y
        source = "dms" if a.dms or b.dms else ("hemisphere" if strong else "pair")
    if not _in_range(lat, lon):
        if not (strong or bracketed or context or a.marked or b.marked):
            return None  # just two numbers that do not fit the globe: not coordinates
        valid = False
    return _Candidate(a.start, b.end, lat, lon, False, source, valid=valid)


def _candidates(region: str) -> list[_Candidate]:
    comps = _components(region)
    out: list[_Candidate] = []
    i, n = 0, len(comps)
    while i < n - 1:
        a = comps[i]
        if a.unit:
            i += 1
            continue
        b = comps[i + 1]
        if not b.unit:
            cand = _named_pair(a, b) or _unnamed_pair(region, a, b)
            if cand is not None:
                out.append(cand)
                i += 2
                continue
        i += 1
    lowered = region.lower()
    if "lat" in lowered and any(h in lowered for h in NULL_HINTS):
        for m in NULL_VALUE.finditer(region):
            out.append(_Candidate(m.start(), m.end(), math.nan, math.nan, True, "refusal", refusal=True))
        out.sort(key=lambda c: c.start)
    return out


def _is_alternative(region: str, cand: _Candidate, since: int) -> bool:
    line_start = region.rfind("\n", 0, cand.start) + 1
    if RANKED_ITEM.match(region, line_start) and line_start >= since:
        return True
    lo = max(since, cand.start - 200)
    last = None
    for last in ALTERNATIVE.finditer(region, lo, cand.start):  # noqa: B007 - keep the last
        pass
    if last is None:
        return False
    return SENTENCE_END.search(region, last.end(), cand.start) is None


def _choose(region: str, candidates: list[_Candidate]) -> tuple[_Candidate | None, tuple[int, int] | None]:
    """The answer (rule 4), or None and the span of the refusal that the last final-answer
    marker introduces (rule 6)."""
    pool = candidates
    pick_first = False
    since = 0
    lowered = region.lower()
    markers = []
    if any(h in lowered for h in COMMIT_HINTS):
        # Case-sensitive search on lower-cased text is ~4x faster than IGNORECASE; lower()
        # keeps offsets unless a character changes length (then use the slow path).
        same = len(lowered) == len(region)
        markers = list(COMMIT_LOWER.finditer(lowered) if same else COMMIT.finditer(region))
    for k, mk in enumerate(reversed(markers)):
        after = [c for c in candidates if c.start >= mk.end()]
        refusal = _introduced_refusal(region, mk, bool(after)) if k == 0 else None
        if refusal is not None:
            return None, refusal  # "Final answer: I cannot tell where this is."
        if after:
            pool, pick_first, since = after, True, mk.end()
            break
    if len(pool) == 1:
        return pool[0], None
    kept = []
    prev_end = since
    for c in pool:
        if not _is_alternative(region, c, prev_end):
            kept.append(c)
        prev_end = c.end
    if kept:
        pool = kept
    named = [c for c in pool if c.named]
    if named:
        pool = named
    return (pool[0] if pick_first else pool[-1]), None


def _introduced_refusal(region: str, marker: re.Match[str], answered: bool) -> tuple[int, int] | None:
    """The refusal the last commitment marker introduces (rule 6), as a span from the marker.

    With a coordinate after the marker, only a refusal written as a value right after it
    counts ("Final coordinates: N/A — ..."). Without one, a refusal after it that is not a
    caveat: the first clause of "Final answer: I cannot determine the exact spot" is the
    answer unless it only doubts certainty ("Final answer: I cannot be 100% sure"); later
    ones must name neither certainty nor precision ("... my best guess, though I cannot
    pinpoint the exact street")."""
    if answered:
        m = DATA_REFUSAL_AFTER_MARKER.match(region, marker.end())
        return (marker.start(), m.end()) if m else None
    intro = INTRODUCES.match(region, marker.end())
    first_clause = CLAUSE_END.search(region, intro.end()) if intro else None
    for m in REFUSAL_RE.finditer(region, marker.end()):
        direct = intro is not None and (first_clause is None or m.start() < first_clause.start())
        if not _is_caveat(region, m, (CERTAINTY_WORDS,) if direct else (CERTAINTY_WORDS, PRECISION_WORDS)):
            return marker.start(), m.end()
    return None


_CAVEAT_REACH = 60  # characters on either side of a refusal phrase, within its clause


def _is_caveat(region: str, m: re.Match[str], words: tuple[re.Pattern[str], ...]) -> bool:
    """A refusal phrase whose clause holds one of `words` ("I cannot be 100 % sure",
    "pinpointing the exact street is impossible"): a caveat, not a refusal."""
    lo = max(0, m.start() - _CAVEAT_REACH)
    for b in CLAUSE_END.finditer(region, lo, m.start()):
        lo = b.end()
    end = CLAUSE_END.search(region, m.end(), m.end() + _CAVEAT_REACH)
    hi = end.start() if end else min(len(region), m.end() + _CAVEAT_REACH)
    return any(w.search(region, lo, m.start()) or w.search(region, m.end(), hi) for w in words)


def _usable(c: _Candidate) -> bool:
    return not c.refusal and c.valid and _in_range(c.lat, c.lon) and (c.lat, c.lon) != (0.0, 0.0)


def _with_flags(result: ParsedAnswer, flags: tuple[str, ...]) -> ParsedAnswer:
    if not flags:
        return result
    return ParsedAnswer(result.lat, result.lon, result.status, result.source, tuple(flags))


def _coords_elsewhere(text: str, region: str) -> tuple[str, ...]:
    """("coords_in_refusal",) when a refusal or no-answer still holds a usable coordinate
    outside its answer region (in the reasoning); only read for failed answers."""
    if len(text) == len(region) or len(text) > 4 * _MAX_REGION:
        return ()
    return ("coords_in_refusal",) if any(map(_usable, _candidates(text))) else ()


_SAME_POINT_DEG = 0.01  # ~1 km: closer candidates are one answer written twice


def _distinct(points: list[tuple[float, float]]) -> int:
    kept: list[tuple[float, float]] = []
    for lat, lon in points:
        if all(abs(lat - a) > _SAME_POINT_DEG or abs(lon - b) > _SAME_POINT_DEG for a, b in kept):
            kept.append((lat, lon))
    return len(kept)


def _doubts(region: str, candidates: list[_Candidate], chosen: _Candidate, status: ParseStatus) -> tuple[str, ...]:
    flags = []
    if status is ParseStatus.OUT_OF_RANGE:
        flags.append("out_of_range")
    if status is ParseStatus.OK and chosen.source == "pair" and abs(chosen.lon) <= 90 and chosen.lat != chosen.lon:
        flags.append("order_guess")  # both readings are on the globe: latitude-first is the convention
    # Several different points offered as the answer: two named (JSON / labelled) answers,
    # or, where nothing is named, several pairs none of which is marked as an alternative.
    usable = [c for c in candidates if _usable(c)]
    if len(usable) > 1 and _distinct([(c.lat, c.lon) for c in usable]) > 1:  # else one point at most: cheap exit
        named = [c for c in usable if c.named]
        pool = named or [
            c for i, c in enumerate(usable) if not _is_alternative(region, c, usable[i - 1].end if i else 0)
        ]
        if len(pool) > 1 and _distinct([(c.lat, c.lon) for c in pool]) > 1:
            flags.append("multiple_answers")
    return tuple(flags)


def _status(c: _Candidate) -> ParseStatus:
    if c.refusal:
        return ParseStatus.REFUSAL
    if not c.valid or not _in_range(c.lat, c.lon):
        return ParseStatus.OUT_OF_RANGE
    return ParseStatus.OK
