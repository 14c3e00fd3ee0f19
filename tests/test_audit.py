"""greval audit: flags on real-looking outputs, the flagged rate, and overrides that
re-score a run without touching its raw outputs. Real replay runs through the CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from greval.audit import simple_extract
from greval.cli import main
from greval.parse import parse_answer
from greval.records import read_predictions
from greval.testing import make_fixture_bench


def _greval(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _outputs(items):
    """Twelve answers in the styles real models write, one per sample, and what each must give."""
    # Sample 9 needs a ground truth whose two readings are both on the globe (|lon| <= 90).
    items = sorted(items, key=lambda it: abs(it["gt_lon"]) <= 90)
    gt = [(it["gt_lat"], it["gt_lon"]) for it in items]

    def anti(i):  # the antipode: ~20,000 km away, a miss at every granularity
        la, lo = gt[i]
        return -la, lo - 180 if lo > 0 else lo + 180

    ns = "N" if gt[2][0] >= 0 else "S"
    ew = "E" if gt[2][1] >= 0 else "W"
    texts = [
        f'{{"lat": {gt[0][0]}, "long": {gt[0][1]}, "city": "X"}}\n\n**Important Note:** Without a defining landmark, '
        "pinpointing the exact spot is practically impossible; this is an educated guess.",
        f"Latitude: {gt[1][0]} / Longitude: {gt[1][1]}\n\nWhile I cannot be 100% certain of the exact coordinates, "
        "I am fairly confident.",
        f"My best guess is {abs(gt[2][0])}° {ns}, {abs(gt[2][1])}° {ew}. Please note that this is only an educated "
        "guess; it is not possible to be certain from the image alone.",
        "Final answer: I cannot determine where this photo was taken.",
        "Sorry, I can't help with identifying the location of this photo.",
        '{"lat": null, "long": null}',
        '{"latitude": "0", "longitude": "0", "city": "Unknown"}',
        f"<think>It could be near {gt[7][0]}, {gt[7][1]}.</think><answer>I cannot tell.</answer>",
        f'{{"lat": {gt[8][0]}, "lon": {gt[8][1]}}}\nActually, on reflection: {{"lat": {anti(8)[0]}, "lon": {anti(8)[1]}}}',
        f"The photo was taken at ({gt[9][0]}, {gt[9][1]}).",
        "Latitude: 95.0, Longitude: 10.0",
        "It looks like a European city.",
    ]
    expected = [
        ("ok", []),
        ("ok", []),
        ("ok", []),
        ("refusal", []),
        ("refusal", []),
        ("refusal", []),
        ("refusal", ["null_island"]),
        ("refusal", ["coords_in_refusal"]),
        ("ok", ["multiple_answers", "disagrees_with_simple"]),
        ("ok", ["order_guess"]),
        ("out_of_range", ["out_of_range"]),
        ("no_answer", []),
    ]
    return items, texts, expected


@pytest.fixture()
def audited_run(tmp_path):
    bench = make_fixture_bench(tmp_path / "bench", n=12, seed=3, scenes=("urban",))
    items, texts, expected = _outputs(json.loads((bench / "GREval-Bench.json").read_text()))
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text(
        "".join(
            json.dumps({"sample_id": it["sample_id"], "output": t}) + "\n" for it, t in zip(items, texts, strict=True)
        )
    )
    run_dir = tmp_path / "run"
    args = (
        "run",
        "-q",
        "-a",
        "replay",
        "--predictions",
        outputs,
        "-m",
        "m",
        "--data",
        bench,
        "--tasks",
        "all",
        "-o",
        run_dir,
    )
    result = _greval(*args)
    assert result.exit_code == 0, result.output
    ids = [it["sample_id"] for it in items]
    return run_dir, ids, items, expected, args


def _metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())["tasks"]["all"]


def test_flags_and_exact_metrics_on_a_mixed_replay(audited_run):
    run_dir, ids, _, expected, _ = audited_run
    records = {r["sample_id"]: r for r in read_predictions(run_dir)}
    for sid, (status, flags) in zip(ids, expected, strict=True):
        assert (records[sid]["status"], records[sid]["flags"]) == (status, flags), (sid, records[sid]["output"])
    m = _metrics(run_dir)
    assert m["n"] == 12 and m["n_parsed"] == 5
    assert m["acc@1km"] == pytest.approx(4 / 12) and m["acc@2500km"] == pytest.approx(4 / 12)
    assert m["refusal_rate"] == pytest.approx(5 / 12) and m["parse_failure_rate"] == pytest.approx(2 / 12)
    assert m["flagged_rate"] == pytest.approx(5 / 12)
    assert m["flag_counts"] == {
        "coords_in_refusal": 1,
        "disagrees_with_simple": 1,
        "multiple_answers": 1,
        "null_island": 1,
        "order_guess": 1,
        "out_of_range": 1,
    }
    assert m["n_overridden"] == 0
    assert m["by_scene"]["urban"]["flagged_rate"] == pytest.approx(5 / 12)


def test_audit_lists_flagged_samples_with_their_context(audited_run):
    run_dir, ids, *_ = audited_run
    result = _greval("audit", run_dir)
    assert result.exit_code == 0, result.output
    listed = [line.split()[0].split("/")[1] for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert sorted(listed) == sorted(ids[6:11])
    assert "5 of 12 scored samples listed" in result.stderr
    assert "<answer>I [[cannot]] tell." in result.stdout  # the text around the refusal, the decision marked
    assert "The photo was taken at ([[" in result.stdout  # the chosen pair, marked

    result = _greval("audit", run_dir, "--flag", "null_island", "--format", "jsonl")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["sample_id"], r["status"], r["flags"]) for r in rows] == [(ids[6], "refusal", ["null_island"])]

    bad = _greval("audit", run_dir, "--flag", "nul_island")
    assert bad.exit_code == 2 and "unknown flag 'nul_island'" in bad.output and "null_island" in bad.output
    empty = run_dir.parent / "empty"
    empty.mkdir()
    bad = _greval("audit", empty)
    assert bad.exit_code == 2 and "no predictions.jsonl records" in bad.output
    bad = _greval("audit", run_dir.parent / "no-such-run")
    assert bad.exit_code == 2 and "does not exist" in bad.output
    bad = _greval("audit", run_dir, "--task", "al")
    assert bad.exit_code == 2 and "no such task; its tasks: all" in bad.output


def test_an_override_rescores_keeps_the_raw_output_and_survives_a_resume(audited_run):
    run_dir, ids, items, _, run_args = audited_run
    raw_before = (run_dir / "predictions.jsonl").read_text()
    truth = items[8]
    result = _greval("audit", run_dir, "--override", f"{ids[8]}={truth['gt_lat']},{truth['gt_lon']}")
    assert result.exit_code == 0, result.output
    assert (run_dir / "predictions.jsonl").read_text() == raw_before  # the model's output is untouched
    m = _metrics(run_dir)
    assert m["acc@1km"] == pytest.approx(5 / 12) and m["n_overridden"] == 1
    info = json.loads((run_dir / "run.json").read_text())
    assert [o["sample_id"] for o in info["overrides"]] == [ids[8]]
    record = {r["sample_id"]: r for r in read_predictions(run_dir)}[ids[8]]
    assert record["override"]["lat"] == pytest.approx(-truth["gt_lat"]) and record["distance_km"] == pytest.approx(0)

    assert _greval(*run_args).exit_code == 0  # a resume re-scores the folder: the override holds
    assert _metrics(run_dir)["n_overridden"] == 1 and _metrics(run_dir)["acc@1km"] == pytest.approx(5 / 12)
    assert "overrides" in json.loads((run_dir / "run.json").read_text())

    assert _greval("audit", run_dir, "--override", f"{ids[0]}=refusal").exit_code == 0
    assert _metrics(run_dir)["refusal_rate"] == pytest.approx(6 / 12)
    assert _greval("audit", run_dir, "--override", f"{ids[0]}=parser").exit_code == 0
    assert _metrics(run_dir)["refusal_rate"] == pytest.approx(5 / 12)

    bad = _greval("audit", run_dir, "--override", "no-such-id=1,2")
    assert bad.exit_code == 2 and "no sample 'no-such-id'" in bad.output
    bad = _greval("audit", run_dir, "--override", f"{ids[1]}=91,0")
    assert bad.exit_code == 2 and "off the globe" in bad.output


# A corpus on which the deliberately simple extractor and the parser disagree: each case is
# one where the parser's rules (commitment markers, alternatives, named beats unnamed,
# reasoning excluded) pick another point than "the first pair in the answer".
DISAGREE = [
    ("I first thought of Rome (41.9, 12.5). Final answer: 48.8566, 2.3522", (48.8566, 2.3522)),
    (
        "Latitude 41.9, longitude 12.5 would be Rome, but the signs are Portuguese. My answer: 38.72, -9.14",
        (38.72, -9.14),
    ),
    (
        '{"lat": 35.0, "lon": 135.0} was a first draft.\n\nFinal coordinates: 35.0116° N, 135.7681° E',
        (35.0116, 135.7681),
    ),
    ("Candidates: 45.76, 4.83 and then 43.3, 5.37. I'll go with 43.2965, 5.3698", (43.2965, 5.3698)),
]


@pytest.mark.parametrize("text, point", DISAGREE)
def test_the_simple_extractor_disagrees_and_the_record_says_so(text, point, tmp_path):
    parsed = parse_answer(text)
    assert (parsed.lat, parsed.lon) == point
    assert simple_extract(text) != point
    from greval.audit import extraction_flags

    assert "disagrees_with_simple" in extraction_flags(text, parsed)


def test_an_id_shared_by_two_tasks_needs_the_task_qualifier(tmp_path):
    """Two tasks whose samples share an id but not a photo: an unqualified override is
    refused, TASK:ID overrides that task's record only."""
    from greval.audit import AuditError, apply_overrides, check_request

    def record(task, gt):
        return {"task": task, "sample_id": "s1", "status": "ok", "lat": 1.0, "lon": 2.0, "gt_lat": gt, "gt_lon": 0.0}

    records = [record("t1", 10.0), record("t2", 20.0)]
    with pytest.raises(AuditError, match="names different samples in t1, t2; write TASK:ID"):
        check_request(tmp_path, records, None, ["s1=refusal"])
    wanted = check_request(tmp_path, records, None, ["t2:s1=refusal"])
    apply_overrides(records, wanted)
    assert [(r["task"], r["status"]) for r in records] == [("t1", "ok"), ("t2", "refusal")]
    assert records[1]["override"] == {"status": "ok", "lat": 1.0, "lon": 2.0} and "override" not in records[0]
    with pytest.raises(AuditError, match="no sample 's1' in task 't3'"):
        check_request(tmp_path, records, None, ["t3:s1=1,2"])
