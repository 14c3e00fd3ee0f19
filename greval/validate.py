"""Check a dataset before paying for a run: `greval data validate`.

`validate(source, data)` reports everything `load_samples` reports, plus for each
sample: a missing or unreadable image (opened with Pillow and `verify()`d, which checks
the file's structure without decoding pixels), an image larger than `max_pixels` (read
from the header), and an image path that resolves outside the data folder (e.g. through
a symlink). Files are checked in a thread pool: the work is file I/O and C code.
"""

from __future__ import annotations

import io
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from greval.data import LoadResult, Problem, load_samples
from greval.types import Sample

# Pillow's own decompression-bomb limit (Image.MAX_IMAGE_PIXELS).
DEFAULT_MAX_PIXELS = 89_478_485


def _check_image(sample: Sample, root: Path | None, max_pixels: int, decode: bool) -> Problem | None:
    from PIL import Image, UnidentifiedImageError

    where = str(sample.image_path) if sample.image_path is not None else "image"
    if sample.image_path is not None and sample.image_loader is None:
        path = Path(sample.image_path)
        if root is not None and not path.resolve().is_relative_to(root.resolve()):
            return Problem(sample.sample_id, where, f"the image resolves outside the data folder {root}")
        if not path.is_file():
            return Problem(sample.sample_id, where, "image file not found")
        opener = path
    else:
        try:
            opener = io.BytesIO(sample.image_bytes())
        except Exception as exc:  # a dataset row without bytes, a missing referenced file, ...
            return Problem(sample.sample_id, where, f"cannot read the image: {exc}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(opener) as image:  # reads the header only
                width, height = image.size
                if width * height > max_pixels:
                    return Problem(
                        sample.sample_id,
                        where,
                        f"image is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}",
                    )
                if decode:
                    image.load()  # catches truncated files that verify() lets through
                else:
                    image.verify()
    except Image.DecompressionBombError as exc:
        return Problem(sample.sample_id, where, f"image is over the pixel limit: {exc}")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        # verify() reports damaged files as OSError/SyntaxError depending on the format.
        return Problem(sample.sample_id, where, f"unreadable image ({type(exc).__name__}: {exc})")
    return None


def check_images(
    result: LoadResult, max_pixels: int = DEFAULT_MAX_PIXELS, *, decode: bool = False, workers: int | None = None
) -> list[Problem]:
    """Image problems of loaded samples, in sample order. decode=True also decodes the
    pixels (slower; finds truncated JPEGs, whose header and structure look fine)."""
    workers = workers or min(32, (os.cpu_count() or 1) * 4)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        found = pool.map(lambda s: _check_image(s, result.root, max_pixels, decode), result.samples)
        return [problem for problem in found if problem is not None]


def validate(
    source: dict,
    data: str | Path | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    manifest: str | Path | None = None,
    *,
    decode: bool = False,
) -> list[Problem]:
    """Every problem with the dataset: load problems first, then image problems.

    Raises DataError (like load_samples) when the annotation file cannot be read at all.
    """
    result = load_samples(source, data, manifest=manifest)
    return result.problems + check_images(result, max_pixels, decode=decode)
