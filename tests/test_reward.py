"""The GRE training rewards: the formula, the parser they share with evaluation, and the
three bugs of the released reward code (lat/lon swap, quoted keys + "first two numbers"
fallback, blank τ), each with a test that fails on the buggy behaviour."""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import pytest

from greval.reward import (
    TAU_SCHEDULE,
    as_label,
    completion_text,
    format_reward,
    format_reward_trl,
    geo_reward,
    judge_reward,
    judge_reward_trl,
    make_geo_reward,
    parse_judgement,
    parse_tau,
    tau_at_step,
    tau_for_stage,
)

R_KM = 6371.0088  # the sphere greval's haversine distances use
PAPER_ANSWER = (
    '<think>Gothic cathedral, Italian signs.</think><answer>{"Latitude": "45.465 °", "Longitude": "9.191 °"}</answer>'
)


def expected(d_km: float, tau: float) -> float:
    return 2.0 / (1.0 + math.exp(d_km / tau))


def meridian_km(dlat_deg: float) -> float:
    """Great-circle distance between two points on one meridian: R·Δφ, no haversine."""
    return R_KM * math.radians(dlat_deg)


# ------------------------------------------------------------------ released bugs


def test_paper_format_latitude_first_scores_one():
    # The released code unpacked (lon, lat): this answer scored ~0 against its own truth.
    assert geo_reward([PAPER_ANSWER], [45.465], [9.191], tau_km=750) == [1.0]
    # What the swap would have produced: the truth read as (9.191, 45.465) is ~4,000 km off.
    swapped = geo_reward([PAPER_ANSWER], [9.191], [45.465], tau_km=750)[0]
    assert swapped < 0.01


@pytest.mark.parametrize(
    "answer",
    [
        '<answer>{"Latitude": 45.465, "Longitude": 9.191}</answer>',
        '<answer>{"latitude": "45.465", "longitude": "9.191"}</answer>',
        "<answer>{'lat': 45.465, 'lon': 9.191}</answer>",
        '<answer>{"Longitude": "9.191 °", "Latitude": "45.465 °"}</answer>',  # keys name the axes: order irrelevant
        '<answer>{"location": {"Latitude": "45.465° N", "Longitude": "9.191° E"}}</answer>',
    ],
)
def test_quoted_keys_are_read(answer):
    assert geo_reward([answer], [45.465], [9.191], tau_km=25) == [1.0]


def test_other_numbers_before_the_answer_are_not_the_answer():
    # "The first two numbers" would be (1998, 12.5) or (12.5, 30): never Tokyo.
    text = (
        "<think>Built around 1998; the sign says 12.5 km to exit 30, speed limit 40. "
        "Kanji on shop signs, left-hand traffic.</think>"
        "<answer>Latitude: 35.6762, Longitude: 139.6503</answer>"
    )
    assert geo_reward([text], [35.6762], [139.6503], tau_km=25) == [1.0]
    untagged = "The bus is number 12, 30 people on it, 1998 model. Final answer: 35.6762, 139.6503"
    assert geo_reward([untagged], [35.6762], [139.6503], tau_km=25) == [1.0]


def test_tau_is_required_and_must_be_positive():
    with pytest.raises(TypeError):
        geo_reward([PAPER_ANSWER], [45.465], [9.191])  # type: ignore[call-arg]
    for bad in (0, -5, float("nan"), float("inf"), "", "planet"):
        with pytest.raises(ValueError):
            geo_reward([PAPER_ANSWER], [45.465], [9.191], tau_km=bad)
    with pytest.raises(ValueError):
        make_geo_reward(0)


# ------------------------------------------------------------------ the formula


@pytest.mark.parametrize("tau", [25.0, 200.0, 750.0])
@pytest.mark.parametrize("dlat", [0.1, 1.0, 5.0, 30.0])
def test_values_at_known_distances_match_the_formula(tau, dlat):
    answer = f'<answer>{{"Latitude": {10.0 + dlat}, "Longitude": 20.0}}</answer>'
    got = geo_reward([answer], [10.0], [20.0], tau_km=tau)[0]
    assert got == pytest.approx(expected(meridian_km(dlat), tau), rel=1e-9, abs=1e-300)


