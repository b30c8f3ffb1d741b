"""A cheap pre-check of uploads at submit time, from the image header only (no pixel decode).

It turns the common mistakes (zero bytes, not an image, absurd dimensions) into an immediate 4xx
instead of a failed job. The worker's decoder stays the authority: a truncated body passes this
check and fails the job with ``truncated_image``.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from portrait.errors import ApiError
from portrait.settings import Settings
from restoration.formats import INPUT_FORMATS


def check_image_header(data: bytes, settings: Settings) -> tuple[str, int, int]:
    """Return (format, width, height) or raise ApiError with a documented code."""
    if not data:
        raise ApiError("empty_input", "the input is zero bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                fmt, (w, h) = im.format or "", im.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise ApiError("invalid_image", f"not a decodable image: {type(e).__name__}") from e
    if fmt not in INPUT_FORMATS:
        raise ApiError("invalid_image", f"unsupported image format {fmt or 'unknown'}")
    if w * h > settings.max_image_pixels or max(w, h) > settings.max_image_side:
        raise ApiError("image_too_large",
                       f"{w}x{h} exceeds the limits ({settings.max_image_pixels} pixels, "
                       f"{settings.max_image_side} px per side)")
    if min(w, h) < settings.min_image_side:
        raise ApiError("image_too_small", f"{w}x{h} is under {settings.min_image_side} px per side")
    return fmt, w, h
