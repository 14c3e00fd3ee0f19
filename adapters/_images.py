"""Images as API adapters send them: the original bytes whenever possible, re-encoded only
when they must be (too large, a format the APIs do not take, EXIF GPS that would leak the
answer, an EXIF rotation). See `prepare_image`."""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import Any

_MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
_EXIF_ORIENTATION = 0x0112
_EXIF_GPS_IFD = 0x8825


# -- images ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSettings:
    max_side: int | None
    max_pixels: int | None
    jpeg_quality: int
    max_bytes: int  # the provider's per-image limit (decoded bytes)

    def key(self) -> dict[str, Any]:
        return {"max_side": self.max_side, "max_pixels": self.max_pixels, "jpeg_quality": self.jpeg_quality}


@dataclass
class PreparedImage:
    data: bytes
    media_type: str
    size: tuple[int, int]  # (width, height) as sent
    original_size: tuple[int, int]
    reencoded: str | None  # why it was re-encoded, None when sent byte for byte

    def b64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    def meta(self) -> dict[str, Any]:
        """What a record says about the image sent (and the original, when re-encoded)."""
        meta: dict[str, Any] = {
            "image_bytes_sent": len(self.data),
            "image_size_sent": list(self.size),
            "image_media_type": self.media_type,
        }
        if self.reencoded:
            meta.update(image_reencoded=self.reencoded, image_size_original=list(self.original_size))
        return meta


def prepare_image(raw: bytes, settings: ImageSettings) -> PreparedImage:
    """The image as it will be sent: the original bytes whenever possible.

    Re-encoded (JPEG at `settings.jpeg_quality`) only when it must be: larger than
    `max_side` / `max_pixels` (then resized, aspect kept), a format the APIs do not take,
    EXIF GPS tags (they would leak the answer) or an EXIF rotation (the model should see
    the photo upright, as a person would), or over the provider's size limit.
    """
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(raw)) as img:
        width, height = img.size
        exif = img.getexif()
        scale = 1.0
        if settings.max_side and max(width, height) > settings.max_side:
            scale = settings.max_side / max(width, height)
        if settings.max_pixels and width * height * scale * scale > settings.max_pixels:
            scale = min(scale, math.sqrt(settings.max_pixels / (width * height)))
        if scale < 1.0:
            reason = "resized"
        elif img.format not in _MEDIA_TYPES:
            reason = f"format {img.format}"
        elif _EXIF_GPS_IFD in exif:
            reason = "exif_gps"
        elif exif.get(_EXIF_ORIENTATION, 1) != 1:
            reason = "exif_orientation"
        elif len(raw) > settings.max_bytes:
            reason = "too_large"
        else:
            return PreparedImage(raw, _MEDIA_TYPES[img.format], (width, height), (width, height), None)
        upright = ImageOps.exif_transpose(img)
        rgb = upright.convert("RGB")
    if scale < 1.0:
        new_size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(new_size, Image.Resampling.LANCZOS)
    quality = settings.jpeg_quality
    while True:
        out = io.BytesIO()
        rgb.save(out, format="JPEG", quality=quality)  # no exif= argument: metadata is dropped
        data = out.getvalue()
        if len(data) <= settings.max_bytes or quality <= 40:
            break
        quality -= 10
    return PreparedImage(data, "image/jpeg", rgb.size, (width, height), reason)
