"""Bytes in, bytes out: decoding with safety limits, and encoding in the input's format family.

Inside ``restoration`` every image is RGB uint8 (H×W×3). This module is the only boundary: it turns any
supported file (JPEG, PNG, WebP, BMP, TIFF; gray, RGBA, palette, 16-bit) into that, remembers what it
took off (alpha, grayness, bit depth, format) in a :class:`DecodedImage`, and puts it back on encode.

Limits are checked from the header, before a single pixel is decoded, so a 20-kB decompression bomb
claiming 60 MP never allocates its pixels.
"""

from __future__ import annotations

import io
import re
import warnings
import zlib
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from restoration import formats
from restoration.errors import ImageTooLarge, ImageTooSmall, InvalidImage, TruncatedImage

# A partial upload must fail loudly, never come back as a half-grey image.
ImageFile.LOAD_TRUNCATED_IMAGES = False

_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")  # JPEG, PNG
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
#: an RGB photo whose channels differ by no more than this (99.5th percentile) is treated as gray:
#: old black-and-white scans are often saved as RGB, and must not come back with a colour cast.
_GRAY_TOLERANCE = 6


@dataclass(frozen=True)
class ImageLimits:
    """Refuse what would exhaust memory (``max_*``) or cannot hold a face (``min_side``)."""

    max_pixels: int = formats.MAX_PIXELS
    max_side: int = formats.MAX_SIDE
    min_side: int = formats.MIN_SIDE
    max_output_pixels: int = formats.MAX_OUTPUT_PIXELS


@dataclass
class DecodedImage:
    """A decoded photo as the pipeline sees it, plus what to restore on encode."""

    rgb: np.ndarray  # H×W×3 uint8, upright (EXIF orientation applied)
    alpha: np.ndarray | None = None  # H×W, same dtype as the file (uint8 or uint16)
    is_gray: bool = False
    bit_depth: int = 8
    format: str = "PNG"  # PIL format name of the input: JPEG, PNG, WEBP, BMP, TIFF
    rgb16: np.ndarray | None = field(default=None, repr=False)  # full-precision pixels of a 16-bit file

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def check_size(width: int, height: int, limits: ImageLimits) -> None:
    """Raise ImageTooLarge / ImageTooSmall for a size read from a header."""
    if width * height > limits.max_pixels:
        raise ImageTooLarge(
            f"{width}x{height} = {width * height / 1e6:.1f} MP is over the limit of "
            f"{limits.max_pixels / 1e6:.1f} MP"
        )
    if max(width, height) > limits.max_side:
        raise ImageTooLarge(f"{width}x{height}: a side is over the limit of {limits.max_side} px")
    if min(width, height) < limits.min_side:
        raise ImageTooSmall(f"{width}x{height}: a side is under the minimum of {limits.min_side} px")


