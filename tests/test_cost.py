"""Never a false zero: a cost greval cannot price is unknown on every surface (issue 8 §6)."""

from __future__ import annotations

import json

import pytest
from _fake_api import FakeAPI
from click.testing import CliRunner

from greval.cli import main
from greval.cost import cost_summary, describe, merged


def test_cost_summary_statuses():
    priced = [{"status": "ok", "cost_usd": 0.5}, {"status": "ok", "cost_usd": 0.25}]
    assert cost_summary(priced, "api") == {
        "cost_usd": 0.75,
        "cost_status": "known",
        "cost_usd_priced": 0.75,
        "cost_unpriced_responses": 0,
    }
    partial = cost_summary([*priced, {"status": "ok", "cost_usd": None}], "api")
    assert (partial["cost_usd"], partial["cost_status"], partial["cost_usd_priced"]) == (None, "partial", 0.75)
    unknown = cost_summary([{"status": "refusal", "cost_usd": None}], "api")
    assert (unknown["cost_usd"], unknown["cost_status"]) == (None, "unknown")
    # an errored call is not billed; a cache hit costs a known 0
    assert (
        cost_summary([{"status": "error", "cost_usd": None}, {"status": "ok", "cost_usd": 0.0}], "api")["cost_usd"]
        == 0.0
    )
    local = cost_summary([{"status": "ok", "cost_usd": None}], "open-weights")
    assert (local["cost_usd"], local["cost_status"]) == (None, "not_applicable")
    assert merged([cost_summary(priced, "api"), unknown])["cost_usd"] is None
    assert merged([cost_summary(priced, "api"), cost_summary(priced, "api")])["cost_usd"] == 1.5
    assert describe({"cost_status": "unknown", "cost_usd": None}).startswith("unknown")
    assert describe({"cost_status": "not_applicable", "cost_usd": None}) is None
    assert "$0" not in describe({"cost_status": "partial", "cost_usd": None, "cost_usd_priced": 0.75,
                                 "cost_unpriced_responses": 1})[:10]  # fmt: skip


@pytest.fixture()
def unpriced_run(tmp_path, monkeypatch):
    from greval.testing import make_fixture_bench

    monkeypatch.setenv("GREVAL_CACHE_DIR", str(tmp_path / "cache"))
    bench = make_fixture_bench(tmp_path / "bench", n=6, seed=0)
    out = tmp_path / "results" / "run"
    with FakeAPI() as server:
        args = ["run", "-q", "--adapter", "openai", "--model", "no-such-model-in-the-price-table"]
        args += ["--base-url", server.openai_url, "--data", str(bench), "--tasks", "all", "--output", str(out)]
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out, result


def test_an_unpriced_api_run_is_unknown_everywhere_never_zero(unpriced_run, tmp_path):
    out, result = unpriced_run
    info = json.loads((out / "run.json").read_text())
    assert info["cost_usd"] is None and info["cost_status"] == "unknown"
    assert info["cost_unpriced_responses"] == 6 and info["cost_usd_this_invocation"] is None
    assert "cost: unknown" in result.output and "$0.00" not in result.output

    site = tmp_path / "site"
    assert CliRunner().invoke(main, ["leaderboard", str(out), "--out", str(site)]).exit_code == 0
    board = json.loads((site / "leaderboard.json").read_text())
    (row,) = board["tasks"]["all"]
    assert row["metrics"]["cost_usd"] is None and row["cost_status"] == "unknown"
    html = (site / "index.html").read_text()
    assert ">unknown<" in html.replace("\n", "").replace(" ", "") and "$0.00" not in html
    page = (site / "runs").glob("*/index.html")
    assert all("$0.00" not in p.read_text() for p in page)


def test_a_local_run_has_no_bill_not_a_zero_one(tmp_path):
    from greval.testing import make_fixture_bench

    bench = make_fixture_bench(tmp_path / "bench", n=4, seed=0)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "-a", "random", "--data", str(bench), "--tasks", "all", "-o", str(out)])
    assert result.exit_code == 0, result.output
    info = json.loads((out / "run.json").read_text())
    assert (info["cost_usd"], info["cost_status"]) == (None, "not_applicable")
    assert "cost" not in result.output.split("Run folder")[0].lower().replace("cost_", "")
