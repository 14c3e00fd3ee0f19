"""Every fault an API throws, injected by a real server on 127.0.0.1 and met by the real
SDK clients: 429 with Retry-After, 500/503, a hang past the timeout, a reset connection,
malformed JSON, empty content, truncated output, non-retryable 4xx.

The invariants: every sample ends as exactly one answer or one recorded error; nothing is
duplicated; the server saw exactly samples + retried faults requests; images arrive intact.
"""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest
from _fake_api import FakeAPI, make_requests
from click.testing import CliRunner

from greval.adapter import get_adapter_class
from greval.cli import main
from greval.records import PREDICTIONS, RUN_INFO, iter_raw, read_predictions
from greval.testing import make_fixture_bench

PROTOCOLS = ["openai", "anthropic"]
MODELS = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-6"}
TIMEOUT_S = 0.5


@pytest.fixture(autouse=True)
def _no_real_keys(monkeypatch, tmp_path):
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GREVAL_CACHE_DIR", str(tmp_path / "cache"))


def adapter_for(protocol, server, **options):
    url = server.openai_url if protocol == "openai" else server.anthropic_url
    options = {"backoff_base": 0.01, "request_timeout": TIMEOUT_S, "max_attempts": 3, "concurrency": 8, **options}
    return get_adapter_class(protocol)(model=MODELS[protocol], base_url=url, **options)


