"""Errors the pipeline raises, each with a stable machine-readable ``code``.

The codes are part of the public API: the service stores them on failed jobs and docs/errors.md documents
them. Add codes, never rename them.
"""

from __future__ import annotations


class RestorationError(Exception):
    """Base class: ``code`` is stable and documented; ``message`` is for humans."""

    code = "restoration_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InvalidImage(RestorationError):
    """Bytes that are not a decodable image (zero bytes, garbage, unsupported format)."""

    code = "invalid_image"


class TruncatedImage(InvalidImage):
    """An image whose data ends early (a partial upload)."""

    code = "truncated_image"


class ImageTooLarge(RestorationError):
    """Over the pixel or side limits; refused from the header, before pixels are decoded."""

    code = "image_too_large"


class ImageTooSmall(RestorationError):
    """Under the minimum side: nothing meaningful can be restored."""

    code = "image_too_small"


class WeightsMissing(RestorationError):
    """A weights file is absent and cannot be downloaded; the message names the file and where it goes."""

    code = "weights_missing"
