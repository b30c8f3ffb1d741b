"""``portrait restore`` end to end, in-process, on small real photos."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from restoration_testutil import FACES_DIR, ONE_FACE, WEIGHTS_DIR

from portrait.cli import main

WILD = FACES_DIR / "wild"
#: a quick cross-section of every wild folder; PORTRAIT_WILD_ALL=1 runs them all (≈ 2-3 min on 2 cores)
SUBSET = {
    "whole": ["codeformer_01.jpg", "gpen_Solvay_conference_1927.png"],
    "cropped": ["codeformer_0143.png", "diffbir_hermione.jpg"],
    "gray": ["codeformer_Einstein02.png"],
    "real47": ["diffbir_real47_1.jpg", "diffbir_real47_36.png"],
}


def _restore(*args: str | Path) -> int:
    return main(["restore", "--weights-dir", str(WEIGHTS_DIR), "--device", "cpu", *map(str, args)])


def test_restore_with_compare_and_report(tmp_path: Path, weights_dir: Path, faces_dir: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(ONE_FACE, src / "photo.jpg")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out, report = tmp_path / "out", tmp_path / "report.json"
    rc = _restore(src, "-o", out, "--compare", "--report", report, "--save-faces", "--upscale", "2")
    assert rc == 1  # one bad file: reported, skipped, non-zero exit
    assert (out / "photo.jpg").is_file() and (out / "compare" / "photo.png").is_file()
    assert (out / "faces" / "photo_00_input.png").is_file()
    assert (out / "faces" / "photo_00_restored.png").is_file()
    data = json.loads(report.read_text())
    by_name = {Path(f["input"]).name: f for f in data["files"]}
    assert by_name["photo.jpg"]["ok"] and by_name["photo.jpg"]["num_faces"] == 1
    assert by_name["photo.jpg"]["width"] == 2 * 191
    assert by_name["broken.png"]["ok"] is False
    assert by_name["broken.png"]["error"]["code"] in ("invalid_image", "truncated_image")
    assert data["model_version"]


def test_compare_decodes_each_input_once(tmp_path: Path, weights_dir: Path, faces_dir: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from restoration import image_io

    calls: list[int] = []
    decode = image_io.decode

    def counting(data: bytes, *args: object, **kwargs: object) -> image_io.DecodedImage:
        calls.append(len(data))
        return decode(data, *args, **kwargs)

    monkeypatch.setattr(image_io, "decode", counting)
    out = tmp_path / "out"
    assert _restore(ONE_FACE, "-o", out, "--compare", "--upscale", "2") == 0
    assert len(calls) == 1
    compare = cv2.imread(str(out / "compare" / f"{ONE_FACE.stem}.png"))
    restored = cv2.imread(str(out / f"{ONE_FACE.stem}.jpg"))
    assert compare.shape == (2 * 264, 2 * 2 * 191 + 4, 3)  # input | 4 px gap | output, at output height
    src = cv2.resize(cv2.imread(str(ONE_FACE)), (2 * 191, 2 * 264), interpolation=cv2.INTER_NEAREST)
    assert np.abs(compare[:, :2 * 191].astype(int) - src).mean() < 1
    assert np.abs(compare[:, -2 * 191:].astype(int) - restored).mean() < 3  # the output, JPEG re-encoded

@pytest.mark.parametrize("device", ["bogus", "cuda:99"])
def test_unusable_device_is_a_clear_error(device: str, tmp_path: Path, capsys) -> None:
    rc = main(["restore", "--weights-dir", str(WEIGHTS_DIR), "--device", device, str(ONE_FACE),
               "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "error:" in err and device in err and "Traceback" not in err


def _wild_files(all_files: bool) -> list[Path]:
    if all_files:
        return [p for d in SUBSET for p in sorted((WILD / d).iterdir()) if p.is_file()]
    return [WILD / d / name for d, names in SUBSET.items() for name in names]


@pytest.mark.slow
@pytest.mark.parametrize("folder", list(SUBSET))
def test_restore_wild_photos(folder: str, tmp_path: Path, weights_dir: Path, faces_dir: Path) -> None:
    all_files = os.environ.get("PORTRAIT_WILD_ALL") == "1"
    files = [f for f in _wild_files(all_files) if f.parent.name == folder]
    aligned = ["--aligned"] if folder in ("cropped", "gray") else []
    report = tmp_path / "r.json"
    rc = _restore(*files, "-o", tmp_path / "out", "--upscale", "1", "--report", report, *aligned)
    entries = json.loads(report.read_text())["files"]
    assert rc == 0, [e for e in entries if not e["ok"]]
    assert len(entries) == len(files) and all(e["ok"] for e in entries)
    if folder == "whole":
        assert all(e["num_faces"] >= 1 for e in entries)


def test_restore_flags_are_the_api_options(tmp_path: Path, capsys) -> None:
    """Every job option has its CLI flag with the API's default, and the CLI refuses what the API refuses."""
    import argparse

    from restoration.cli import add_restore_arguments
    from restoration.options import RestoreOptions

    parser = argparse.ArgumentParser()
    add_restore_arguments(parser, weights_dir=WEIGHTS_DIR, model_path=None)
    args = parser.parse_args([str(ONE_FACE), "-o", str(tmp_path)])
    for name, field in RestoreOptions.model_fields.items():
        assert getattr(args, name) == field.default, name
    assert parser.parse_args([str(ONE_FACE), "-o", "x", "--threshold", "0.7"]).detection_threshold == 0.7
    # out of the API's range: a clear error, exit 2, nothing written
    rc = main(["restore", "--weights-dir", str(WEIGHTS_DIR), str(ONE_FACE), "-o", str(tmp_path / "out"),
               "--min-face-size", "5000"])
    assert rc == 2 and "min_face_size" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
