"""An unreadable image is a data problem, not a request error (issue 8 §4): the sample is
named with its file, left out of n, reported as skipped, nothing is sent for it, the run
exits 0, and the next run looks at it again. A real API run against the local fake server."""

from __future__ import annotations

import json
import shutil

from _fake_api import FakeAPI
from click.testing import CliRunner

from greval.cli import main
from greval.records import read_predictions
from greval.testing import make_fixture_bench


def test_a_corrupt_image_is_skipped_named_never_sent_and_asked_once_fixed(tmp_path, monkeypatch):
    monkeypatch.setenv("GREVAL_CACHE_DIR", str(tmp_path / "cache"))
    bench = make_fixture_bench(tmp_path / "bench", n=6, seed=0)
    rows = json.loads((bench / "GREval-Bench.json").read_text())
    bad = bench / rows[2]["image_path"]
    good_copy = tmp_path / "good.jpg"
    shutil.copyfile(bad, good_copy)
    bad.write_bytes(b"\xff\xd8 this is not a JPEG any more")
    missing = bench / rows[4]["image_path"]
    missing.unlink()
    out = tmp_path / "run"
    with FakeAPI() as server:
        args = ["run", "--adapter", "openai", "--model", "gpt-4o", "--base-url", server.openai_url]
        args += ["--data", str(bench), "--tasks", "all", "--output", str(out), "--quiet"]
        first = CliRunner().invoke(main, args)
        assert first.exit_code == 0, first.output  # every valid sample answered: done
        assert server.count == 4  # nothing was sent for the two broken samples
        assert f"sample {rows[2]['sample_id']}: image {bad} cannot be read" in first.output
        assert f"sample {rows[4]['sample_id']}: image {missing} cannot be read: no such file" in first.output
        assert "BytesIO" not in first.output
        metrics = json.loads((out / "metrics.json").read_text())["tasks"]["all"]
        assert metrics["n"] == 4 and metrics["n_errors"] == 0
        info = json.loads((out / "run.json").read_text())
        assert info["skipped"]["image cannot be read"] == 2
        assert str(bad) in (out / "problems.txt").read_text()
        assert {r["sample_id"] for r in read_predictions(out)} == {r["sample_id"] for r in rows} - {
            rows[2]["sample_id"],
            rows[4]["sample_id"],
        }

        again = CliRunner().invoke(main, args)  # still broken: looked at, nothing sent
        assert again.exit_code == 0 and server.count == 4
        assert rows[2]["sample_id"] in again.output

        shutil.copyfile(good_copy, bad)  # fixed: now it is asked
        fixed = CliRunner().invoke(main, args)
        assert fixed.exit_code == 0, fixed.output
        assert server.count == 5
        assert json.loads((out / "metrics.json").read_text())["tasks"]["all"]["n"] == 5
        assert json.loads((out / "run.json").read_text())["skipped"] == {"image cannot be read": 1}
