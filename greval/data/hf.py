"""`format: hf`: a Hugging Face `datasets` dataset (save_to_disk folder, parquet, or a hub name)."""

from __future__ import annotations

import functools
from pathlib import Path

from greval.data.common import (
    COLUMN_KEYS,
    Collector,
    Columns,
    ImagePaths,
    LoadResult,
    as_sample_id,
    hash_bytes,
    register_format,
)
from greval.problems import DataError


def _open_hf_dataset(source: dict, data: str | Path | None):
    import datasets

    location = data if data is not None else source.get("path")
    if location is None:
        raise DataError("an `hf` dataset needs a `path` (save_to_disk folder, parquet, or dataset name) or --data")
    split = source.get("split")
    local = Path(location).expanduser()
    try:
        if local.is_dir() and any((local / f).is_file() for f in ("state.json", "dataset_dict.json")):
            loaded = datasets.load_from_disk(str(local))
        elif source.get("data_files") or (local.is_file() and local.suffix == ".parquet"):
            files = source.get("data_files") or str(local)
            loaded = datasets.load_dataset(source.get("builder", "parquet"), data_files=files)
        else:
            loaded = datasets.load_dataset(str(location) if local.exists() else location, source.get("config"))
    except Exception as exc:  # datasets raises many types (missing files, offline hub, bad config)
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"{location}: cannot open as a `datasets` dataset ({type(exc).__name__}: {reason})") from None
    if isinstance(loaded, datasets.DatasetDict):
        names = list(loaded)
        chosen = split or ("test" if "test" in names else names[0] if len(names) == 1 else None)
        if chosen not in loaded:
            raise DataError(f"{location}: choose a split with `split:` (splits: {', '.join(names)})")
        loaded = loaded[chosen]
    return loaded, local if local.exists() else None


def _hf_image_bytes(images, column: str, index: int, base: Path | None) -> bytes:
    value = images[index][column]
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"]
        if value.get("path"):
            path = Path(value["path"])
            return (path if path.is_absolute() or base is None else base / path).read_bytes()
    raise ValueError(f"row {index}: column {column!r} holds no image")


@register_format("hf", {"path", "split", "config", "data_files", "builder", *COLUMN_KEYS})
def _load_hf(source: dict, data: str | Path | None) -> LoadResult:
    import datasets
    import pandas as pd

    dataset, local = _open_hf_dataset(source, data)
    where = str(data if data is not None else source.get("path"))
    columns = list(dataset.column_names)
    col = Columns.pick(source, columns, where, {"image": ("image", "img", "image_path")})
    image_col, lat_col, lon_col = col.image, col.lat, col.lon

    feature = dataset.features[image_col]
    paths_as_text = isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")
    if isinstance(feature, datasets.Image):
        dataset = dataset.cast_column(image_col, datasets.Image(decode=False))  # bytes, not decoded pixels
    images = dataset.select_columns([image_col])
    table = (
        dataset.remove_columns([image_col]).to_pandas() if len(columns) > 1 else pd.DataFrame(index=range(len(dataset)))
    )
    image_paths = list(dataset[image_col]) if paths_as_text else None
    base = local if local is not None and local.is_dir() else (local.parent if local is not None else None)

    ids = col.values(table, col.id) if col.id else list(range(len(table)))  # default: the row number
    lats, lons = col.values(table, lat_col), col.values(table, lon_col)
    cots, scenes = col.values(table, col.cot), col.values(table, col.scene)
    metadata = col.metadata(table)

    def no_path() -> None:
        return None

    relative_image = ImagePaths(base, image_col) if base is not None else None
    rows = Collector(lambda index: f"{where} (row {index})")
    for index in range(len(table)):
        if image_paths is not None:
            if base is None:
                rows.fail(index, as_sample_id(ids[index]), "image paths in a Hub dataset cannot be resolved")
                continue
            image, loader = functools.partial(relative_image, image_paths[index]), None
        else:
            image, loader = no_path, functools.partial(_hf_image_bytes, images, image_col, index, base)
        rows.add(
            index,
            ids[index],
            lats[index],
            lons[index],
            image,
            lat_name=lat_col,
            lon_name=lon_col,
            gt_cot=cots[index],
            scene_label=scenes[index],
            metadata=metadata[index],
            image_loader=loader,
        )
    key_columns = [c for c in (col.id, lat_col, lon_col) if c]
    digest = pd.util.hash_pandas_object(table[key_columns], index=True).to_numpy().tobytes() if key_columns else b""
    return LoadResult(rows.samples, rows.problems(), hash_bytes(digest), root=base if paths_as_text else None)
