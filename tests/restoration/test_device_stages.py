"""The torch stages (restoration/device_stages.py) against the OpenCV/numpy ones, on the CPU.

Each test runs both implementations of one stage on the same input and states its tolerance, in 8-bit
levels unless said otherwise. OpenCV rounds through fixed-point weights and tables, torch computes in
float32, so 8-bit results may differ by one level here and there; the bounds leave a little room over
what was measured (docs/pipeline.md, "Two implementations of the pixel stages", lists the figures).
The last tests run the whole Restorer both ways on real photos.

Every torch test runs on the CPU, and again on CUDA where there is a GPU (the ``device`` fixture): the
same tolerances hold there except for JPEG decode (nvJPEG's IDCT and chroma upsampling are not
libjpeg-turbo's) and encode (nvJPEG is a different encoder), which state their own.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from restoration_testutil import ONE_FACE, SOLVAY, face_photo

from restoration import alignment, background, device_stages, image_io, paste
from restoration.alignment import FFHQ_TEMPLATE_512
from restoration.errors import TruncatedImage
from restoration.options import RestoreOptions
from restoration.parsing import PART_CLASSES


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """scikit-image's astronaut (512×512 RGB, public domain), widened to 512×640 so nothing is square.
    Where scikit-image is not installed (the lent GPU machine), FACES_DIR/astronaut.png, which
    scripts/gpu_prepare.sh writes."""
    try:
        from skimage import data as skdata

        a = skdata.astronaut()
    except ImportError:
        from restoration_testutil import FACES_DIR

        path = FACES_DIR / "astronaut.png"
        if not path.is_file():
            pytest.skip("neither scikit-image nor FACES_DIR/astronaut.png")
        a = np.asarray(Image.open(path).convert("RGB"))
    return np.ascontiguousarray(np.concatenate([a, a[:, :128][:, ::-1]], axis=1))


@pytest.fixture(scope="module")
def big(photo: np.ndarray) -> np.ndarray:
    """The photo at 1280×1024, so that faces can be larger than the crop."""
    return cv2.resize(photo, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    return request.param


def _t(a: np.ndarray, device: str = "cpu") -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(device)


def _diff(a: np.ndarray, b: np.ndarray | torch.Tensor) -> np.ndarray:
    b = b.cpu().numpy() if isinstance(b, torch.Tensor) else b
    assert a.shape == b.shape
    return np.abs(a.astype(np.float64) - b.astype(np.float64))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def _faces() -> np.ndarray:
    """Landmarks of five faces in :func:`big` exercising every warp: area-downscaled (one partly outside
    the photo), linear, bicubic, and a tiny one. ``k`` = crop pixels per photo pixel."""
    placements = [(0.6, 100, 50), (0.7, -80, -60), (1.0, 300, 200), (2.0, 600, 500), (8.0, 900, 100)]
    return np.stack([FFHQ_TEMPLATE_512 / k + (x, y) for k, x, y in placements]).astype(np.float32)


# --- resampling -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "out"), [((300, 500), (123, 77)), ((37, 41), (16, 16)), ((40, 50), (61, 70))])
def test_area_resize_matches_cv2(device: str, photo: np.ndarray, size: tuple[int, int], out: tuple[int, int]) -> None:
    """INTER_AREA down and up, float in: ≤ 1e-3."""
    x = photo[:size[0], :size[1]].astype(np.float32)
    want = cv2.resize(x, (out[1], out[0]), interpolation=cv2.INTER_AREA)
    got = device_stages.resize_area(_t(x, device).permute(2, 0, 1)[None], out[1], out[0])[0].permute(1, 2, 0)
    assert _diff(want, got).max() <= 1e-3


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("method", ["none", "classical"])
def test_background_matches_cv2(device: str, photo: np.ndarray, scale: int, method: str) -> None:
    """Bilateral denoise, Lanczos-4 resize and unsharp mask: max ≤ 2 levels, mean ≤ 0.05 (measured:
    max 1, mean ≤ 0.01)."""
    src = photo[:200, :300]
    want = background.enhance_background(src, scale, method)
    e = _diff(want, device_stages.enhance_background(_t(src, device), scale, method))
    assert e.max() <= 2 and e.mean() <= 0.05, (e.max(), e.mean())


# --- align, masks, colour, paste ------------------------------------------------------------------


def test_align_matches_cv2(device: str, big: np.ndarray) -> None:
    """Inside the face region (the crop's central 384²): max ≤ 1 level, mean ≤ 0.05 (OpenCV quantises
    sample positions to 1/32 px). Over the whole crop
    mean ≤ 0.1: at the photo's edge OpenCV reflects the bicubic taps, torch clamps them."""
    lm = _faces()
    want = alignment.align_faces(big, lm)
    got, on_device = device_stages.align_faces(_t(big, device), lm)
    assert np.array_equal(got.crops, on_device.cpu().numpy())
    np.testing.assert_allclose(got.inverse_affines, want.inverse_affines)
    for a, b in zip(want.crops, got.crops, strict=True):
        inner = _diff(a[64:448, 64:448], b[64:448, 64:448])
        assert inner.max() <= 1 and inner.mean() <= 0.05, (inner.max(), inner.mean())
        assert _diff(a, b).mean() <= 0.1


