"""`format: greval-bench`: GREval-Bench.json (a JSON list, or JSON lines) and its images;
without a local path, the Hub copy."""

from __future__ import annotations

import functools
from pathlib import Path

from greval.data.common import (
    GREVAL_BENCH_FILE,
    Collector,
    ImagePaths,
    LoadResult,
    hash_bytes,
    json_item_lines,
    local_path,
    parse_json,
    parse_jsonl,
    register_format,
)
from greval.problems import DataError


def _fetch_from_hub(repo_id: str, revision: str | None) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, repo_type="dataset", revision=revision))
    except Exception as exc:  # offline, no network, gated repo, ...: all mean "fetch it yourself"
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(
            f"could not fetch the dataset {repo_id} from the Hugging Face Hub ({type(exc).__name__}: {reason}). "
            f"Download it where the Hub is reachable (e.g. `hf download {repo_id} --repo-type dataset "
            f"--local-dir DIR`) and pass --data DIR (the folder holding {GREVAL_BENCH_FILE} and imgs/)."
        ) from exc


_BENCH_FIELDS = ("sample_id", "image_path", "gt_cot", "gt_lat", "gt_lon", "scene")


@register_format("greval-bench", {"path", "file", "hub", "revision"})
def _load_greval_bench(source: dict, data: str | Path | None) -> LoadResult:
    file_name = source.get("file", GREVAL_BENCH_FILE)
    path = local_path(source, data)
    if path is None:
        hub = source.get("hub")
        if not hub:
            raise DataError("the dataset has neither a local `path` nor a `hub` id; pass --data DIR")
        path = _fetch_from_hub(hub, source.get("revision"))
        found = sorted(path.rglob(file_name), key=lambda p: len(p.parts))
        if not found:
            raise DataError(f"{hub}: the Hub copy at {path} has no {file_name}; try `format: hf` for it")
        path = found[0]
    if path.is_dir():
        file = path / file_name
        if not file.is_file():
            raise DataError(f"{path}: no {file_name} here (expected the GREval-Bench layout: {file_name} + imgs/)")
    else:
        file = path
    root = file.parent
    image_paths = ImagePaths(root)
    raw = file.read_bytes()

    if file.suffix.lower() in (".jsonl", ".ndjson"):
        items, item_lines = parse_jsonl(raw, file)

        def where_of(index: int) -> str:
            return f"{file}:{item_lines[index]}"
    else:
        items = parse_json(raw, file)
        if not isinstance(items, list):
            raise DataError(f"{file}:1: expected a JSON list of samples, found a {type(items).__name__}")

        @functools.cache
        def item_lines() -> list[int]:
            return json_item_lines(raw.decode("utf-8-sig"))

        def where_of(index: int) -> str:
            return f"{file}:{item_lines()[index]} (item {index})"

    rows = Collector(where_of)
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            rows.fail(index, None, f"item {index} is not a JSON object")
            continue
        rows.add(
            index,
            item.get("sample_id"),
            item.get("gt_lat"),
            item.get("gt_lon"),
            functools.partial(image_paths, item.get("image_path")),
            gt_cot=item.get("gt_cot"),
            scene_label=item.get("scene"),
            metadata={k: v for k, v in item.items() if k not in _BENCH_FIELDS},
        )
    return LoadResult(rows.samples, rows.problems(), hash_bytes(raw), root=root, extra={"file": str(file)})
