"""End-to-end pipeline behaviour on real photos (Solvay 1927) and synthetic edge cases, CPU only."""

from __future__ import annotations

import io
import time

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from restoration_testutil import SOLVAY, encode, face_photo

from restoration.errors import InvalidImage, RestorationError, WeightsMissing
from restoration.metrics import gradient_magnitude
from restoration.options import RestoreOptions
from restoration.pipeline import RestoreResult


def _decode_any(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


@pytest.fixture(scope="module")
def solvay_identity(identity_restorer, faces_dir) -> tuple[np.ndarray, RestoreResult]:
    data = SOLVAY.read_bytes()
    res = identity_restorer.restore_bytes(data, RestoreOptions(upscale=1, fidelity=1.0), keep_crops=True)
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), res


def test_solvay_faces_detected_and_pasted(solvay_identity) -> None:
    _, res = solvay_identity
    assert len(res.faces) >= 27
    assert all(f["mask_coverage"] > 0.05 for f in res.faces)
    assert res.paste_mask is not None
    for f in res.faces:  # every face was really pasted: its box centre lies under the paste mask
        x1, y1, x2, y2 = f["box"]
        assert res.paste_mask[int((y1 + y2) / 2), int((x1 + x2) / 2)] > 128


def test_identity_leaves_background_intact_and_no_seam(solvay_identity) -> None:
    src, res = solvay_identity
    out, mask = res.image.astype(np.int16), res.paste_mask
    assert out.shape == src.shape
    diff = np.abs(out - src).max(axis=2)
    assert diff[mask == 0].max() <= 1  # outside every face mask: untouched
    # the transition band of the soft masks: no step, no ringing
    band = (mask > 5) & (mask < 250)
    assert band.sum() > 1000
    assert np.percentile(diff[band], 99) <= 12

    # a seam would add gradient along the mask edge
    excess = gradient_magnitude(out.astype(np.uint8)) - gradient_magnitude(src.astype(np.uint8))
    assert np.percentile(excess[band], 99) <= 40
    assert float(excess[band].mean()) <= 2.0


def test_solvay_classical_upscaled(restorer, faces_dir) -> None:
    res = restorer.restore_bytes(SOLVAY.read_bytes(), RestoreOptions(upscale=2))
    assert len(res.faces) >= 27 and res.upscale == 2
    assert (res.width, res.height) == (res.image.shape[1], res.image.shape[0])
    assert res.model_version.startswith("classical-v1")
    report = res.to_report()
    assert set(res.timings) >= {"decode", "detect", "align", "parse", "generate", "paste", "background",
                                "encode", "total"}
    face = report["faces"][0]
    assert set(face) >= {"box", "landmarks", "score", "mask_coverage", "identity_cosine", "timings_ms"}
    assert len(face["landmarks"]) == 5
    if restorer.embedder is not None:
        assert all(-1.0 <= f["identity_cosine"] <= 1.0 for f in report["faces"])



def test_identity_report_embeds_inputs_and_outputs_in_one_call(restorer, faces_dir, monkeypatch) -> None:
    """One embedder call per face batch (inputs + outputs together), same cosines as separate calls."""
    if restorer.embedder is None:
        pytest.skip("identity weights absent: no identity report")
    calls: list[int] = []
    embed = restorer.embedder.embed_aligned

    def counting(faces: np.ndarray) -> np.ndarray:
        calls.append(len(faces))
        return embed(faces)

    monkeypatch.setattr(restorer.embedder, "embed_aligned", counting)
    res = restorer.restore_bytes(SOLVAY.read_bytes(), RestoreOptions(upscale=1, max_faces=10), keep_crops=True)
    n = len(res.faces)
    assert n == 10
    assert calls == [20]  # inputs and outputs of all ten faces in one call (IDENTITY_BATCH 16 a side)
    monkeypatch.undo()
    a = embed(np.stack(res.input_crops))
    b = embed(np.stack(res.restored_crops))
    separate = np.sum(a * b, axis=1)
    got = np.array([f["identity_cosine"] for f in res.faces])
    assert np.allclose(got, separate, atol=1e-4), (got, separate)
    assert separate.min() < 0.9999  # the classical generator changed the faces: a real comparison

def test_exif_rotated_photo_comes_out_upright(identity_restorer, faces_dir) -> None:
    upright = face_photo()
    stored = np.ascontiguousarray(np.rot90(upright, 1))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(stored, "JPEG", quality=95, exif=exif)
    res = identity_restorer.restore_bytes(data, RestoreOptions(upscale=1))
    assert res.image.shape == upright.shape and len(res.faces) == 1
    assert np.abs(res.image.astype(int) - upright).mean() < 4  # the same upright picture (JPEG aside)


