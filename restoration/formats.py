"""The image formats and size limits the whole product agrees on, defined once.

Pure Python on purpose: the API (api/image_check.py), the settings, the worker and the CLIs import it
without loading torch or OpenCV (tests/test_layers.py keeps it light).
"""

from __future__ import annotations

#: Decodable input formats, as Pillow names them (MPO: JPEGs from cameras with a second frame).
INPUT_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "MPO")
#: File suffixes the CLIs pick up from a folder.
INPUT_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
#: What a restored photo may be written as (``output_format``; ``auto`` keeps JPEG/WebP, else PNG).
OUTPUT_FORMATS = ("png", "jpeg", "webp")
#: Output format → file extension (without the dot) and content type.
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}

#: Default input limits (the service's MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, MIN_IMAGE_SIDE settings).
MAX_PIXELS = 50_000_000
MAX_SIDE = 12_000
MIN_SIDE = 16
#: The restored photo is capped too: ``upscale`` is lowered until the output fits.
MAX_OUTPUT_PIXELS = 120_000_000
