"""Reading the training data of the three GRE stages into rows TRL takes.

Data files are JSON lists or JSONL; image paths are relative to the data file's folder.
The record format of each stage is in greval/train.py's docstring. A bad row is skipped
with a warning that names the file, row and problem (logged as `greval.train`, the
command's logger); a file with no usable row raises TrainDataError.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greval.errors import GrevalError

log = logging.getLogger("greval.train")

JUDGE_PROMPT = (
    "Here is a photo and a model's reasoning about where it was taken, with its answer.\n\n"
    "Reasoning:\n{predicted_cot}\n\nAnswer:\n{predicted_answer}\n\n"
    "Are the reasoning and the answer correct for this photo? Think step by step inside "
    "<think> </think>, then answer True or False inside <answer> </answer>."
)

_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
_IMAGE_PLACEHOLDER = "<image>"


class TrainError(GrevalError):
    """A user-facing problem with a training run (bad data, output folder, options)."""


class TrainDataError(TrainError):
    """A data file that cannot be used at all (unreadable, or no usable rows)."""


class _BadRow(Exception):
    pass


# --------------------------------------------------------------------------- reading


@dataclass
class TrainData:
    """Rows ready for TRL (image paths, decoded later) and what was skipped."""

    path: Path
    rows: list[dict[str, Any]]
    problems: list[str] = field(default_factory=list)
    sha256: str = ""

    @property
    def n_skipped(self) -> int:
        return len(self.problems)


def read_records(path: str | Path) -> tuple[list[Any], str]:
    """The records of a JSON list or JSONL file, and the file's sha256."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TrainDataError(f"cannot read training data {path}: {exc}") from exc
    digest = hashlib.sha256(raw).hexdigest()
    text = raw.decode("utf-8-sig", errors="replace")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            records = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise TrainDataError(f"{path}: not valid JSON ({exc})") from exc
        return list(records), digest
    records: list[Any] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            # Keep the row's place so the warning names the line; the row is skipped later.
            records.append(_BadRow(f"line {lineno} is not valid JSON ({exc.msg})"))
    if not records:
        raise TrainDataError(f"{path}: no records (expected a JSON list or JSON lines)")
    return records, digest


def _row_name(path: Path, index: int, record: Any) -> str:
    rid = record.get("sample_id", record.get("id")) if isinstance(record, dict) else None
    return f"{path.name} row {index}" + (f" (id {rid!r})" if rid is not None else "")


def _image(record: dict[str, Any], base: Path) -> str:
    value = record.get("image", record.get("image_path"))
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str) or not value.strip():
        raise _BadRow("no 'image' path")
    image = Path(value).expanduser()
    image = image if image.is_absolute() else base / image
    if not image.is_file():
        raise _BadRow(f"image not found: {image}")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(image):  # reads the header only: cheap for 20k rows
            pass
    except (OSError, UnidentifiedImageError) as exc:
        raise _BadRow(f"image {image} is not readable ({type(exc).__name__})") from None
    return str(image)


def _coordinate(record: dict[str, Any], key: str, limit: float) -> float:
    value = record.get(key)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _BadRow(f"{key} is {value!r}, not a number") from None
    if isinstance(value, bool) or not math.isfinite(number) or abs(number) > limit:
        raise _BadRow(f"{key} {value!r} is out of range ±{limit:g}")
    return number


def _user_content(text: str, *, with_image: bool) -> list[dict[str, Any]]:
    """Typed content parts: the image where `<image>` stood (first when absent), then text."""
    if not with_image:
        return [{"type": "text", "text": text}]
    count = text.count(_IMAGE_PLACEHOLDER)
    if count > 1:
        raise _BadRow(f"{count} <image> placeholders for one image")
    before, _, after = text.partition(_IMAGE_PLACEHOLDER) if count else ("", "", text)
    parts: list[dict[str, Any]] = []
    if before.strip():
        parts.append({"type": "text", "text": before.strip()})
    parts.append({"type": "image"})
    if after.strip():
        parts.append({"type": "text", "text": after.strip()})
    return parts


def _sft_row(record: dict[str, Any], base: Path) -> dict[str, Any]:
    image = _image(record, base)
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise _BadRow("no 'conversations' list")
    messages: list[dict[str, Any]] = []
    image_placed = False
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            raise _BadRow(f"conversation turn {i} has no text 'value'")
        role = _ROLES.get(str(turn.get("from", "")).lower())
        if role is None:
            raise _BadRow(f"conversation turn {i}: unknown speaker {turn.get('from')!r} (human, gpt or system)")
        if role == "user" and not image_placed:
            content = _user_content(turn["value"], with_image=True)
            image_placed = True
        elif _IMAGE_PLACEHOLDER in turn["value"]:
            raise _BadRow(f"conversation turn {i}: <image> outside the first human turn")
        else:
            content = [{"type": "text", "text": turn["value"]}]
        messages.append({"role": role, "content": content})
    if messages[-1]["role"] != "assistant":
        raise _BadRow("the conversation does not end with a gpt turn (nothing to learn)")
    if not image_placed:
        raise _BadRow("no human turn to hold the image")
    return {"messages": messages, "images": [image]}


