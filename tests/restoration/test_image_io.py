"""Decoding limits and format round-trips, all on synthetic images built in memory."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps
from restoration_testutil import encode as to_bytes

from restoration import image_io
from restoration.errors import ImageTooLarge, ImageTooSmall, InvalidImage, TruncatedImage
from restoration.image_io import ImageLimits, decode, encode, output_format


def _noise(h: int = 120, w: int = 160, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8), (w, h))
    return base


def _png_claiming(width: int, height: int) -> bytes:
    """A ~70-byte PNG whose header claims width×height: a decompression bomb's header, no pixels."""
    small = to_bytes(np.zeros((1, 1), np.uint8))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    patched = small[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return patched + small[8 + 25:]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF"])
def test_decodes_every_format(fmt: str) -> None:
    arr = _noise()
    d = decode(to_bytes(arr, fmt))
    assert d.rgb.shape == arr.shape and d.rgb.dtype == np.uint8
    assert d.format == fmt and d.bit_depth == 8 and d.alpha is None and not d.is_gray
    if fmt in ("PNG", "BMP", "TIFF"):
        assert np.array_equal(d.rgb, arr)


def test_exif_orientation_is_applied() -> None:
    upright = _noise(90, 150)
    upright[:20, :30] = (255, 0, 0)  # a red mark at the top-left of the upright photo
    stored = np.ascontiguousarray(np.rot90(upright, 1))  # as a camera held sideways stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    d = decode(to_bytes(stored, "JPEG", quality=95, exif=exif))
    assert d.rgb.shape == upright.shape
    assert d.rgb[5, 5, 0] > 200 and d.rgb[5, 5, 1] < 60


@pytest.mark.parametrize("orientation", range(1, 9))
def test_sixteen_bit_orientation_matches_pil(orientation: int) -> None:
    """16-bit files are decoded by OpenCV and oriented by hand: every EXIF value must match PIL's."""
    arr = _noise(24, 40)
    exif = Image.Exif()
    exif[0x0112] = orientation
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(to_bytes(arr, exif=exif)))))
    ok, buf = cv2.imencode(".png", cv2.cvtColor(arr.astype(np.uint16) * 257, cv2.COLOR_RGB2BGR))
    assert ok
    d = decode(_with_exif_chunk(buf.tobytes(), exif.tobytes()))
    assert d.bit_depth == 16 and np.array_equal(d.rgb, expected)


def _with_exif_chunk(png: bytes, exif: bytes) -> bytes:
    """Insert an eXIf chunk right after IHDR (OpenCV writes none)."""
    chunk = struct.pack(">I", len(exif)) + b"eXIf" + exif + struct.pack(">I", zlib.crc32(b"eXIf" + exif))
    return png[:33] + chunk + png[33:]


def test_rgba_keeps_alpha_and_auto_is_png() -> None:
    rgba = np.dstack([_noise(), np.tile(np.linspace(0, 255, 160, dtype=np.uint8), (120, 1))])
    d = decode(to_bytes(rgba))
    assert d.alpha is not None and np.array_equal(d.alpha, rgba[..., 3])
    fmt = output_format("auto", d)
    back = Image.open(io.BytesIO(encode(d.rgb, fmt, alpha=d.alpha)))
    assert fmt == "png" and back.mode == "RGBA"
    assert np.array_equal(np.asarray(back)[..., 3], rgba[..., 3])


def test_sixteen_bit_round_trip() -> None:
    arr16 = (_noise().astype(np.uint16) * 257 + 100).astype(np.uint16)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(arr16, cv2.COLOR_RGB2BGR))
    d = decode(buf.tobytes())
    assert d.bit_depth == 16 and d.rgb.dtype == np.uint8 and d.rgb16 is not None
    assert np.array_equal(d.rgb16, arr16)
    data = encode(d.rgb16, output_format("auto", d))
    out = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and np.array_equal(cv2.cvtColor(out, cv2.COLOR_BGR2RGB), arr16)


def test_gray_stays_gray() -> None:
    gray = _noise()[..., 0]
    d = decode(to_bytes(gray))
    assert d.is_gray and d.rgb.shape == (*gray.shape, 3)
    assert Image.open(io.BytesIO(encode(d.rgb, "png", is_gray=True))).mode == "L"


def test_too_small() -> None:
    with pytest.raises(ImageTooSmall) as e:
        decode(to_bytes(np.zeros((1, 1, 3), np.uint8)))
    assert e.value.code == "image_too_small"


def test_sixty_megapixel_header_refused_before_decoding() -> None:
    data = _png_claiming(10_000, 6_000)
    assert len(data) < 200 and Image.open(io.BytesIO(data)).size == (10_000, 6_000)
    with pytest.raises(ImageTooLarge) as e:
        decode(data, ImageLimits(max_pixels=50_000_000, max_side=12_000))
    assert e.value.code == "image_too_large" and "60.0 MP" in e.value.message


def test_side_limit() -> None:
    with pytest.raises(ImageTooLarge):
        decode(_png_claiming(20_000, 100))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated(fmt: str) -> None:
    data = to_bytes(_noise(), fmt)
    with pytest.raises(TruncatedImage) as e:
        decode(data[: len(data) * 2 // 3])
    assert e.value.code == "truncated_image"
    assert image_io.ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("data", [b"", b"not an image at all" * 10])
def test_garbage(data: bytes) -> None:
    with pytest.raises(InvalidImage) as e:
        decode(data)
    assert e.value.code == "invalid_image"
    assert " at 0x" not in e.value.message  # no Python reprs in what clients read


def test_a_complete_png_with_a_bad_checksum_is_invalid_not_truncated() -> None:
    data = bytearray(to_bytes(_noise(), "PNG"))
    data[29] ^= 0xFF  # inside the IHDR chunk's CRC (8 signature + 4 length + 4 type + 13 data = 29)
    with pytest.raises(InvalidImage) as e:
        decode(bytes(data))
    assert e.value.code == "invalid_image" and not isinstance(e.value, TruncatedImage)


def test_auto_format_keeps_jpeg() -> None:
    d = decode(to_bytes(_noise(), "JPEG"))
    assert output_format("auto", d) == "jpeg"
    assert Image.open(io.BytesIO(encode(d.rgb, "jpeg", quality=80))).format == "JPEG"
    assert Image.open(io.BytesIO(encode(d.rgb, "webp", quality=80))).format == "WEBP"
