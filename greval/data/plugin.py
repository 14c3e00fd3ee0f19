"""`format: path/to/loader.py:function`: a user's own format, checked like every other."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from greval.data.common import Collector, LoadResult, RowError
from greval.problems import DataError


def load_plugin(source: dict, data: str | Path | None) -> LoadResult:
    """`format: path/to/loader.py:function` (the task loader makes the path absolute,
    relative to the YAML). The function gets the `dataset:` options (with `path` replaced
    by --data when given) and returns or yields dicts with `sample_id`, `image_path` (a
    path relative to `path` or absolute) or `image` (encoded bytes), `gt_lat`, `gt_lon`,
    and optionally `gt_cot` and `scene`. Rows go through the same checks as every format."""

    from greval.user_code import load_file

    file, _, function = str(source["format"]).rpartition(":")
    path = Path(file).expanduser()
    module = load_file(path, "greval_user_format", "format file", DataError)
    loader = getattr(module, function, None)
    if not callable(loader):
        raise DataError(f"{path} defines no function {function!r}")
    options = {k: v for k, v in source.items() if k != "format"}
    if data is not None:
        options["path"] = str(data)
    root = Path(options["path"]).expanduser() if options.get("path") else path.parent
    rows_so_far: list[Any] = []
    try:
        for row in loader(options):
            rows_so_far.append(row)
    except Exception as exc:
        raise DataError(f"{path}:{function} failed after {len(rows_so_far)} rows: {type(exc).__name__}: {exc}") from exc
    collector = Collector(lambda i: f"{path.name}:{function} row {i}")
    for index, row in enumerate(rows_so_far):
        if not isinstance(row, dict):
            collector.fail(index, None, f"row {index} is a {type(row).__name__}, not a dict")
            continue
        image_bytes = row.get("image")
        image_path = row.get("image_path")

        def image(p=image_path, b=image_bytes) -> Path | None:
            if p is None:
                if b is None:
                    raise RowError("needs `image_path` or `image`")
                return None
            return Path(p) if Path(p).is_absolute() else root / p

        collector.add(
            index,
            row.get("sample_id"),
            row.get("gt_lat"),
            row.get("gt_lon"),
            image,
            gt_cot=row.get("gt_cot"),
            scene_label=row.get("scene"),
            metadata={k: v for k, v in row.items() if k not in _PLUGIN_FIELDS},
            image_loader=(lambda b=image_bytes: b) if image_bytes is not None else None,
        )
    content = repr([{k: v for k, v in r.items() if k != "image"} if isinstance(r, dict) else r for r in rows_so_far])
    digest = hashlib.sha256(path.read_bytes() + content.encode()).hexdigest()[:16]
    return LoadResult(collector.samples, collector.problems(), digest, root=root, extra={"file": str(path)})


_PLUGIN_FIELDS = {"sample_id", "image_path", "image", "gt_lat", "gt_lon", "gt_cot", "scene"}