def _labels() -> np.ndarray:
    lab = np.zeros((4, 512, 512), np.uint8)
    lab[0, 100:420, 120:390] = PART_CLASSES.index("skin")
    lab[0, 200:240, 150:210] = PART_CLASSES.index("eyes")
    lab[1, 80:300, 90:330] = PART_CLASSES.index("hair")  # no face part: the template stands in
    lab[2] = np.random.default_rng(0).integers(0, len(PART_CLASSES), (512, 512))
    cv2.ellipse(lab[3], (256, 300), (150, 200), 0, 0, 360, PART_CLASSES.index("nose"), -1)
    return lab


def test_part_masks_match_cv2(device: str) -> None:
    """Erode + blur + template fallback: ≤ 1e-4 (float masks in [0, 1])."""
    lab = _labels()
    got = device_stages.part_masks(_t(lab, device), PART_CLASSES)
    assert _diff(paste.part_masks(lab, PART_CLASSES), got).max() <= 1e-4


def test_lab_round_trip_matches_cv2(device: str, photo: np.ndarray) -> None:
    """Float Lab: ≤ 0.5 in L/a/b units, mean ≤ 0.1 (measured 0.42 and 0.04: OpenCV interpolates RGB->Lab in
    a lookup table, torch computes the formula); back to RGB ≤ 1e-3."""
    rgb = photo.astype(np.float32) / 255.0
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)
    e = _diff(lab, device_stages.rgb_to_lab(_t(rgb, device).permute(2, 0, 1)[None])[0].permute(1, 2, 0))
    assert e.max() <= 0.5 and e.mean() <= 0.1, (e.max(), e.mean())
    back = device_stages.lab_to_rgb(_t(lab, device).permute(2, 0, 1)[None])[0].permute(1, 2, 0)
    assert _diff(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), back).max() <= 1e-3