def test_rgba_keeps_alpha(identity_restorer, faces_dir) -> None:
    rgb = face_photo()
    alpha = np.tile(np.linspace(60, 255, rgb.shape[1]).astype(np.uint8), (rgb.shape[0], 1))
    res = identity_restorer.restore_bytes(encode(np.dstack([rgb, alpha])), RestoreOptions(upscale=2))
    out = Image.open(io.BytesIO(res.data))
    assert res.format == "png" and out.mode == "RGBA" and out.size == (2 * rgb.shape[1], 2 * rgb.shape[0])
    assert np.abs(np.asarray(out)[..., 3].astype(int)[:, ::2][::2] - alpha).max() <= 3


def test_sixteen_bit_keeps_depth(identity_restorer, faces_dir) -> None:
    rgb16 = face_photo().astype(np.uint16) * 257
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    res = identity_restorer.restore_bytes(buf.tobytes(), RestoreOptions(upscale=1))
    out = _decode_any(res.data)
    assert res.format == "png" and out.dtype == np.uint16 and out.shape == rgb16.shape
    assert len(res.faces) == 1


def test_gray_stays_gray(restorer, faces_dir) -> None:
    gray = cv2.cvtColor(face_photo(), cv2.COLOR_RGB2GRAY)
    res = restorer.restore_bytes(encode(gray), RestoreOptions(upscale=1))
    assert Image.open(io.BytesIO(res.data)).mode == "L" and len(res.faces) == 1


def test_no_face_returns_background(restorer) -> None:
    yy, xx = np.mgrid[0:120, 0:160]
    img = np.dstack([xx * 1.5, yy * 2, np.full_like(xx, 90)]).astype(np.uint8)
    res = restorer.restore_bytes(encode(img), RestoreOptions(upscale=2))
    assert res.faces == [] and (res.width, res.height) == (320, 240)
    plain = cv2.resize(img, (320, 240), interpolation=cv2.INTER_CUBIC)
    assert np.abs(res.image.astype(int) - plain).mean() < 3


def test_aligned_face(restorer, faces_dir) -> None:
    face = face_photo()
    crop = cv2.resize(face, (512, 512))
    res = restorer.restore_bytes(encode(crop), RestoreOptions(aligned=True, upscale=1))
    assert (res.width, res.height) == (512, 512) and len(res.faces) == 1 and res.timings["detect"] == 0


def test_fidelity_zero_keeps_input_face(restorer, faces_dir) -> None:
    src = face_photo()
    res = restorer.restore_image(src, RestoreOptions(upscale=1, fidelity=0.0), keep_crops=True)
    assert len(res.faces) == 1
    assert np.array_equal(res.restored_crops[0], res.input_crops[0])


def _aligned_pair() -> tuple[np.ndarray, np.ndarray]:
    """The one-face photo's aligned 512 crop as it is (mild) and under the ``heavy`` degradation."""
    from restoration.degrade import degrade

    clean = cv2.resize(face_photo(), (512, 512), interpolation=cv2.INTER_AREA)
    return clean, degrade(clean, "heavy", np.random.default_rng(0))


def test_fidelity_auto_restores_a_heavier_degradation_further(restorer, faces_dir) -> None:
    """auto (the default): a clean face stays an even blend with its input, a heavily degraded one
    is restored further; a number is used as given; the report says which weight each face got."""
    from restoration import fidelity

    mild, heavy = _aligned_pair()
    auto = restorer.restore_many([mild, heavy], RestoreOptions(aligned=True, upscale=1), keep_crops=True)
    (w_mild,), (w_heavy,) = ([f["fidelity"] for f in r.faces] for r in auto)
    assert RestoreOptions().fidelity == "auto"
    assert w_mild == fidelity.FLOOR and fidelity.FLOOR < w_heavy <= 1.0
    fixed = restorer.restore_image(heavy, RestoreOptions(aligned=True, upscale=1, fidelity=0.3), keep_crops=True)
    assert fixed.faces[0]["fidelity"] == 0.3
    flat = restorer.restore_image(np.full((512, 512, 3), 128, np.uint8), RestoreOptions(aligned=True, upscale=1))
    assert flat.faces[0]["fidelity"] == fidelity.FLOOR, "a crop NIQE cannot measure stays close to its input"
    # the blend really is that weight of the restored face
    full = restorer.restore_image(heavy, RestoreOptions(aligned=True, upscale=1, fidelity=1.0), keep_crops=True)
    expect = cv2.addWeighted(full.restored_crops[0], w_heavy, full.input_crops[0], 1 - w_heavy, 0)
    assert np.abs(auto[1].restored_crops[0].astype(int) - expect).max() <= 1


class _Stranger(torch.nn.Module):
    """A generator that paints one other person's face over every face."""

    model_version = "stranger (test stand-in)"

    def __init__(self, face: np.ndarray) -> None:
        super().__init__()
        from restoration.generator import to_model

        self.face = to_model(torch.from_numpy(cv2.resize(face, (512, 512), interpolation=cv2.INTER_AREA))[None])

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.face.to(x).expand_as(x).contiguous()


