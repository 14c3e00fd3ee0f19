"""`greval judge`: chain scores from scripted judge answers, through the real openai SDK
against a real HTTP server on 127.0.0.1 (FakeAPI), on a run folder made by `greval run`."""

from __future__ import annotations

import json

import pytest
from _fake_api import FakeAPI
from click.testing import CliRunner

from greval.cli import main
from greval.cot import COT_FILE, JudgeAnswerError, model_reasoning, parse_judgement
from greval.judge import judge_cli
from greval.testing import make_fixture_bench

JUDGE = "qwen3-judge"


def judgement(n_ref: int, n_model: int, matched: list, supported: list) -> str:
    return json.dumps(
        {
            "reference_steps": [f"ref step {i}" for i in range(1, n_ref + 1)],
            "model_steps": [f"model step {i}" for i in range(1, n_model + 1)],
            "matched_reference_steps": matched,
            "supported_model_steps": supported,
        }
    )


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GREVAL_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture()
def run_dir(tmp_path):
    return make_run(tmp_path, "all")


def make_run(tmp_path, tasks: str):
    """A replay run of 6 samples: 0-4 answered with a <think> chain naming the sample,
    sample 4 has no reference chain in the data, sample 5 has no answer (errored)."""
    bench = make_fixture_bench(tmp_path / "bench", n=6, seed=0)
    rows = json.loads((bench / "GREval-Bench.json").read_text())
    del rows[4]["gt_cot"]
    (bench / "GREval-Bench.json").write_text(json.dumps(rows))
    lines = [
        {
            "sample_id": row["sample_id"],
            "output": f"<think>chain-{i}: the signs and the trees.</think>"
            f'<answer>{{"Latitude": {row["gt_lat"]}, "Longitude": {row["gt_lon"]}}}</answer>',
        }
        for i, row in enumerate(rows[:5])
    ]
    replay = tmp_path / "outputs.jsonl"
    replay.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "run"
    args = ["run", "-q", "--adapter", "replay", "--predictions", replay, "--model", "m"]
    args += ["--tasks", tasks, "--data", bench, "--output", out]
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 3, result.output  # sample 5 errored
    return out, rows, [str(a) for a in args]


def judge(run, api, *extra):
    args = [str(run), "--judge-model", JUDGE, "--base-url", api.openai_url, "--max-attempts", "1", "-q", *extra]
    return CliRunner().invoke(judge_cli, args)


def cot_records(run):
    latest = {}
    for line in (run / COT_FILE).read_text().splitlines():
        rec = json.loads(line)
        latest[rec["sample_id"]] = rec
    return latest


def test_scores_failures_retries_resume_and_leaderboard(run_dir, tmp_path):
    run, rows, run_args = run_dir
    ids = [r["sample_id"] for r in rows]
    answers = {
        "chain-0": "<think>Two of four.</think>" + judgement(4, 2, [1, 2], [1, 2]),  # R .5, P 1, F1 2/3
        "chain-1": "```json\n" + judgement(3, 3, [1, 2, 3, 3], [1]) + "\n```",  # R 1, P 1/3, F1 .5
        "chain-2": "The chain looks fine to me.",  # not JSON: a failure
        "chain-3": judgement(1, 1, [1], [1]),  # R 1, P 1, F1 1 (after a 500)
    }

    def responder(entry):
        return next(text for key, text in answers.items() if f"{key}:" in entry.prompt)

    with FakeAPI(responder=responder) as api:
        api.script("chain-3:", "500")
        result = judge(run, api)
        assert result.exit_code == 3, result.output
        assert api.count == 4  # samples 0-3; 4 (no reference) and 5 (errored) are never sent
        sent = api.requests_for("chain-0:")[0]
        assert rows[0]["gt_cot"].strip() in sent.prompt and "<answer>" not in sent.prompt and not sent.images
        assert sent.body["messages"][0]["content"] == sent.prompt  # text only: plain string content

        records = cot_records(run)
        assert records[ids[2]]["status"] == "failed" and records[ids[2]]["error_cause"] == "unparseable"
        assert records[ids[2]]["raw"] == "The chain looks fine to me."
        assert records[ids[3]]["status"] == "failed" and records[ids[3]]["error_cause"] == "request"
        assert "500" in records[ids[3]]["error"]
        assert records[ids[4]]["status"] == "skipped" and "gt_cot" in records[ids[4]]["error"]
        assert records[ids[5]]["status"] == "skipped" and "errored" in records[ids[5]]["error"]
        assert records[ids[1]]["matched"] == 3 and records[ids[1]]["supported"] == 1
        assert records[ids[0]]["f1"] == pytest.approx(2 / 3)

        block = json.loads((run / "metrics.json").read_text())["tasks"]["all"]
        assert block["cot_n"] == 2 and block["cot_judge_failures"] == 2 and block["cot_skipped"] == 2
        assert block["cot_score"] == pytest.approx((2 / 3 + 1 / 2) / 2)
        assert block["cot_recall"] == pytest.approx(0.75)
        assert block["cot_precision"] == pytest.approx((1 + 1 / 3) / 2)
        lo, hi = block["ci"]["cot_score"]
        assert 0.5 <= lo <= block["cot_score"] <= hi <= 2 / 3
        assert "acc@1km" in block["ci"]  # the accuracy intervals are still there
        info = json.loads((run / "run.json").read_text())["cot_judge"]
        assert info["model"] == JUDGE and info["failures"] == 2 and len(info["template_hash"]) == 16

        # Re-run: only the two failures are sent; the bad answer is asked afresh (next seed).
        answers["chain-2"] = judgement(2, 4, [2], [])  # R .5, P 0, F1 0
        result = judge(run, api)
        assert result.exit_code == 0, result.output
        assert api.count == 6
        assert api.requests_for("chain-2:")[-1].body["seed"] == 1
        assert judge(run, api).exit_code == 0 and api.count == 6  # nothing left to judge

    metrics = json.loads((run / "metrics.json").read_text())
    block = metrics["tasks"]["all"]
    f1 = {ids[0]: 2 / 3, ids[1]: 0.5, ids[2]: 0.0, ids[3]: 1.0}
    assert block["cot_n"] == 4 and block["cot_judge_failures"] == 0
    assert block["cot_score"] == pytest.approx(sum(f1.values()) / 4)
    assert block["cot_recall"] == pytest.approx((0.5 + 1 + 0.5 + 1) / 4)
    assert block["cot_precision"] == pytest.approx((1 + 1 / 3 + 0 + 1) / 4)
    for scene, scene_block in block["by_scene"].items():
        mine = [f1[r["sample_id"]] for r in rows if r["scene"] == scene and r["sample_id"] in f1]
        assert scene_block["cot_n"] == len(mine)
        if mine:
            assert scene_block["cot_score"] == pytest.approx(sum(mine) / len(mine))

    # `greval run` on the same folder rescoring metrics.json keeps the chain scores.
    result = CliRunner().invoke(main, run_args)
    assert result.exit_code == 3, result.output
    resumed = json.loads((run / "metrics.json").read_text())
    for key in ("cot_score", "cot_recall", "cot_precision", "cot_n", "cot_judge_failures"):
        assert resumed["tasks"]["all"][key] == block[key]
    assert resumed["tasks"]["all"]["ci"]["cot_score"] == block["ci"]["cot_score"]
    assert json.loads((run / "run.json").read_text())["cot_judge"]["model"] == JUDGE

    from greval.leaderboard import build_site

    build_site([run], tmp_path / "site")
    board = json.loads((tmp_path / "site" / "leaderboard.json").read_text())
    assert board["tasks"]["all"][0]["metrics"]["cot_score"] == pytest.approx(sum(f1.values()) / 4)
    assert ">CoT<" in (tmp_path / "site" / "index.html").read_text()

    # `greval report` shows the chain score as a percentage column once a run is judged.
    report = CliRunner().invoke(main, ["report", str(run), "--format", "csv", "--no-plots"])
    header, row = report.output.splitlines()[:2]
    assert header.split(",")[-1] == "CoT"
    assert row.split(",")[-1] == f"{100 * sum(f1.values()) / 4:.2f}"


