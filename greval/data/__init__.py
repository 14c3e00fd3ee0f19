"""Load a dataset into `Sample`s: the first step of load -> prompt -> generate -> parse -> score.

`load_samples(source, data=None, manifest=None)` takes the `dataset:` mapping of a task
YAML; `data` (the CLI's `--data`) replaces the source's `path`. Loading reads annotation
files only: images are never opened or stat'ed here (pixels load lazily through
`Sample.image_bytes()` / `load_image()`; `greval.validate` checks the files). A bad row
(missing or out-of-range coordinate, duplicate id, image path that leaves the data
folder) becomes a `Problem` naming the sample and is skipped; the rest loads. A file
that cannot be parsed at all raises `DataError` with file and line.

Formats (`format:`), with the YAML that selects each:

1. greval-bench: a folder with GREval-Bench.json (a JSON list of
   {"sample_id", "image_path", "gt_cot", "gt_lat", "gt_lon"}, optional "scene"; other
   fields are kept in `metadata`) and images under it (`image_path` is relative to it).
   Without a local path the Hub copy is fetched (and cached) by huggingface_hub::

       dataset:
         format: greval-bench
         hub: Anonymous0515/GREval-Bench     # used when neither path nor --data is given
         # path: ~/data/GREval-Bench         # a folder, or the .json / .jsonl file itself

2. table: a CSV / TSV / JSON / JSONL / parquet file read by pandas. Column names are
   configurable; every other column is kept in `metadata` (e.g. OSV-5M's country and
   city, for country-level scoring)::

       # Im2GPS3k: im2gps3k_places365.csv (IMG_ID, AUTHOR, LAT, LON, S3_Label, ...);
       # IMG_ID is the image's file name.
       dataset:
         format: table
         path: ~/data/im2gps3k               # folder holding the CSV (or the CSV itself)
         file: im2gps3k_places365.csv
         id_column: IMG_ID
         lat_column: LAT
         lon_column: LON
         image_column: IMG_ID                # file name relative to image_dir
         image_dir: images                   # relative to the CSV's folder; default "."

       # YFCC4k: yfcc4k_places365.csv has the same layout as Im2GPS3k.
       dataset: {format: table, path: ~/data/yfcc4k, file: yfcc4k_places365.csv,
                 id_column: IMG_ID, lat_column: LAT, lon_column: LON,
                 image_column: IMG_ID, image_dir: images}

       # OSV-5M test split: test.csv (id, latitude, longitude, country, region,
       # sub-region, city, ...); images are {id}.jpg somewhere under images/test/
       # (the official zips unpack into sub-folders 00/, 01/, ...).
       dataset:
         format: table
         path: ~/data/osv5m
         file: test.csv
         id_column: id
         lat_column: latitude
         lon_column: longitude
         image_template: "{id}.jpg"          # any column name may appear in braces
         image_dir: images/test
         image_search: recursive             # find each file name anywhere below image_dir
                                             # (one directory listing, no per-image stat)
         # scene_column: ..., cot_column: ... (optional)

   Defaults: id_column "id"; lat/lon columns: the first of lat/latitude/gt_lat/LAT
   (lon/lng/longitude/gt_lon/LON) present; image_template "{id}.jpg" when no
   image_column is set.

3. exif: a folder (searched recursively) of the user's own photos with GPS in EXIF
   (GPSLatitude/GPSLongitude + Ref). The sample id is the path relative to the folder.
   Photos without GPS are Problems. HEIC needs the `pillow-heif` package::

       dataset: {format: exif, path: ~/Pictures/trip}

4. hf: a Hugging Face `datasets` dataset: a `save_to_disk` folder, parquet files, or a
   `load_dataset` name. Image bytes are read per row on demand::

       dataset:
         format: hf
         path: ~/data/my_ds                  # save_to_disk folder, parquet file/folder, or hub name
         split: test                         # default: "test", or the only split
         image_column: image                 # an Image feature, bytes, or a path string
         lat_column: lat
         lon_column: lon
         # id_column: id (default: the row number), config: ..., data_files: ...
         # scene_column: ..., cot_column: ...

Scene labels are assigned afterwards by `greval.scenes.assign_scenes` (manifest, then
the data's label, then the reasoning-text classifier).

One module per format (greval/data/greval_bench.py, table.py, exif.py, hf.py, plugin.py), each
registered with `@register_format`; the row checks they share are in greval/data/common.py.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from greval.data.common import LOADERS, SOURCE_KEYS, LoadResult, gc_paused, register_format
from greval.data.plugin import load_plugin
from greval.problems import DataError, Problem

# Each format module registers itself when imported; this order is the order errors list them in.
for _module in ("greval_bench", "table", "exif", "hf"):
    importlib.import_module(f"greval.data.{_module}")

__all__ = ["DataError", "LoadResult", "Problem", "load_samples", "register_format"]


def load_samples(source: dict, data: str | Path | None = None, manifest: str | Path | None = None) -> LoadResult:
    """Load every good sample of `source` and report the bad ones (see the module docstring)."""
    from greval.scenes import assign_scenes

    fmt = source.get("format", "greval-bench")
    if ".py:" in str(fmt):  # `format: loader.py:function`: a user's own format (see load_plugin)
        with gc_paused():
            result = load_plugin(source, data)
        result.extra["n_skipped"] = len(result.problems)
        result.problems.extend(assign_scenes(result.samples, manifest))
        return result
    loader = LOADERS.get(fmt)
    if loader is None:
        raise DataError(f"unknown dataset format {fmt!r}; use one of: {', '.join(LOADERS)}, or FILE.py:FUNCTION")
    # A misspelt key (`id_colum:`) would otherwise be ignored and its default used in silence.
    unknown = sorted(set(source) - SOURCE_KEYS[fmt])
    if unknown:
        raise DataError(
            f"unknown `dataset:` key(s) {unknown} for format {fmt!r}; known: {', '.join(sorted(SOURCE_KEYS[fmt]))}"
        )
    if source.get("image_search") not in (None, "recursive"):
        raise DataError(f"`image_search: {source['image_search']}` is not known; the only value is `recursive`")
    with gc_paused():
        result = loader(source, data)
        result.format = fmt
        # Every loader problem left its row out; the scene problems after them do not.
        result.extra["n_skipped"] = len(result.problems)
        result.problems.extend(assign_scenes(result.samples, manifest))
    return result
