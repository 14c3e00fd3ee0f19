"""SIGKILL an API run half way, run the same command again: the final predictions equal an
uninterrupted run's, and the server was asked only for what was missing (plus at most the
requests in flight at the kill)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from _fake_api import FakeAPI
from click.testing import CliRunner

from greval.cli import main
from greval.records import PREDICTIONS, iter_raw, read_predictions
from greval.testing import make_fixture_bench

N = 40
CONCURRENCY = 4
COMPARED = ("output", "lat", "lon", "status", "distance_km", "gt_lat", "gt_lon", "finish_reason")


def _args(url: str, bench, out) -> list[str]:
    return [
        "run",
        "--adapter",
        "openai",
        "--model",
        "gpt-4o",
        "--base-url",
        url,
        "--data",
        str(bench),
        "--tasks",
        "all",
        "--output",
        str(out),
        "--concurrency",
        str(CONCURRENCY),
        "--quiet",
    ]


def _env(cache) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env["GREVAL_CACHE_DIR"] = str(cache)
    return env


def test_sigkill_then_rerun_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    bench = make_fixture_bench(tmp_path / "bench", n=N, seed=2)
    with FakeAPI(latency=0.15) as server:
        # The uninterrupted reference, with its own cache so it really asks the server.
        monkeypatch.setenv("GREVAL_CACHE_DIR", str(tmp_path / "cache_ref"))
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
        result = CliRunner().invoke(main, _args(server.openai_url, bench, tmp_path / "ref"), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert server.count == N
        reference = {(r["task"], r["sample_id"]): r for r in read_predictions(tmp_path / "ref")}

        out = tmp_path / "run"
        command = [sys.executable, "-m", "greval", *_args(server.openai_url, bench, out)]
        env = _env(tmp_path / "cache")
        before = server.count
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        predictions = out / PREDICTIONS
        while time.monotonic() < deadline and child.poll() is None:
            if predictions.exists() and predictions.read_bytes().count(b"\n") >= N // 2:
                break
            time.sleep(0.01)
        assert child.poll() is None, "the run finished before it could be killed: " + child.stdout.read().decode()
        child.send_signal(signal.SIGKILL)
        child.wait()
        first_requests = server.count - before
        kept = {r["sample_id"] for r in iter_raw(out)}
        assert N // 2 <= len(kept) < N
        assert first_requests <= len(kept) + CONCURRENCY  # recorded + those in flight at the kill

        # The same command again (in this process: the same CLI, without a second start-up).
        monkeypatch.setenv("GREVAL_CACHE_DIR", str(tmp_path / "cache"))
        rerun = CliRunner().invoke(main, _args(server.openai_url, bench, out), catch_exceptions=False)
        assert rerun.exit_code == 0, rerun.output
        second_requests = server.count - before - first_requests

    # Only the missing samples were asked for again (some maybe answered from the cache,
    # if their answer arrived but was not yet recorded at the kill).
    assert second_requests <= N - len(kept)
    assert first_requests + second_requests <= N + CONCURRENCY
    lines = list(iter_raw(out))
    assert sorted(r["sample_id"] for r in lines) == sorted(r["sample_id"] for r in reference.values())  # once each
    final = {(r["task"], r["sample_id"]): r for r in read_predictions(out)}
    assert final.keys() == reference.keys() and len(final) == N
    for key, record in final.items():
        assert {f: record[f] for f in COMPARED} == {f: reference[key][f] for f in COMPARED}, key
