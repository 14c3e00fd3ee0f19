"""Fail fast, clearly, on a server that is not there (issue 10 §3): a closed port, a wrong
path, a refused key stop the run within seconds, name the URL and what to check, exit
non-zero, lose nothing, and the same command resumes once the server is right. Transient
faults (429, 5xx) keep being retried. Real SDKs against a real local HTTP server."""

from __future__ import annotations

import json
import socket
import time

from _fake_api import FakeAPI
from click.testing import CliRunner

from greval.cli import main
from greval.records import read_predictions
from greval.testing import make_fixture_bench


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(bench, out, base_url, *extra):
    args = ["run", "-q", "--adapter", "openai", "--model", "gpt-4o", "--base-url", base_url]
    args += ["--data", str(bench), "--tasks", "all", "--output", str(out), "--concurrency", "4", *extra]
    return CliRunner().invoke(main, args)


def test_a_closed_port_stops_within_seconds_names_the_url_and_resumes_later(tmp_path, monkeypatch):
    monkeypatch.setenv("GREVAL_CACHE_DIR", str(tmp_path / "cache"))
    bench = make_fixture_bench(tmp_path / "bench", n=8, seed=0)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1"
    out = tmp_path / "run"
    started = time.monotonic()
    result = _run(bench, out, url)
    assert time.monotonic() - started < 15  # an upper bound: it takes well under a second here
    assert result.exit_code == 2, result.output
    assert url in result.output and "connection" in result.output.lower() and "Traceback" not in result.output
    assert "OPENAI_API_KEY" in result.output and "model name 'gpt-4o'" in result.output
    assert [r for r in read_predictions(out) if r["status"] != "error"] == []

    with FakeAPI() as server:
        resumed = _run(bench, out, server.openai_url)
        assert resumed.exit_code == 0, resumed.output
        assert server.count == 8
    assert json.loads((out / "metrics.json").read_text())["tasks"]["all"]["n"] == 8


def test_a_wrong_path_is_a_404_that_stops_with_the_v1_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("GREVAL_CACHE_DIR", str(tmp_path / "cache"))
    bench = make_fixture_bench(tmp_path / "bench", n=6, seed=0)
    with FakeAPI() as server:
        root = server.openai_url.removesuffix("/v1")  # the usual slip: no /v1
        result = _run(bench, tmp_path / "run", root)
        assert result.exit_code == 2, result.output
        assert "404" in result.output and f"{root}/v1" in result.output
        assert server.count <= 4  # the first wave at most, never the whole run


def test_a_refused_key_stops_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("GREVAL_CACHE_DIR", str(tmp_path / "cache"))
    bench = make_fixture_bench(tmp_path / "bench", n=6, seed=0)
    with FakeAPI() as server:
        server.script_next(*["401"] * 6)
        result = _run(bench, tmp_path / "run", server.openai_url, "--concurrency", "1")
        assert result.exit_code == 2, result.output
        assert "401" in result.output and "OPENAI_API_KEY" in result.output
        assert server.count == 1


def test_transient_faults_are_still_retried(tmp_path, monkeypatch):
    monkeypatch.setenv("GREVAL_CACHE_DIR", str(tmp_path / "cache"))
    bench = make_fixture_bench(tmp_path / "bench", n=4, seed=0)
    with FakeAPI() as server:
        server.script_next("503", "500")
        result = _run(bench, tmp_path / "run", server.openai_url, "--concurrency", "1", "--option", "backoff_base=0.01")
        assert result.exit_code == 0, result.output
        assert server.count == 6  # two transient faults, retried, then every sample answered


def test_a_reset_on_the_first_request_is_transient_not_fatal(tmp_path, monkeypatch):
    monkeypatch.setenv("GREVAL_CACHE_DIR", str(tmp_path / "cache"))
    bench = make_fixture_bench(tmp_path / "bench", n=3, seed=0)
    with FakeAPI() as server:
        server.script_next("reset")
        result = _run(bench, tmp_path / "run", server.openai_url, "--concurrency", "1", "--option", "backoff_base=0.01")
        assert result.exit_code == 0, result.output
        assert server.count == 4