def test_reward_is_1_at_zero_0_54_at_tau_and_falls_with_distance():
    # Not at (0, 0): an answer of exactly (0, 0) is Null Island, a refusal (greval/parse.py).
    truth = (10.0, 20.0)
    dlats = [0.0, 0.5, 1.0, 2.0, 8.0, 40.0, 80.0]
    answers = [f"<answer>{{'lat': {10.0 + d}, 'lon': 20}}</answer>" for d in dlats]
    rewards = geo_reward(answers, [truth[0]] * len(dlats), [truth[1]] * len(dlats), tau_km=200)
    assert rewards[0] == 1.0
    assert all(a > b for a, b in zip(rewards[:-1], rewards[1:], strict=True))
    lat_at_tau = 10.0 + math.degrees(200 / R_KM)
    at_tau = geo_reward([f"<answer>{{'lat': {lat_at_tau!r}, 'lon': 20}}</answer>"], [10.0], [20.0], tau_km=200)
    assert at_tau[0] == pytest.approx(2 / (1 + math.e))


def test_antipode_gives_a_tiny_reward_without_overflow_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = geo_reward(["<answer>{'lat': -45, 'lon': -171}</answer>"], [45.0], [9.0], tau_km=1)
    assert 0.0 <= r[0] < 1e-300


def test_geodesic_earth_is_used_when_asked():
    answer = "<answer>{'lat': 1.0, 'lon': 0.0}</answer>"
    sphere = geo_reward([answer], [0.0], [0.0], tau_km=25)[0]
    ellipsoid = geo_reward([answer], [0.0], [0.0], tau_km=25, earth="geodesic")[0]
    # One degree of latitude at the equator is 110.574 km on WGS-84, 111.195 km on the sphere.
    assert ellipsoid == pytest.approx(expected(110.574, 25), rel=1e-3)
    assert sphere == pytest.approx(expected(meridian_km(1.0), 25), rel=1e-9)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "<think>Looks like Europe.</think><answer>Northern Italy</answer>",  # a place name, no coordinates
        "<answer>I cannot determine the location.</answer>",
        '<answer>{"Latitude": 145.0, "Longitude": 9.0}</answer>',  # out of range
        '<answer>{"latitude": null, "longitude": null}</answer>',
        "<think>Maybe 45.46, 9.19 ... still thinking",  # truncated reasoning never commits
    ],
)
def test_unparseable_answers_score_zero(text):
    assert geo_reward([text], [45.465], [9.191], tau_km=750) == [0.0]


def test_batch_mixes_parsed_and_failed_in_order():
    texts = [PAPER_ANSWER, "no idea", PAPER_ANSWER]
    got = geo_reward(texts, [45.465, 45.465, 0.0], [9.191, 9.191, 0.0], tau_km=750)
    assert got[0] == 1.0 and got[1] == 0.0 and 0 < got[2] < 0.01


def test_ground_truth_problems_are_errors():
    with pytest.raises(ValueError, match="row 1"):
        geo_reward([PAPER_ANSWER] * 2, [45.0, float("nan")], [9.0, 9.0], tau_km=750)
    with pytest.raises(ValueError, match="2 completions"):
        geo_reward([PAPER_ANSWER] * 2, [45.0], [9.0], tau_km=750)


# ------------------------------------------------------------------ completions as TRL sends them


def test_conversational_and_string_completions_are_the_same():
    conv = [{"role": "assistant", "content": PAPER_ANSWER}]
    parts = [{"role": "assistant", "content": [{"type": "text", "text": PAPER_ANSWER}]}]
    assert completion_text(conv) == completion_text(parts) == PAPER_ANSWER
    assert geo_reward([conv, parts, PAPER_ANSWER], [45.465] * 3, [9.191] * 3, tau_km=200) == [1.0, 1.0, 1.0]
    assert format_reward([conv, parts, PAPER_ANSWER]) == [1.0, 1.0, 1.0]