def _judge_row(record: dict[str, Any], base: Path) -> dict[str, Any]:
    from greval.reward import as_label

    image = _image(record, base)
    if "label" not in record:
        raise _BadRow("no 'label' (true when the given chain and answer are correct)")
    try:
        label = as_label(record["label"])
    except ValueError as exc:
        raise _BadRow(str(exc)) from None
    instructions = record.get("instructions")
    if isinstance(instructions, str) and instructions.strip():
        text = instructions
    else:
        cot, answer = record.get("predicted_cot"), record.get("predicted_answer")
        if not isinstance(cot, str) or not isinstance(answer, str | int | float | dict | list):
            raise _BadRow("needs 'predicted_cot' and 'predicted_answer' (or a full 'instructions' prompt)")
        answer_text = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
        text = JUDGE_PROMPT.format(predicted_cot=cot.strip(), predicted_answer=answer_text.strip())
    prompt = [{"role": "user", "content": _user_content(text, with_image=True)}]
    return {"prompt": prompt, "image": image, "label": label}


def _geo_row(record: dict[str, Any], base: Path) -> dict[str, Any]:
    image = _image(record, base)
    lat = _coordinate(record, "gt_lat", 90.0)
    lon = _coordinate(record, "gt_lon", 180.0)
    instructions = record.get("instructions")
    if instructions is None:
        from greval.prompts import load_template

        instructions = load_template("gre").template
    if not isinstance(instructions, str) or not instructions.strip():
        raise _BadRow("'instructions' is empty or not text")
    prompt = [{"role": "user", "content": _user_content(instructions, with_image=True)}]
    return {"prompt": prompt, "image": image, "gt_lat": lat, "gt_lon": lon}


_ROW_BUILDERS: dict[str, Callable[[dict[str, Any], Path], dict[str, Any]]] = {
    "sft": _sft_row,
    "judge": _judge_row,
    "geo": _geo_row,
}


def read_train_data(path: str | Path, stage: str) -> TrainData:
    """Rows of one stage ("sft", "judge" or "geo") from a JSON / JSONL file; bad rows are
    skipped with a warning naming them. Raises TrainDataError when none is usable."""
    build = _ROW_BUILDERS[stage]
    path = Path(path).expanduser()
    records, digest = read_records(path)
    base = path.parent
    data = TrainData(path=path, rows=[], sha256=digest)
    for index, record in enumerate(records):
        try:
            if isinstance(record, _BadRow):
                raise record
            if not isinstance(record, dict):
                raise _BadRow(f"a {type(record).__name__}, not an object")
            data.rows.append(build(record, base))
        except _BadRow as exc:
            problem = f"{_row_name(path, index, record)}: {exc} — skipped"
            log.warning(problem)
            data.problems.append(problem)
    if not data.rows:
        shown = "; ".join(data.problems[:3])
        raise TrainDataError(f"{path}: none of {len(records)} rows is usable for {stage} ({shown})")
    return data


def read_sft(path: str | Path) -> TrainData:
    """Stage 1: rows {"messages": typed-part chat, "images": [path]}."""
    return read_train_data(path, "sft")


def read_judge(path: str | Path) -> TrainData:
    """Stage 2: rows {"prompt": chat with an image part, "image": path, "label": bool}."""
    return read_train_data(path, "judge")


def read_geo(path: str | Path) -> TrainData:
    """Stage 3: rows {"prompt": chat with an image part, "image": path, "gt_lat", "gt_lon"}."""
    return read_train_data(path, "geo")


def to_prompt_completion(row: dict[str, Any]) -> dict[str, Any]:
    """An SFT row split at its last assistant turn, so the loss covers the answer only."""
    messages = row["messages"]
    return {"prompt": messages[:-1], "completion": messages[-1:], "images": row["images"]}


def as_dataset(rows: list[dict[str, Any]]):
    """A `datasets.Dataset` whose image columns hold paths and decode to PIL on access."""
    import datasets

    ds = datasets.Dataset.from_list(rows)
    if "image" in ds.column_names:
        ds = ds.cast_column("image", datasets.Image())
    if "images" in ds.column_names:
        list_of = getattr(datasets, "List", datasets.Sequence)  # datasets < 4 calls it Sequence
        ds = ds.cast_column("images", list_of(datasets.Image()))
    return ds
