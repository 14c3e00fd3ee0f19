"""docs/architecture.md's three extension points are complete: its files, written as they
stand in the document, run end to end."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from greval.cli import main

DOC = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"


def test_the_documented_task_format_and_adapter_run(tmp_path, monkeypatch):
    text = DOC.read_text(encoding="utf-8")
    files = re.findall(r"```\w+\n# file: (\S+)\n(.*?)```", text, re.S)
    assert sorted(name for name, _ in files) == ["lab.yaml", "lab_format.py", "my_model.py"]
    for name, body in files:
        (tmp_path / name).write_text(body, encoding="utf-8")
    (tmp_path / "places.csv").write_text("id,file,y,x\nnyc,nyc.png,40.7128,-74.0060\nsyd,syd.png,-33.87,151.21\n")
    for stem in ("nyc", "syd"):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{stem}.png")
    monkeypatch.chdir(tmp_path)
    (command,) = re.findall(r"```bash\n(greval run .*?)\n```", text, re.S)
    args = shlex.split(command)[1:]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    out = Path(args[args.index("--output") + 1])
    metrics = json.loads((out / "metrics.json").read_text())["tasks"]["lab"]
    assert metrics["n"] == 2 and metrics["acc@1km"] == 0.5  # the guess is New York: right for one photo
    refused = CliRunner().invoke(main, [*args[: args.index("-M")], "--output", str(out)])  # another guess
    assert refused.exit_code == 2 and "--guess" in refused.output


def test_the_documented_api_provider_runs_and_its_own_fault_reading_is_used(tmp_path, monkeypatch):
    """One file is a whole API provider: retries, breaker, stats and cache come from
    ApiAdapter; its `classify` is the retry policy's (a 400 retried here, never by openai)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _fake_api import FakeAPI

    from greval.testing import make_fixture_bench

    monkeypatch.setenv("GREVAL_CACHE_DIR", str(tmp_path / "cache"))
    (body,) = re.findall(
        r"```python\n# api provider file: tinychat.py\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S
    )
    (tmp_path / "tinychat.py").write_text(body, encoding="utf-8")
    bench = make_fixture_bench(tmp_path / "bench", n=3, seed=0)

    def run(adapter, out, server):
        args = ["run", "-q", "--adapter", adapter, "--model", "gpt-4o", "--base-url", server.openai_url]
        args += ["--data", str(bench), "--tasks", "all", "--output", str(out), "--concurrency", "1"]
        return CliRunner().invoke(main, [*args, "-M", "backoff_base=0.01"])

    with FakeAPI() as server:
        server.script_next("400")
        result = run(str(tmp_path / "tinychat.py"), tmp_path / "tiny", server)
        assert result.exit_code == 0, result.output
        assert server.count == 4  # the 400, retried, then the three samples
    summary = json.loads((tmp_path / "tiny" / "run.json").read_text())["adapter_summary"]
    assert summary["retries_by_cause"] == {"overloaded": 1} and summary["errors"] == 0
    with FakeAPI() as server:
        server.script_next("400")
        run("openai", tmp_path / "openai", server)  # the built-in reading: a 400 is final
        assert server.count == 3
    records = [json.loads(line) for line in (tmp_path / "openai" / "predictions.jsonl").read_text().splitlines()]
    assert sum(r["status"] == "error" for r in records) == 1