@pytest.mark.parametrize("stages", ["numpy", "torch"])
def test_fidelity_auto_falls_back_where_the_person_is_lost(weights_dir, faces_dir, stages) -> None:
    """Step 2: a heavy face whose restoration no longer looks like its input (MobileFaceNet) is blended
    at the floor instead, and its reported identity cosine is that of what was delivered."""
    from restoration import fidelity
    from restoration.pipeline import Restorer

    other = np.asarray(Image.open(faces_dir / "wild" / "cropped" / "diffbir_hermione.jpg").convert("RGB"))
    r = Restorer(weights_dir, device="cpu", generator=_Stranger(other), background="none",
                 stages=stages)
    if r.embedder is None:
        pytest.skip("no identity embedder weights")
    _, heavy = _aligned_pair()
    res = r.restore_image(heavy, RestoreOptions(aligned=True, upscale=1), keep_crops=True)
    face = res.faces[0]
    assert fidelity.fidelity_for(fidelity.input_niqe(res.input_crops[0], weights_dir)) > fidelity.FLOOR
    assert face["fidelity"] == fidelity.FLOOR
    fixed = r.restore_image(heavy, RestoreOptions(aligned=True, upscale=1, fidelity=1.0))
    assert face["identity_cosine"] > fixed.faces[0]["identity_cosine"]


def test_errors_have_codes(restorer) -> None:
    cases = {
        encode(np.zeros((1, 1, 3), np.uint8)): "image_too_small",
        encode(np.zeros((64, 64, 3), np.uint8), "JPEG")[:300]: "truncated_image",
        b"\x00garbage": "invalid_image",
    }
    for data, code in cases.items():
        with pytest.raises(RestorationError) as e:
            restorer.restore_bytes(data, RestoreOptions())
        assert e.value.code == code


def test_restore_many_mixes_results_and_errors(restorer, faces_dir) -> None:
    good = encode(face_photo(), "JPEG")
    results = restorer.restore_many([good, b"", SOLVAY.read_bytes()], RestoreOptions(upscale=1))
    assert isinstance(results[0], RestoreResult) and len(results[0].faces) == 1
    assert isinstance(results[1], InvalidImage)
    assert isinstance(results[2], RestoreResult) and len(results[2].faces) >= 27
    assert results[0].format == "jpeg"


def test_missing_detector_weights_name_file_and_url(tmp_path, monkeypatch) -> None:
    import facexlib.utils.misc as misc

    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("network unreachable")

    monkeypatch.setattr(misc, "download_url_to_file", offline)
    from restoration.detection import FaceDetector

    with pytest.raises(WeightsMissing) as e:
        FaceDetector(tmp_path, "cpu")
    msg = str(e.value)
    assert "detection_mobilenet0.25_Final.pth" in msg and str(tmp_path) in msg and "https://" in msg


class _MaskRecorder(torch.nn.Module):
    """A mask-conditioned stand-in that records the mask of each call; without a mask it returns a flat grey
    face, so a mask parsed from its first pass differs from one parsed from the input."""

    model_version = "mask recorder (test stand-in)"
    config = type("Config", (), {"mask_ch": 14})()

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[torch.Tensor | None] = []

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        self.calls.append(None if mask is None else mask.detach().float().clone())
        time.sleep(0.2)  # a generator's cost, so that the timings show which stage each pass was counted in
        return x if mask is not None else torch.zeros_like(x)


def test_mask_source_chooses_what_the_generator_is_conditioned_on(weights_dir) -> None:
    """input: one pass on the input's parsed mask; restored: a mask-free pass, then one on the mask parsed
    from it; none: one mask-free pass. The timings count both passes as generation."""
    from restoration.pipeline import Restorer

    crop = cv2.resize(face_photo(), (512, 512))
    opts = RestoreOptions(aligned=True, upscale=1)
    seen = {}
    for source in ("input", "restored", "none"):
        g = _MaskRecorder()
        r = Restorer(weights_dir, device="cpu", generator=g, background="none", parser_backend="landmarks",
                     mask_source=source, precision="fp32")
        res = r.restore_image(crop, opts)
        seen[source] = g.calls
        # both passes of `restored` are generation (counted as parsing, generate would show one)
        assert len(res.faces) == 1 and res.timings["generate"] >= 200 * len(g.calls), res.timings
    assert [m is None for m in seen["input"]] == [False]
    assert [m is None for m in seen["restored"]] == [True, False]
    assert [m is None for m in seen["none"]] == [True]
    assert not torch.equal(seen["restored"][1], seen["input"][0]), "the second pass uses the first pass's mask"
    with pytest.raises(ValueError, match="mask_source"):
        Restorer(weights_dir, device="cpu", generator=_MaskRecorder(), mask_source="clean")