def test_second_judge_is_answered_from_the_cache(run_dir, tmp_path):
    run = run_dir[0]
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({JUDGE: {"input": 1.0, "output": 2.0}}))
    with FakeAPI(responder=lambda entry: judgement(2, 2, [1], [1, 2])) as api:
        assert judge(run, api, "--prices", prices).exit_code == 0
        assert api.count == 4
        first = json.loads((run / "metrics.json").read_text())["tasks"]["all"]
        paid = json.loads((run / "run.json").read_text())["cot_judge"]["cost_usd"]
        assert paid > 0
        (run / COT_FILE).unlink()  # lose the judgements: the cache still has every answer
        assert judge(run, api, "--prices", prices).exit_code == 0
        assert api.count == 4  # nothing paid twice
    again = json.loads((run / "metrics.json").read_text())["tasks"]["all"]
    assert again["cot_score"] == first["cot_score"] == pytest.approx(2 * 0.5 * 1 / 1.5)
    judged = [r for r in cot_records(run).values() if r["status"] == "ok"]
    assert len(judged) == 4 and all(r["cached"] and r["cost_usd"] == 0.0 for r in judged)
    assert json.loads((run / "run.json").read_text())["cot_judge"]["cost_usd"] == 0.0


def test_a_sample_in_two_tasks_is_judged_once(tmp_path):
    run, rows, _ = make_run(tmp_path, "all,urban")
    eligible = [r["sample_id"] for r in rows[:4]]
    urban = [sid for sid, r in zip(eligible, rows, strict=False) if r["scene"] == "urban"]
    assert urban  # the fixture has urban samples among the first four
    with FakeAPI(responder=lambda entry: judgement(2, 2, [1], [1, 2])) as api:
        assert judge(run, api).exit_code == 0
        assert api.count == len(eligible)
    metrics = json.loads((run / "metrics.json").read_text())["tasks"]
    assert metrics["all"]["cot_n"] == len(eligible) and metrics["urban"]["cot_n"] == len(urban)


def test_judge_answers_are_read_strictly():
    assert parse_judgement(judgement(2, 0, [], [])) == {
        "reference_steps": 2,
        "model_steps": 0,
        "matched": 0,
        "supported": 0,
    }
    for bad, cause in (
        (judgement(2, 2, [3], []), "invalid"),  # a reference step that does not exist
        (judgement(0, 2, [], []), "invalid"),  # no reference steps
        (judgement(2, 2, ["1"], []), "invalid"),
        ('{"reference_steps": ["a"]}', "invalid"),
        ("<think>still thinking", "unparseable"),
        ("[1, 2]", "unparseable"),
    ):
        with pytest.raises(JudgeAnswerError) as err:
            parse_judgement(bad)
        assert err.value.cause == cause, bad
    assert model_reasoning("<think> a </think><answer>x</answer>") == "a"
    assert model_reasoning("<answer>x</answer>", {"reasoning": "beside"}) == "beside"
    assert model_reasoning("<think>cut off by the lim") == "cut off by the lim"
    assert model_reasoning("just an answer") == "just an answer"
