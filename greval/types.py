"""The few nouns greval is built from.

Data flows one way: a `Sample` (load) becomes a `Request` (prompt), an adapter turns
requests into `Response`s (generate), the response text becomes a `Prediction`
record (parse + score), and reports are made from those records alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

SCENES = ("urban", "natural", "landmark")
# Where a sample's scene label came from; every run reports counts per source.
SCENE_SOURCES = ("data", "manifest", "classifier", "none")


@dataclass
class Sample:
    """One benchmark item. Pixels are loaded only when an adapter asks for them."""

    sample_id: str
    gt_lat: float
    gt_lon: float
    image_path: Path | None = None
    # For sources that are not files (a `datasets` row): returns the encoded image bytes.
    image_loader: Callable[[], bytes] | None = field(default=None, repr=False)
    gt_cot: str | None = None
    scene: str | None = None
    scene_source: str = "none"
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def has_image(self) -> bool:
        """Whether there is an image to send: a file, or bytes the dataset holds."""
        return self.image_path is not None or self.image_loader is not None

    def image_bytes(self) -> bytes:
        """The image file exactly as stored (JPEG/PNG bytes), read now."""
        if self.image_loader is not None:
            return self.image_loader()
        if self.image_path is None:
            raise ValueError(f"sample {self.sample_id}: has no image")
        return Path(self.image_path).read_bytes()

    def load_image(self):
        """The image as an RGB PIL image, decoded now (PIL is imported lazily)."""
        import io

        from PIL import Image

        try:
            with Image.open(io.BytesIO(self.image_bytes())) as img:
                return img.convert("RGB")
        except Image.UnidentifiedImageError:
            where = self.image_path or "its image bytes"
            raise ValueError(f"sample {self.sample_id}: {where} is not an image Pillow can read") from None


def image_problem(sample: Sample, exc: BaseException) -> str:
    """What is wrong with a sample's image, naming the sample and the file (never a
    `<_io.BytesIO object at 0x…>`): the message of a data problem."""
    import re

    where = f"image {sample.image_path}" if sample.image_path is not None else "its image bytes"
    if isinstance(exc, FileNotFoundError):
        reason = "no such file"
    elif type(exc).__name__ == "UnidentifiedImageError" or "cannot identify image file" in str(exc):
        reason = "not an image Pillow can read (corrupt, empty or another format)"
    else:
        text = re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", "the image", str(exc))
        reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return f"sample {sample.sample_id}: {where} cannot be read: {reason}"


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings. temperature 0 means greedy."""

    max_tokens: int = 1024
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass
class Request:
    """What one adapter call needs for one sample of one task."""

    sample: Sample
    task: str
    prompt: str  # the rendered user text
    system: str | None = None
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    seed: int | None = None  # this request's own seed (None: the adapter's); the judge re-asks with another

    @cached_property
    def prompt_hash(self) -> str:
        text = f"{self.system or ''}\x00{self.prompt}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass
class Response:
    """An adapter's answer to one request. `error` set means no model answer exists:
    the sample is recorded as errored and retried on the next run, never scored."""

    text: str | None = None
    error: str | None = None
    finish_reason: str | None = None  # "stop", "length" (truncated), ...
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = None
    latency_s: float | None = None
    attempts: int = 1
    cached: bool = False
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. sent image size
    # Set when the sample's own data cannot be used (an unreadable or missing image): no
    # request was sent, nothing is recorded, the sample is reported as skipped and looked
    # at again on the next run. Not an error: retrying the same bytes cannot help.
    data_problem: str | None = None

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"