def _reason(e: BaseException) -> str:
    """An exception's message without Python object reprs (``<_io.BytesIO object at 0x…>``)."""
    return re.sub(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>", "", str(e)).strip() or type(e).__name__


def _png_bad_chunk(data: bytes) -> str | None:
    """The type of the first complete PNG chunk whose CRC is wrong (damaged, not cut short), else None."""
    pos = 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        end = pos + 8 + length
        if end + 4 > len(data):
            return None  # cut inside this chunk
        if zlib.crc32(data[pos + 4:end]) != int.from_bytes(data[end:end + 4], "big"):
            return data[pos + 4:pos + 8].decode("latin-1")
        pos = end + 4
    return None


def open_image(data: bytes, limits: ImageLimits) -> Image.Image:
    """The file opened lazily (header only) and checked against the limits; no pixel decoded yet."""
    if not data:
        raise InvalidImage("zero bytes: the upload is empty")
    try:
        with warnings.catch_warnings():
            # our own limits decide; PIL's bomb warning would only be noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(f"decompression bomb refused: {e}") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and (chunk := _png_bad_chunk(data)):
            raise InvalidImage(f"the PNG is corrupt: bad checksum in its {chunk} chunk") from e
        if data.startswith(_SIGNATURES):  # a real image's first bytes, cut inside its headers
            raise TruncatedImage(f"the image ends inside its header ({len(data)} bytes): {_reason(e)}") from e
        raise InvalidImage(f"not a decodable image ({len(data)} bytes): {_reason(e)}") from e
    if im.format not in formats.INPUT_FORMATS:
        raise InvalidImage(f"unsupported format {im.format}; use JPEG, PNG, WebP, BMP or TIFF")
    check_size(*im.size, limits)  # from the header, pixels not decoded yet
    return im


def file_bit_depth(im: Image.Image) -> int:
    """16 for 16-bit-per-channel files: PIL silently reads 16-bit RGB as 8-bit, so ask the header."""
    if im.mode.startswith("I;16") or im.mode == "I":
        return 16
    rawmodes = [str(t.args if isinstance(t.args, str) else (t.args or ("",))[0]) for t in im.tile or []]
    if any(";16" in r for r in rawmodes):
        return 16
    if im.format == "TIFF":
        bits = im.tag_v2.get(258)
        if bits and max(np.atleast_1d(bits)) == 16:
            return 16
    return 8


def _load(im: Image.Image, nbytes: int) -> None:
    try:
        im.load()
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        # cut short -> truncated_image; damaged but complete (a bad PNG checksum) -> invalid_image
        text = str(e).lower()
        if isinstance(e, EOFError) or "truncated" in text or "decoder object" in text or "premature" in text:
            raise TruncatedImage(f"the image data ends early ({nbytes} bytes received): {_reason(e)}") from e
        raise InvalidImage(f"the image data is corrupt: {_reason(e)}") from e


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1–8) to an array, for pixels decoded outside PIL."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.rot90(a, -1)[::-1],  # transverse
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(arr)) if op else arr


def _decode16(data: bytes, orientation: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Full-precision RGB(+alpha) uint16 of a 16-bit PNG/TIFF (PIL has no 48-bit RGB mode)."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if arr is None:
        raise InvalidImage("16-bit image could not be decoded")
    if arr.dtype != np.uint16:
        arr = arr.astype(np.uint16) * 257
    arr = _orient(arr, orientation)
    alpha = None
    if arr.ndim == 2:
        rgb = np.repeat(arr[..., None], 3, axis=2)
    elif arr.shape[2] == 4:
        rgb, alpha = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB), np.ascontiguousarray(arr[..., 3])
    elif arr.shape[2] == 2:
        rgb, alpha = np.repeat(arr[..., :1], 3, axis=2), np.ascontiguousarray(arr[..., 1])
    else:
        rgb = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    return rgb, alpha


