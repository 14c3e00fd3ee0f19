"""`replay`: score raw outputs that already exist (published outputs, another harness's
logs, a model you ran elsewhere).

    greval run --adapter replay --predictions outputs.jsonl --model "GPT-4o (paper)" --tasks all

The file is JSONL (one `{"sample_id": ..., "output": "..."}` per line; lm-eval's
`--log_samples` files of `greval export lm-eval` tasks are read as they are) or CSV with
those two columns. An optional `task` field restricts a row to one task. A sample with
no row is recorded as an error ("no output in FILE"), not as a wrong answer.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greval.adapter import Adapter, AdapterError, option, register
from greval.types import Request, Response


def read_outputs(path: Path) -> dict[tuple[str | None, str], str]:
    """(task or None, sample_id) -> output. Malformed rows raise one clear message."""
    if not path.is_file():
        raise AdapterError(f"--predictions file not found: {path}")
    rows: list[tuple[int, Any]] = []
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = {"sample_id", "output"} - set(reader.fieldnames or [])
            if missing:
                raise AdapterError(f"{path}: CSV header lacks column(s) {sorted(missing)}; found {reader.fieldnames}")
            rows = [(i + 2, row) for i, row in enumerate(reader)]
    else:
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rows.append((lineno, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise AdapterError(
                        f'{path}:{lineno}: not valid JSON ({e.msg}); expected one {{"sample_id", "output"}} object per line'
                    ) from None
    outputs: dict[tuple[str | None, str], str] = {}
    filters: dict[tuple[str | None, str], Any] = {}
    for lineno, row in rows:
        row = _from_lmeval(row, f"{path}:{lineno}")
        if not isinstance(row, dict) or "sample_id" not in row or "output" not in row:
            raise AdapterError(f'{path}:{lineno}: each row needs "sample_id" and "output"')
        key = (row.get("task") or None, str(row["sample_id"]))
        if key in outputs:
            raise AdapterError(
                f"{path}:{lineno}: sample {key[1]!r} appears twice"
                + (f" for task {key[0]!r}" if key[0] else "")
                + _filters_hint(filters.get(key), row.get("lm_eval_filter"))
            )
        filters[key] = row.get("lm_eval_filter")
        output = row["output"]
        outputs[key] = "" if output is None else str(output)
    return outputs


def _from_lmeval(row: Any, where: str) -> Any:
    """A row of lm-eval's `--log_samples` file (samples_<task>_<date>.jsonl of a task written
    by `greval export lm-eval`) as {"sample_id", "output"}: the doc's sample_id and the first
    response after lm-eval's filters (`filtered_resps[0]`, the text lm-eval scored; `resps`
    holds it before the filters). Rows that are not lm-eval's pass through unchanged."""
    if not (isinstance(row, dict) and isinstance(row.get("doc"), dict) and "resps" in row):
        return row
    if "sample_id" not in row["doc"]:
        raise AdapterError(
            f"{where}: an lm-eval sample whose doc has no sample_id: replay reads tasks written by "
            "`greval export lm-eval` (their rows carry sample_id)"
        )
    first = _first(row.get("filtered_resps"))
    if first is None:
        first = _first(row["resps"])  # resps: one list of generations per request
    return {"sample_id": row["doc"]["sample_id"], "output": first, "lm_eval_filter": row.get("filter")}


def _first(value: Any) -> Any:
    """The first item of a list (nested lists: of the first one), else the value itself."""
    while isinstance(value, list):
        value = value[0] if value else None
    return value


def _filters_hint(first: Any, second: Any) -> str:
    if first is None or second is None or first == second:
        return ""
    return f" (lm-eval filters {first!r} and {second!r}: keep one filter's rows)"


@dataclass
class ReplayOptions:
    predictions: str | None = option(help="JSONL / CSV of sample_id, output (or lm-eval samples)")


@register("replay")
class ReplayAdapter(Adapter):
    Options = ReplayOptions
    kind = "offline"
    batch_size = 4096  # no model to wait for: large batches keep the loop's overhead low

    def __init__(self, model: str | None = None, predictions: str | None = None, **options: Any) -> None:
        super().__init__(model=model, **options)
        if not predictions:
            raise AdapterError("the replay adapter needs --predictions FILE (JSONL or CSV of sample_id, output)")
        self.path = Path(predictions)
        self.outputs = read_outputs(self.path)

    def generate(self, requests: list[Request]) -> list[Response]:
        responses = []
        for req in requests:
            sid = req.sample.sample_id
            text = self.outputs.get((req.task, sid), self.outputs.get((None, sid)))
            if text is None:
                responses.append(Response(error=f"no output for sample {sid!r} in {self.path}"))
            else:
                responses.append(Response(text=text, finish_reason="stop"))
        return responses

    async def agenerate(self, requests: list[Request]) -> list[Response]:
        return self.generate(requests)  # a dictionary lookup: no thread needed

    def info(self) -> dict[str, Any]:
        import hashlib

        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        return {
            **super().info(),
            "predictions": str(self.path),
            "predictions_sha256": digest,
            "rows": len(self.outputs),
        }
