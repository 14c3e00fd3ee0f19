"""RunFolder: the one reader of a run folder's files, and the JSONL append that survives a
line torn by a crash (issue 9 §2)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from greval.cli import main
from greval.records import COT, SCHEMA_VERSION, RunFolder, append_jsonl, iter_jsonl
from greval.testing import make_fixture_bench


def test_append_after_a_torn_line_keeps_every_whole_record(tmp_path):
    path = tmp_path / "x.jsonl"
    append_jsonl(path, [{"task": "t", "sample_id": "a"}])
    with path.open("a") as f:
        f.write('{"task": "t", "sample_id": "b", "out')  # killed mid-write
    assert [r["sample_id"] for r in iter_jsonl(path)] == ["a"]  # the torn line is not read
    append_jsonl(path, [{"task": "t", "sample_id": "b"}, {"task": "t", "sample_id": "c"}])
    assert [r["sample_id"] for r in iter_jsonl(path)] == ["a", "b", "c"]


def test_run_folder_reads_what_a_run_wrote(tmp_path):
    bench = make_fixture_bench(tmp_path / "bench", n=6, seed=0)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "-q", "-a", "random", "--data", str(bench), "-o", str(out), "-m", "floor"])
    assert result.exit_code == 0, result.output
    folder = RunFolder(out)
    assert folder.info.schema_version == SCHEMA_VERSION and folder.info.model == "floor" and folder.label == "floor"
    assert folder.tasks == ["all"] and folder.metrics["tasks"]["all"]["n"] == 6
    assert len(folder.predictions()) == 6 and folder.cot() == []
    append_jsonl(out / COT, [{"task": "all", "sample_id": "fx-00000", "status": "ok"}] * 2)
    assert len(folder.cot()) == 1  # the last record per sample
    assert RunFolder(tmp_path / "nothing").info.schema_version == 1  # absent run.json: empty, version 1
    assert json.loads((out / "run.json").read_text())["schema_version"] == SCHEMA_VERSION