def looks_gray(rgb: np.ndarray) -> bool:
    """Whether an RGB photo is grey within ``_GRAY_TOLERANCE`` (a scanned black-and-white print saved as RGB)."""
    step = max(1, max(rgb.shape[:2]) // 512)
    s = rgb[::step, ::step].astype(np.int16)
    chroma = np.maximum(np.abs(s[..., 0] - s[..., 1]), np.abs(s[..., 1] - s[..., 2]))
    return bool(np.percentile(chroma, 99.5) <= _GRAY_TOLERANCE)


def decode(data: bytes, limits: ImageLimits | None = None) -> DecodedImage:
    """Decode bytes to an upright RGB uint8 photo, refusing bombs and broken files with stable codes."""
    limits = limits or ImageLimits()
    im = open_image(data, limits)
    fmt = "JPEG" if im.format == "MPO" else str(im.format)
    bit_depth = file_bit_depth(im)  # before load(), which drops the tile list it reads
    _load(im, len(data))
    orientation = int(im.getexif().get(0x0112, 1) or 1)  # PNG keeps EXIF after the pixels
    gray_mode = im.mode in _GRAY_MODES
    has_alpha = im.mode in ("RGBA", "LA", "La", "PA", "RGBa") or (
        im.mode in ("P", "L", "RGB") and "transparency" in im.info
    )
    rgb16 = None
    if bit_depth == 16:
        rgb16, alpha = _decode16(data, orientation)
        rgb = to_uint8(rgb16)
    else:
        im = ImageOps.exif_transpose(im)
        if im.mode == "CMYK" or im.mode == "YCbCr" or im.mode not in ("RGB", "RGBA", "L", "LA"):
            im = im.convert("RGBA" if has_alpha else "RGB")
        arr = np.asarray(im)
        alpha = None
        if arr.ndim == 2:
            rgb = np.repeat(arr[..., None], 3, axis=2)
        elif arr.shape[2] == 2:
            rgb, alpha = np.repeat(arr[..., :1], 3, axis=2), np.ascontiguousarray(arr[..., 1])
        elif arr.shape[2] == 4:
            rgb, alpha = np.ascontiguousarray(arr[..., :3]), np.ascontiguousarray(arr[..., 3])
        else:
            rgb = np.ascontiguousarray(arr)
    if alpha is not None and alpha.min() == alpha.max() == (65535 if alpha.dtype == np.uint16 else 255):
        alpha = None  # an opaque alpha channel carries nothing worth forcing PNG for
    is_gray = gray_mode or looks_gray(rgb)
    return DecodedImage(rgb=rgb, alpha=alpha, is_gray=is_gray, bit_depth=bit_depth, format=fmt, rgb16=rgb16)


def output_format(requested: str, decoded: DecodedImage) -> str:
    """``auto`` keeps JPEG as JPEG and WebP as WebP; alpha and 16-bit force PNG; anything else is PNG."""
    if requested != "auto":
        return "jpeg" if requested in ("jpg", "jpeg") else requested
    if decoded.alpha is not None or decoded.bit_depth == 16:
        return "png"
    return {"JPEG": "jpeg", "WEBP": "webp"}.get(decoded.format, "png")


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """16-bit -> 8-bit with rounding (65535 -> 255); 8-bit passes through."""
    return arr if arr.dtype == np.uint8 else (arr.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)


def encode(
    rgb: np.ndarray,
    fmt: str,
    *,
    quality: int = 95,
    alpha: np.ndarray | None = None,
    is_gray: bool = False,
) -> bytes:
    """Encode an RGB result (uint8, or uint16 for 16-bit PNG), re-attaching alpha and grayness.

    A uint16 ``rgb`` is written as a 16-bit PNG; JPEG and WebP have no 16-bit mode and get 8 bits.
    """
    fmt = fmt.lower()
    if fmt not in formats.OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {fmt!r}")
    if fmt == "jpeg":
        alpha = None  # JPEG has no alpha; the caller asked for it explicitly
    if fmt != "png":
        rgb = to_uint8(rgb)
    pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if is_gray else rgb
    if pixels.dtype == np.uint16:
        p16 = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR) if pixels.ndim == 3 else pixels
        if alpha is not None:
            a16 = alpha if alpha.dtype == np.uint16 else alpha.astype(np.uint16) * 257
            p16 = np.dstack([p16, a16]) if p16.ndim == 3 else np.dstack([p16, p16, p16, a16])
        ok, buf = cv2.imencode(".png", p16)
        if not ok:  # pragma: no cover - cv2 always encodes uint16 PNG
            raise InvalidImage("16-bit PNG encoding failed")
        return buf.tobytes()
    if alpha is not None:
        pixels = np.dstack([pixels, to_uint8(alpha)])
    im = Image.fromarray(np.ascontiguousarray(pixels))
    out = io.BytesIO()
    if fmt == "png":
        im.save(out, "PNG", compress_level=3)
    elif fmt == "jpeg":
        im.save(out, "JPEG", quality=quality, subsampling=0 if quality >= 90 else 2, optimize=True)
    else:
        im.save(out, "WEBP", quality=quality, method=4)
    return out.getvalue()


def resize_alpha(alpha: np.ndarray, width: int, height: int) -> np.ndarray:
    """Alpha follows the photo's geometry; linear keeps soft edges soft without ringing."""
    if alpha.shape[1] == width and alpha.shape[0] == height:
        return alpha
    return cv2.resize(alpha, (width, height), interpolation=cv2.INTER_LINEAR)