# Transient faults, one per sample (s000 and s009 get none): every one is retried once.
TRANSIENT = {
    "s001": ["429"],
    "s002": ["500"],
    "s003": ["503"],
    "s004": ["hang"],
    "s005": ["malformed"],
    "s006": ["empty"],
    "s007": ["reset"],
    "s008": ["429", "500"],
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_transient_faults_are_retried_into_one_answer_each(protocol, tmp_path):
    requests = make_requests(tmp_path / "imgs", 10)
    with FakeAPI(retry_after="1", hang_s=5) as server:
        for key, faults in TRANSIENT.items():
            server.script(key, *faults)
        adapter = adapter_for(protocol, server)
        responses = asyncio.run(adapter.agenerate(requests))
        log = list(server.log)

    injected = sum(len(f) for f in TRANSIENT.values())
    assert len(log) == len(requests) + injected  # no request lost, none sent twice
    assert len(responses) == len(requests)
    for request, response in zip(requests, responses, strict=True):
        digest = hashlib.sha256(request.sample.image_bytes()).hexdigest()
        assert response.error is None, (request.sample.sample_id, response.error)
        assert response.text.endswith(f"image={digest[:12]}")  # its own image's answer, intact
        faults = TRANSIENT.get(request.sample.sample_id, [])
        assert response.attempts == len(faults) + 1
        sent = [e for e in log if request.sample.sample_id in e.prompt]
        assert len(sent) == len(faults) + 1
        assert all(e.images[0]["sha256"] == digest for e in sent)  # every attempt, intact

    # Retry-After honoured: the retry of s001 came at least 1 s after its 429.
    s001 = [e.t for e in log if "s001" in e.prompt]
    assert s001[1] - s001[0] >= 1.0
    # The hung attempt was abandoned at the timeout, then retried.
    s004 = [e.t for e in log if "s004" in e.prompt]
    assert s004[1] - s004[0] >= TIMEOUT_S
    summary = adapter.run_summary()
    assert summary["attempts"] == len(log)
    assert summary["retries"] == injected
    assert summary["retries_by_cause"] == {
        "rate_limit": 2,
        "server_error": 2,
        "overloaded": 1,
        "timeout": 1,
        "malformed": 1,
        "empty": 1,
        "connection": 1,
    }
    assert summary["errors"] == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_persistent_faults_end_as_one_recorded_outcome(protocol, tmp_path):
    requests = make_requests(tmp_path / "imgs", 6)
    with FakeAPI(retry_after="0") as server:
        server.script("s001", "500", "500", "500")  # every attempt fails
        server.script("s002", "empty", "empty", "empty")  # never any text
        server.script("s003", "truncated")  # an answer, cut by the token limit
        server.script("s004", "400")  # our request is wrong: retrying cannot help
        server.script("s005", "hang", "hang", "hang")
        adapter = adapter_for(protocol, server)
        responses = asyncio.run(adapter.agenerate(requests))
        counts = {f"s00{i}": len(server.requests_for(f"s00{i}")) for i in range(6)}

    assert counts == {"s000": 1, "s001": 3, "s002": 3, "s003": 1, "s004": 1, "s005": 3}
    ok, server_error, empty, truncated, bad, hang = responses
    assert ok.error is None and ok.text
    assert server_error.text is None and server_error.error.startswith("server_error: HTTP 500")
    assert "after 3 attempts" in server_error.error and server_error.attempts == 3
    assert empty.error is None and empty.text == "" and empty.attempts == 3  # recorded as empty
    assert empty.cost_usd > 0  # three billed empty answers: paid for, and counted
    assert truncated.error is None and truncated.truncated and truncated.attempts == 1
    assert bad.error.startswith("bad_request: HTTP 400") and bad.attempts == 1
    assert hang.error.startswith("timeout") and hang.attempts == 3
    summary = adapter.run_summary()
    assert summary["errors_by_cause"] == {"server_error": 1, "bad_request": 1, "timeout": 1}
    assert summary["truncated"] == 1 and summary["empty"] == 1


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_cli_run_records_each_sample_once_and_rerun_retries_only_errors(protocol, tmp_path):
    bench = make_fixture_bench(tmp_path / "bench", n=12, seed=1)
    rows = json.loads((bench / "GREval-Bench.json").read_text())
    shas = {row["sample_id"]: _sha(bench / row["image_path"]) for row in rows}
    ids = [row["sample_id"] for row in rows]
    out = tmp_path / "run"
    with FakeAPI(retry_after="0") as server:
        url = server.openai_url if protocol == "openai" else server.anthropic_url
        server.script(shas[ids[0]][:16], "500", "500")  # fails both attempts: an error
        server.script(shas[ids[1]][:16], "truncated")
        server.script(shas[ids[2]][:16], "empty", "empty")  # empty both attempts
        server.script(shas[ids[3]][:16], "429")  # retried into an answer
        args = [
            "run",
            "--adapter",
            protocol,
            "--model",
            MODELS[protocol],
            "--base-url",
            url,
            "--data",
            str(bench),
            "--tasks",
            "all",
            "--output",
            str(out),
            "--concurrency",
            "4",
            "--max-attempts",
            "2",
            "--request-timeout",
            "5",
            "--option",
            "backoff_base=0.01",
            "--quiet",
        ]
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 3, result.output  # one sample still errored: retry-able
        assert server.count == 12 + 1 + 1 + 1  # samples + the three retried faults
        records = list(iter_raw(out))
        assert sorted(r["sample_id"] for r in records) == sorted(ids)  # exactly one each
        status = {r["sample_id"]: r["status"] for r in records}
        assert status[ids[0]] == "error" and status[ids[1]] == "truncated" and status[ids[2]] == "empty"
        assert status[ids[3]] == "ok" and sum(s == "ok" for s in status.values()) == 9
        for entry in server.log:  # images intact
            assert entry.images[0]["sha256"] in shas.values()
        info = json.loads((out / RUN_INFO).read_text())
        summary = info["adapter_summary"]
        assert summary["errors_by_cause"] == {"server_error": 1} and summary["truncated"] == 1
        assert info["cost_usd"] == pytest.approx(summary["cost_usd"], abs=1e-6)

        # The same command again: only the errored sample is asked again; the rest is kept.
        before = server.count
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert server.count == before + 1
        final = {r["sample_id"]: r for r in read_predictions(out)}
        assert len(final) == 12 and final[ids[0]]["status"] == "ok"
        assert (out / PREDICTIONS).read_text().count("\n") == 13