def _restored_faces(photo: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Aligned crops, stand-in 'restored' faces (tinted, mirrored), their masks, and the inverse affines."""
    aligned = alignment.align_faces(photo, _faces()[:4])
    faces = (aligned.crops[:, :, ::-1] * np.array([0.8, 0.9, 1.0]) + 20).astype(np.uint8)
    masks = paste.part_masks(_labels(), PART_CLASSES)
    return aligned.crops, faces, masks, aligned.inverse_affines


def test_match_color_and_mix_match_cv2(device: str, big: np.ndarray) -> None:
    """Colour match: max ≤ 1 level, mean ≤ 0.5 (measured 1 and 0.2). Fidelity blend: max ≤ 1."""
    crops, faces, masks, _ = _restored_faces(big)
    masks[1] = 0  # an empty mask leaves the face as it is
    want = np.stack([paste.match_color(f, r, m) for f, r, m in zip(faces, crops, masks, strict=True)])
    got = device_stages.match_color(_t(faces, device), _t(crops, device), _t(masks, device))
    e = _diff(want, got)
    assert e.max() <= 1 and e.mean() <= 0.5, (e.max(), e.mean())
    assert np.array_equal(got[1].cpu().numpy(), faces[1])
    w = np.array([0.0, 0.3, 0.5, 1.0])
    mixed = device_stages.mix(_t(faces, device), _t(crops, device), torch.from_numpy(w))
    for k, wk in enumerate(w):
        assert _diff(cv2.addWeighted(faces[k], wk, crops[k], 1 - wk, 0), mixed[k]).max() <= 1


@pytest.mark.parametrize("scale", [1, 2])
def test_paste_matches_cv2(device: str, big: np.ndarray, scale: int) -> None:
    """Inverse warp through the soft mask: max ≤ 2 levels, mean ≤ 0.05 (measured 1 and ≤ 0.03)."""
    _, faces, masks, inverses = _restored_faces(big)
    canvas = background.enhance_background(big, scale, "none")
    want = paste.paste_faces(canvas, faces, inverses, masks, scale)
    got = device_stages.paste_faces(_t(canvas, device), _t(faces, device), inverses, _t(masks, device), scale)
    e = _diff(want, got)
    assert e.max() <= 2 and e.mean() <= 0.05, (e.max(), e.mean())


def test_gray_matches_cv2(device: str, photo: np.ndarray) -> None:
    want = cv2.cvtColor(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    assert _diff(want, device_stages.gray(_t(photo, device))).max() <= 1


# --- decode and encode ----------------------------------------------------------------------------


def _jpeg(rgb: np.ndarray, mode: str = "RGB", orientation: int = 1, **save: object) -> bytes:
    im = Image.fromarray(rgb).convert(mode)
    exif = im.getexif()
    if orientation != 1:
        exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif.tobytes(), **save)
    return buf.getvalue()


@pytest.mark.parametrize(("mode", "orientation", "save"), [
    ("RGB", 1, {"quality": 90}), ("RGB", 6, {"quality": 75}), ("RGB", 5, {"progressive": True}),
    ("L", 8, {}), ("RGB", 3, {"subsampling": 0}), ("CMYK", 1, {}),
])
def test_decode_matches_pillow(device: str, photo: np.ndarray, mode: str, orientation: int, save: dict) -> None:
    """libjpeg-turbo on both sides on the CPU: bit-exact, EXIF orientation and greyness included. nvJPEG
    (CUDA) has its own IDCT and chroma upsampling: there PSNR ≥ 40 dB and mean ≤ 1 level (an expectation
    to confirm on the first GPU run). CMYK takes the numpy path."""
    data = _jpeg(photo, mode, orientation, **save)
    want = image_io.decode(data)
    got, pixels = device_stages.decode(data, None, device)
    assert pixels.device.type == device and np.array_equal(got.rgb, pixels.cpu().numpy())
    if device == "cpu" or mode == "CMYK":
        assert np.array_equal(want.rgb, got.rgb)
    else:
        assert _psnr(want.rgb, got.rgb) >= 40 and _diff(want.rgb, got.rgb).mean() <= 1
    assert (got.is_gray, got.format, got.bit_depth, got.alpha) == (want.is_gray, want.format, 8, None)


def test_decode_falls_back_and_keeps_errors(device: str, photo: np.ndarray) -> None:
    png = io.BytesIO()
    Image.fromarray(photo).save(png, "PNG")
    got, pixels = device_stages.decode(png.getvalue(), None, device)
    assert got.format == "PNG" and np.array_equal(pixels.cpu().numpy(), photo)
    with pytest.raises(TruncatedImage):
        device_stages.decode(_jpeg(photo)[:5000], None, device)


def test_encode_jpeg_matches_pillow(device: str, photo: np.ndarray) -> None:
    """torchvision's encoder where its subsampling is Pillow's (libjpeg 4:2:0 on the CPU below quality
    90, nvJPEG 4:4:4 on CUDA from 90): decoded outputs within PSNR ≥ 45 dB (measured on the CPU:
    identical pixels, only the Huffman tables differ). Elsewhere, and for PNG and grey, image_io's bytes."""
    img = _t(photo, device)
    own = 85 if device == "cpu" else 95
    ours = device_stages.encode(img, "jpeg", quality=own)
    pil = image_io.encode(photo, "jpeg", quality=own)
    a, b = (np.asarray(Image.open(io.BytesIO(x)).convert("RGB")) for x in (ours, pil))
    assert _psnr(a, b) >= 45
    other = 95 if device == "cpu" else 85
    for fmt, q, grey in (("jpeg", other, False), ("png", 95, False), ("jpeg", own, True), ("webp", 80, False)):
        assert device_stages.encode(img, fmt, quality=q, is_gray=grey) == image_io.encode(
            photo, fmt, quality=q, is_gray=grey)
    assert device_stages.device_jpeg_subsampling(torch.device("cuda")) == "444"


# --- the whole pipeline both ways -----------------------------------------------------------------


@pytest.fixture(scope="module", params=DEVICES)
def torch_restorer(request: pytest.FixtureRequest, weights_dir: Path):
    """The ``restorer`` fixture's configuration (classical generator) with the torch stages, on the CPU
    (forced) and on CUDA (``auto``) where there is one."""
    from restoration.pipeline import CLASSICAL_MODEL, Restorer

    stages = "torch" if request.param == "cpu" else "auto"
    return Restorer(weights_dir, device=request.param, model_path=Path(CLASSICAL_MODEL), stages=stages)


def test_stage_choice(weights_dir: Path, restorer, torch_restorer) -> None:
    from restoration.pipeline import Restorer

    assert not restorer.torch_stages and torch_restorer.torch_stages  # auto on the CPU = numpy
    with pytest.raises(ValueError, match="stages"):
        Restorer(weights_dir, device="cpu", stages="gpu")


@pytest.mark.parametrize(("path", "upscale"), [(ONE_FACE, 2), (SOLVAY, 1)])
def test_restorer_torch_stages_match_numpy(restorer, torch_restorer, faces_dir: Path, path: Path,
                                           upscale: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same photo both ways: the same faces (boxes, mask coverage within 0.005), images within PSNR ≥ 40 dB
    (measured: 64 dB on the JPEG at ×2, 65 dB on Solvay), and the parser called once for all faces."""
    calls: list[int] = []
    if torch_restorer.parser is not None:
        parse = torch_restorer.parser.parse
        monkeypatch.setattr(torch_restorer.parser, "parse",
                            lambda faces, **kw: calls.append(len(faces)) or parse(faces, **kw))
    opts = RestoreOptions(upscale=upscale)
    data = path.read_bytes()
    want, got = restorer.restore_bytes(data, opts), torch_restorer.restore_bytes(data, opts)
    assert (got.format, got.width, got.height) == (want.format, want.width, want.height)
    # the same faces: boxes equal on the CPU; within a pixel on CUDA (nvJPEG's pixels, CUDA detection)
    np.testing.assert_allclose([f["box"] for f in got.faces], [f["box"] for f in want.faces], atol=1.0)
    for a, b in zip(want.faces, got.faces, strict=True):
        assert abs(a["mask_coverage"] - b["mask_coverage"]) <= 0.005
    assert _psnr(want.image, got.image) >= 40
    decoded = np.asarray(Image.open(io.BytesIO(got.data)).convert("RGB"))
    assert _psnr(decoded, want.image) >= 35  # through the encoder too
    if torch_restorer.parser is not None:
        assert calls == [len(want.faces)]


def _variants() -> dict[str, tuple[bytes, RestoreOptions]]:
    rgb = face_photo()
    alpha = np.tile(np.linspace(60, 255, rgb.shape[1]).astype(np.uint8), (rgb.shape[0], 1))
    rgba16 = np.dstack([cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), alpha]).astype(np.uint16) * 257
    crop = cv2.resize(rgb[20:200, 5:185], (512, 512), interpolation=cv2.INTER_CUBIC)
    return {
        "grey jpeg": (_jpeg(rgb, "L", quality=92), RestoreOptions(upscale=2, quality=92)),
        "16-bit rgba png": (cv2.imencode(".png", rgba16)[1].tobytes(), RestoreOptions(upscale=2)),
        "aligned, fidelity 0.5": (_jpeg(crop, quality=95), RestoreOptions(aligned=True, fidelity=0.5)),
        "jpeg to webp": (_jpeg(rgb, quality=80), RestoreOptions(upscale=1, output_format="webp")),
    }


@pytest.mark.parametrize("kind", ["grey jpeg", "16-bit rgba png", "aligned, fidelity 0.5", "jpeg to webp"])
def test_restorer_torch_stages_keep_what_numpy_supports(restorer, torch_restorer, faces_dir: Path,
                                                        kind: str) -> None:
    """Grey, alpha, 16-bit, aligned crops, fidelity and other output formats: same file kind, same depth
    and channels, pixels within PSNR ≥ 40 dB, the same paste mask and crops (``keep_crops``)."""
    data, opts = _variants()[kind]
    want = restorer.restore_bytes(data, opts, keep_crops=True)
    got = torch_restorer.restore_bytes(data, opts, keep_crops=True)
    a, b = (cv2.imdecode(np.frombuffer(r.data, np.uint8), cv2.IMREAD_UNCHANGED) for r in (want, got))
    assert (got.format, a.dtype, a.shape) == (want.format, b.dtype, b.shape)
    assert _psnr(want.image, got.image) >= 40
    if a.dtype == np.uint16:
        assert _psnr(a // 257, b // 257) >= 40
    assert len(got.faces) == len(want.faces) and len(got.restored_crops) == len(want.restored_crops)
    if want.paste_mask is not None:
        assert _diff(want.paste_mask, got.paste_mask).mean() <= 0.5


def test_bisenet_parses_device_tensors_like_arrays(device: str, tmp_path: Path, photo: np.ndarray) -> None:
    """The CelebA parsers take the crops already on their device (the torch stages' copy): same labels."""
    from facexlib.parsing.bisenet import BiSeNet

    from restoration.parsing import CelebAParser

    torch.manual_seed(0)
    path = tmp_path / "parsing_bisenet.pth"
    torch.save(BiSeNet(num_class=19).state_dict(), path)  # random weights: only the plumbing is tested
    parser = CelebAParser("bisenet", path, device=device)
    assert parser.takes_tensors
    faces = np.stack([photo[:, :512], photo[:, 128:]])
    np.testing.assert_array_equal(parser.parse(faces), parser.parse(_t(faces, device)))
    with pytest.raises(ValueError, match="expected uint8"):
        parser.parse(_t(faces, device).float())
