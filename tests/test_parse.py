"""Tests for greval.parse: a hand-checked corpus of real-looking outputs, regressions
for the released GRE reward's bugs, property tests and adversarial inputs."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from greval.audit import extraction_flags
from greval.parse import ParsedAnswer, ParseStatus, has_think_answer_format, parse_answer

CASES_FILE = Path(__file__).parent / "data" / "parse_cases.jsonl"
CASES = [json.loads(line) for line in CASES_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
TOL = 1e-6


def _check(case: dict) -> None:
    got = parse_answer(case["text"])
    assert got.status.value == case["status"], f"{case['id']} ({case['note']}): {got}"
    if case["status"] == "ok":
        assert got.lat == pytest.approx(case["lat"], abs=TOL), case["id"]
        assert got.lon == pytest.approx(case["lon"], abs=TOL), case["id"]
    else:
        assert got.lat is None and got.lon is None
    if "flags" in case:  # the audit's flags, the simple extractor's second opinion included
        assert sorted(extraction_flags(case["text"], got)) == sorted(case["flags"]), case["id"]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_corpus_case(case):
    _check(case)


def test_corpus_is_large_and_varied():
    assert len(CASES) >= 300
    assert len({c["id"] for c in CASES}) == len(CASES)
    families = Counter(c["family"] for c in CASES)
    for family in ("gpt-4o", "claude", "gemini", "qwen2.5-vl", "internvl", "llava", "gre"):
        assert families[family] >= 10, family
    statuses = Counter(c["status"] for c in CASES)
    # Issue 8's rule (a caveat never erases an answer; refusals stay refusals), both kinds,
    # with the flags each must raise.
    rule = [c for c in CASES if "-rule-" in c["id"]]
    assert len(rule) >= 100 and len({c["family"] for c in rule}) >= 8
    assert Counter(c["status"] for c in rule)["refusal"] >= 25 and sum("flags" in c for c in rule) == len(rule)
    assert statuses["refusal"] >= 20 and statuses["no_answer"] >= 20 and statuses["out_of_range"] >= 5
    for case in CASES:
        if case["status"] == "ok":
            assert -90 <= case["lat"] <= 90 and -180 <= case["lon"] <= 180, case["id"]
        else:
            assert case["lat"] is None and case["lon"] is None, case["id"]


# --- the released GRE reward's bugs: lat/lon swapped, quoted keys missed, "first two numbers"


def test_gre_paper_format_is_latitude_first():
    got = parse_answer('"Latitude": "45.465 °", "Longitude": "9.191 °"')
    assert (got.lat, got.lon, got.status) == (45.465, 9.191, ParseStatus.OK)


def test_gre_paper_format_inside_tags():
    text = '<think>Gothic cathedral, Milan.</think>\n<answer>"Latitude": "45.465 °", "Longitude": "9.191 °"</answer>'
    got = parse_answer(text)
    assert (got.lat, got.lon) == (45.465, 9.191)
    assert got.source == "json"


def test_gre_quoted_keys_with_southern_western_values():
    got = parse_answer('<answer>"Latitude": "-22.951 °", "Longitude": "-43.210 °"</answer>')
    assert (got.lat, got.lon) == (-22.951, -43.210)


def test_not_the_first_two_numbers_in_the_text():
    text = "Built in 1889, 330 m tall, 2 km from the river. Latitude: 48.8584, Longitude: 2.2945"
    got = parse_answer(text)
    assert (got.lat, got.lon) == (48.8584, 2.2945)


def test_reasoning_numbers_are_not_read_when_an_answer_exists():
    text = "<think>Maybe 10.5, 20.5 or 30.5, 40.5.</think><answer>Unknown</answer>"
    assert parse_answer(text).status is ParseStatus.REFUSAL


# --- format check for the trainer's reward


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>clues</think><answer>45.465, 9.191</answer>", True),
        ("  <think>clues</think>\n\n<answer>45.465, 9.191</answer>\n", True),
        ("<think>clues</think>", False),
        ("<answer>45.465, 9.191</answer>", False),
        ("<answer>45.465, 9.191</answer><think>clues</think>", False),
        ("<think>a</think><think>b</think><answer>1, 2</answer>", False),
        ("<think>a</think><answer>1, 2</answer><answer>3, 4</answer>", False),
        ("<think>a</think> text between <answer>1, 2</answer>", False),
        ("<think>a</think><answer>  </answer>", False),
        ("preamble <think>a</think><answer>1, 2</answer>", False),
        ("<think>a<answer>1, 2</think></answer>", False),
        ("", False),
        (None, False),
    ],
)
def test_has_think_answer_format(text, expected):
    assert has_think_answer_format(text) is expected


# --- contract details


def test_status_is_a_plain_string_in_json():
    got = parse_answer("48.85, 2.35")
    assert json.dumps({"status": got.status.value}) == '{"status": "ok"}'
    assert json.dumps(got.status) == '"ok"'  # str Enum serialises as its value
    assert got.status == "ok"


@pytest.mark.parametrize("value", [None, "", " ", b"48.85, 2.35", 12, 48.85, ["48.85, 2.35"]])
def test_non_text_and_blank_inputs_are_empty(value):
    got = parse_answer(value)
    assert got == ParsedAnswer(None, None, ParseStatus.EMPTY)


def test_out_of_range_values_are_never_returned():
    for text in ("Latitude: 123, Longitude: 45", '{"latitude": 45, "longitude": 200}', "(95.5° N, 10° E)"):
        got = parse_answer(text)
        assert got.status is ParseStatus.OUT_OF_RANGE and got.lat is None and got.lon is None, text


# --- properties


def _assert_well_formed(got: ParsedAnswer) -> None:
    assert isinstance(got.status, ParseStatus)
    if got.status is ParseStatus.OK:
        assert math.isfinite(got.lat) and math.isfinite(got.lon)
        assert -90 <= got.lat <= 90 and -180 <= got.lon <= 180
    else:
        assert got.lat is None and got.lon is None


_COORDISH = st.text(
    alphabet=st.sampled_from(list("0123456789.,;-−+ °º'′\"″NSEWnsewlatitudeongLATLON:{}[]()<>/answer think\n*_`")),
    max_size=200,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(), _COORDISH, st.from_regex(r"[\d.,\- °'\"NSEW]{0,60}", fullmatch=True)))
def test_never_raises_and_is_well_formed(text):
    _assert_well_formed(parse_answer(text))


# Text around an answer: no ASCII digits (they would glue onto the numbers) and no '<'
# (a stray "<think>" legitimately hides what follows); tags are covered by the corpus.
_NOISE = st.text(alphabet=st.characters(blacklist_characters="0123456789<", blacklist_categories=("Cs",)), max_size=80)
_LAT = st.floats(min_value=-90, max_value=90, allow_nan=False)
_LON = st.floats(min_value=-180, max_value=180, allow_nan=False)


def _off_null_island(lat: float, lon: float, places: int) -> None:
    """An answer that reads exactly (0, 0) is Null Island, a refusal: not a round trip."""
    assume(round(lat, places) != 0 or round(lon, places) != 0)


def _decimal_formats(lat: float, lon: float) -> list[str]:
    a, b = f"{lat:.6f}", f"{lon:.6f}"
    ns, ew = ("N" if lat >= 0 else "S"), ("E" if lon >= 0 else "W")
    return [
        f"{a}, {b}",
        f"({a}, {b})",
        f'{{"latitude": {a}, "longitude": {b}}}',
        f'"Latitude": "{a} °", "Longitude": "{b} °"',
        f"Longitude: {b}, Latitude: {a}",
        f"**Latitude:** {abs(lat):.6f}° {ns}\n**Longitude:** {abs(lon):.6f}° {ew}",
        f"{abs(lat):.6f}° {ns}, {abs(lon):.6f}° {ew}",
    ]


@settings(max_examples=300, deadline=None)
@given(_LAT, _LON, _NOISE, _NOISE, st.integers(min_value=0, max_value=6))
def test_decimal_pair_round_trips_inside_noise(lat, lon, before, after, which):
    _off_null_island(lat, lon, 6)
    formatted = _decimal_formats(lat, lon)[which]
    got = parse_answer(f"{before}\nAnswer: {formatted}\n{after}")
    assert got.status is ParseStatus.OK, (formatted, got)
    assert abs(got.lat - float(f"{lat:.6f}")) <= TOL and abs(got.lon - float(f"{lon:.6f}")) <= TOL, (formatted, got)


def _to_dms(x: float) -> tuple[int, int, float]:
    x = abs(x)
    d = int(x)
    m = int((x - d) * 60)
    s = round((x - d - m / 60) * 3600, 1)
    if s >= 60:
        s = 59.9
    return d, m, s


@settings(max_examples=200, deadline=None)
@given(_LAT, _LON, _NOISE, _NOISE)
def test_dms_round_trips_inside_noise(lat, lon, before, after):
    _off_null_island(lat, lon, 4)
    (ld, lm, ls), (od, om, os_) = _to_dms(lat), _to_dms(lon)
    ns, ew = ("N" if lat >= 0 else "S"), ("E" if lon >= 0 else "W")
    formatted = f"{ld}°{lm}'{ls}\"{ns} {od}°{om}'{os_}\"{ew}"
    got = parse_answer(f"{before}\nAnswer: {formatted}\n{after}")
    assert got.status is ParseStatus.OK, (formatted, got)
    assert abs(got.lat - lat) <= 0.1 / 3600 + TOL and abs(got.lon - lon) <= 0.1 / 3600 + TOL, (formatted, got)


@settings(max_examples=100, deadline=None)
@given(_LAT, _LON, st.text(max_size=300))
def test_reasoning_never_leaks_into_the_answer(lat, lon, reasoning):
    _off_null_island(lat, lon, 5)
    reasoning = reasoning.replace("<", " ")
    text = f'<think>{reasoning} 12.5, 45.25</think><answer>{{"Latitude": {lat:.5f}, "Longitude": {lon:.5f}}}</answer>'
    got = parse_answer(text)
    assert got.status is ParseStatus.OK
    assert (got.lat, got.lon) == (float(f"{lat:.5f}"), float(f"{lon:.5f}"))


# --- adversarial inputs: 1 MB each, linear time

_ADVERSARIAL = {
    "digits": "1" * 1_000_000,
    "decimal_pairs": "1.5, " * 200_000,
    "degree_signs": "1°" * 500_000,
    "dms_fragments": "1°1'1\"" * 170_000,
    "labels": "Latitude: " * 100_000,
    "labels_and_numbers": "Latitude: 1 " * 83_000,
    "think_tags": "<think>" * 140_000,
    "answer_tags": "<answer>" * 120_000,
    "alternating_blocks": "<think>a</think><answer>1</answer>" * 30_000,
    "minus_signs": "-1" * 500_000,
    "whitespace_then_number": " " * 1_000_000 + "1",
    "dots": "1." * 500_000,
    "commitments": "final answer 1.5, 2.5 " * 45_000,
    "alternatives": "or 1.5, 2.5 " * 80_000,
    "hemispheres": "N 1 " * 250_000,
    "null_keys": '"lat": null, ' * 75_000,
    "unicode": "纬度：北纬−" * 170_000,
    "quotes": "'\"" * 500_000,
    "caveats_after_marker": "Lat 1.5, Lon 2.5. Final answer: " + "I cannot be sure " * 60_000,
}


@pytest.mark.parametrize("name", sorted(_ADVERSARIAL))
def test_adversarial_input_gives_a_well_formed_answer(name):
    """No crash and a valid result on a megabyte of hostile text. How fast (linear in the
    text) is measured by benchmarks/parse_adversarial.py, not here: timings are noisy."""
    _assert_well_formed(parse_answer(_ADVERSARIAL[name]))
    _assert_well_formed(parse_answer(_ADVERSARIAL[name][:64_000]))


def test_huge_answer_keeps_the_answer_at_the_end():
    text = "The scene is a long road. " * 40_000 + "Final answer: 40.4168, -3.7038"
    got = parse_answer(text)
    assert (got.lat, got.lon) == (40.4168, -3.7038)


# --- regressions found by the correctness audit


def test_spanish_italian_german_axis_labels():
    # Regression: only English / Chinese labels were read, so these were no_answer.
    for text in (
        "Latitud: 40.4168, Longitud: -3.7038",
        "latitudine 40.4168, longitudine -3.7038",
        "Breitengrad: 40.4168, Längengrad: -3.7038",
    ):
        got = parse_answer(text)
        assert (got.lat, got.lon, got.status) == (40.4168, -3.7038, ParseStatus.OK), text


def test_i_dont_think_i_can_is_a_refusal():
    # Regression: "I don't think I can reliably determine ..." was no_answer, not refusal.
    text = "I don't think I can reliably determine where this photo was taken. It shows an office."
    assert parse_answer(text).status is ParseStatus.REFUSAL
    assert parse_answer("I don't think I can be sure, but my guess is 48.85, 2.35").ok


def test_dms_seconds_quote_escaped_inside_json_strings():
    # Regression: the JSON-escaped seconds mark (\") hid the DMS value: no_answer.
    text = '{"latitude": "48°51\'24\\"N", "longitude": "2°21\'08\\"E"}'
    got = parse_answer(text)
    assert got.ok
    assert (got.lat, got.lon) == pytest.approx((48 + 51 / 60 + 24 / 3600, 2 + 21 / 60 + 8 / 3600))


def test_x_comma_not_y_skips_the_rejected_place():
    # Regression: "Paris (..), not Lyon (..)" answered Lyon, the place the model rejected.
    got = parse_answer("The location is Paris (48.8566, 2.3522), not Lyon (45.7640, 4.8357).")
    assert (got.lat, got.lon) == (48.8566, 2.3522)
    # "not far" is no rejection
    got = parse_answer("It is Marseille (43.2965, 5.3698); in fact Lyon, not far from (45.7640, 4.8357).")
    assert (got.lat, got.lon) == (45.7640, 4.8357)


# --- flags: the parser says where its reading is doubtful (greval audit lists them)


@pytest.mark.parametrize(
    "text, status, flags",
    [
        ('{"latitude": "0", "longitude": "0", "city": "Unknown"}', "refusal", ("null_island",)),
        ("Final answer: 0.0000, 0.0000", "refusal", ("null_island",)),
        ("<think>Maybe Paris, 48.85, 2.35.</think><answer>I cannot tell.</answer>", "refusal", ("coords_in_refusal",)),
        ("<think>Maybe Paris, 48.85, 2.35.</think> Paris, France.", "no_answer", ("coords_in_refusal",)),
        (
            "48.85, 2.35 was my first thought. Final answer: I cannot tell where this is.",
            "refusal",
            ("coords_in_refusal",),
        ),
        ("Final answer: I cannot determine where this photo was taken.", "refusal", ()),
        ("(48.85, 2.35)", "ok", ("order_guess",)),
        ("(35.68, 139.69)", "ok", ()),  # only one reading is on the globe
        ("Latitude: 48.85, Longitude: 2.35", "ok", ()),
        ('{"lat": 48.85, "lon": 2.35} and also {"lat": 45.76, "lon": 4.83}', "ok", ("multiple_answers",)),
        ('{"lat": 48.85, "lon": 2.35}, i.e. {"lat": 48.8501, "lon": 2.3502}', "ok", ()),  # one point twice
        (
            "Paris (48.85, 2.35) or maybe Lyon (45.76, 4.83)",
            "ok",
            ("order_guess",),
        ),  # an alternative is not a second answer
        ("Latitude: 95.0, Longitude: 10.0", "out_of_range", ("out_of_range",)),
    ],
)
def test_flags(text, status, flags):
    got = parse_answer(text)
    assert (got.status.value, got.flags) == (status, flags), got


def test_a_caveat_never_erases_the_issue_examples():
    examples = {
        '{"lat": 19.076, "long": 72.8777, "city": "Mumbai"}\n\n**Important Note:** Without a defining landmark, '
        "pinpointing the exact spot is practically impossible; this is an educated guess.": (19.076, 72.8777),
        "My best guess is Lisbon: 38.72, -9.14. Please note that this is only an educated guess; the actual location "
        "could be different and it is not possible to be certain from the image alone.": (38.72, -9.14),
        "Latitude: 35.0116 / Longitude: 135.7681\n\nWhile I cannot be 100% certain of the exact coordinates, "
        "I am fairly confident this is Kyoto.": (35.0116, 135.7681),
    }
    for text, point in examples.items():
        got = parse_answer(text)
        assert got.ok and (got.lat, got.lon) == point, text
    for text in (
        "Final answer: I cannot determine where this photo was taken.",
        "Sorry, I can't help with identifying the location of this photo.",
        '{"lat": null, "long": null}',
    ):
        assert parse_answer(text).status is ParseStatus.REFUSAL, text


@pytest.mark.parametrize(
    "text, evidence",
    [
        (
            "Latitude: 35.0116 / Longitude: 135.7681\n\nWhile I cannot be 100% certain, Kyoto.",
            "Latitude: 35.0116 / Longitude: 135.7681",
        ),
        ("Paris (48.8566, 2.3522). Final answer: I cannot determine where this was taken.", "Final answer: I cannot"),
        ("Final coordinates: N/A — no clue. (Earlier I considered 41.90, 12.50.)", "Final coordinates: N/A —"),
        ("Sorry, I can't help with that.", "Sorry"),
        ('{"latitude": "0", "longitude": "0", "city": "Unknown"}', 'latitude": "0", "longitude": "0'),
        # offsets are the raw text's, across removed reasoning and inside <answer>
        ("<think>Maybe 1.5, 2.5.</think> Not sure. <think>or 3.5, 4.5</think> So: 48.85, 2.35", "48.85, 2.35"),
        ("<think>x</think><answer>  (-33.85, 151.21) </answer>", "-33.85, 151.21"),
        ("Reasoning. " * 8000 + "Final answer: 48.85, 2.35", "48.85, 2.35"),  # a region cut to 64 KB
    ],
)
def test_span_is_the_decision_in_the_raw_text(text, evidence):
    got = parse_answer(text)
    assert got.span is not None and text[got.span[0] : got.span[1]] == evidence, got


def test_no_span_without_a_decision():
    assert parse_answer("A nice beach.").span is None and parse_answer("").span is None
