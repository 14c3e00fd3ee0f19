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