def test_trl_shaped_functions_take_columns_as_keywords_and_ignore_the_rest():
    geo = make_geo_reward(750)
    kwargs = {
        "prompts": [[{"role": "user", "content": "Where?"}]] * 2,
        "completions": [[{"role": "assistant", "content": PAPER_ANSWER}], [{"role": "assistant", "content": "?"}]],
        "completion_ids": [[1, 2], [3]],
        "gt_lat": [45.465, 45.465],
        "gt_lon": [9.191, 9.191],
        "image": [None, None],
        "trainer_state": SimpleNamespace(global_step=3),
        "log_extra": None,
        "log_metric": None,
    }
    assert geo(**kwargs) == [1.0, 0.0]
    assert format_reward_trl(**kwargs) == [1.0, 0.0]
    assert geo.__name__ == "geo_reward" and format_reward_trl.__name__ == "format_reward"
    assert judge_reward_trl.__name__ == "judge_reward"


def test_tau_schedule_follows_the_global_step():
    geo = make_geo_reward(parse_tau("country,region@10,city@20"))
    answer = "<answer>{'lat': 1.0, 'lon': 0.0}</answer>"  # 111 km off
    at = {
        step: geo([answer], [0.0], [0.0], trainer_state=SimpleNamespace(global_step=step))[0] for step in (0, 9, 10, 25)
    }
    assert at[0] == at[9] == pytest.approx(expected(meridian_km(1), 750))
    assert at[10] == pytest.approx(expected(meridian_km(1), 200))
    assert at[25] == pytest.approx(expected(meridian_km(1), 25))


def test_tau_stages_and_schedules():
    assert TAU_SCHEDULE == {"country": 750.0, "region": 200.0, "city": 25.0}
    assert tau_for_stage("Region") == 200.0 and tau_for_stage("120") == 120.0 and tau_for_stage("80km") == 80.0
    assert parse_tau("city") == [(0, 25.0)]
    assert parse_tau("750, 200@300, 25@800") == [(0, 750.0), (300, 200.0), (800, 25.0)]
    assert tau_at_step([(0, 750.0), (300, 200.0)], 299) == 750.0 and tau_at_step(100.0, 5) == 100.0
    for bad in ("country,region", "country@5", "country,region@9,city@3", "country,,city@2", "region@x", "street-ish"):
        with pytest.raises(ValueError):
            parse_tau(bad)


# ------------------------------------------------------------------ format reward


@pytest.mark.parametrize(
    ("text", "reward"),
    [
        (PAPER_ANSWER, 1.0),
        ("  <think>a</think>\n<answer>48.85, 2.35</answer>\n", 1.0),
        ("<think>a</think><answer>Paris</answer>", 0.0),  # tags right, answer is not a location
        ("<answer>48.85, 2.35</answer><think>a</think>", 0.0),  # order
        ("<answer>48.85, 2.35</answer>", 0.0),  # no reasoning
        ("<think>a</think><answer>48.85, 2.35</answer> P.S. nice photo", 0.0),  # text outside
        ("<think>a</think><answer>48.85, 2.35</answer><answer>1, 2</answer>", 0.0),  # two answers
        ("", 0.0),
    ],
)
def test_format_reward(text, reward):
    assert format_reward([text]) == [reward]


# ------------------------------------------------------------------ judge reward


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("<think>The chain says Spain but signs are French.</think><answer>False</answer>", False),
        ("<think>looks true to me at first</think><answer>FALSE</answer>", False),  # reasoning is not the verdict
        ("<answer>true</answer>", True),
        ("It is not true that... no wait. True", True),  # the last verdict word counts
        ("<think>True</think><answer>I am not sure</answer>", None),
        ("untrue and falsehood", None),  # whole words only
        (None, None),
    ],
)
def test_parse_judgement(text, verdict):
    assert parse_judgement(text) is verdict


def test_judge_reward_matches_labels_of_any_usual_form():
    completions = ["<answer>True</answer>", "<answer>False</answer>", "<answer>True</answer>", "no verdict"]
    assert judge_reward(completions, [True, "false", 0, "yes"]) == [1.0, 1.0, 0.0, 0.0]
    conv = [[{"role": "assistant", "content": "<think>x</think><answer>False</answer>"}]]
    assert judge_reward_trl(completions=conv, label=[False], trainer_state=None) == [1.0]
    for bad in ("maybe", 2, None, 0.5):
        with pytest.raises(ValueError):
            as_label(bad)
