"""Per-stage timings of the restoration pipeline, and its speed against facexlib's per-face loop.

    .venv/bin/python benchmarks/pipeline.py [--device cpu|cuda] [--repeat 3] [--model M.safetensors]
                                            [--stages auto|numpy|torch] [--json out/pipeline.json]

For a one-face and a many-face photo it prints the median per-stage milliseconds of
``Restorer.restore_bytes`` (decode, detect, align, parse, generate, identity, paste, background, encode), then
the wall time of the same photo through facexlib's ``FaceRestoreHelper`` used the GFPGAN way (detect,
align, one generator call per face, paste with ``use_parse=False``), with the same generator, and the
ratio. Both use ×2 upscale. ``--stages`` picks the pixel stages' implementation (``auto``: torch on
CUDA, numpy on the CPU; see restoration/device_stages.py). Third-party photos are read from FACES_DIR,
weights from WEIGHTS_DIR.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from restoration.options import RestoreOptions
from restoration.paths import default_faces_dir, default_weights_dir
from restoration.pipeline import Restorer

WEIGHTS_DIR, FACES_DIR = default_weights_dir(), default_faces_dir()
PHOTOS = {
    "one face (2160px selfie)": FACES_DIR / "wild" / "whole" / "gpen_selfie_2020-12-17_185036.jpg",
    "many faces (Solvay 1927)": FACES_DIR / "wild" / "whole" / "gpen_Solvay_conference_1927.png",
}
STAGES = ("decode", "detect", "align", "parse", "generate", "identity", "paste", "background", "encode", "total")


def facexlib_loop(restorer: Restorer, data: bytes, upscale: int) -> tuple[float, int]:
    """GFPGAN-style restoration of one photo through FaceRestoreHelper; returns (ms, faces)."""
    from facexlib.utils import face_restoration_helper as frh

    helpers = facexlib_loop.__dict__.setdefault("helpers", {})
    helper = helpers.get(str(restorer.device))  # one per device: a CPU helper must not time a CUDA run
    if helper is None:
        # use_parse=False never uses the parser, but the constructor loads (downloads) it: skip that
        frh.init_parsing_model = lambda **kwargs: None
        helper = frh.FaceRestoreHelper(
            upscale, face_size=512, crop_ratio=(1, 1), det_model=restorer.detector.model_name,
            save_ext="png", use_parse=False, device=restorer.device,
            model_rootpath=str(restorer.weights_dir / "facexlib"),
        )
        helpers[str(restorer.device)] = helper
    t0 = time.perf_counter()
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    helper.clean_all()
    helper.read_image(img)
    helper.get_face_landmarks_5(only_center_face=False, resize=640, eye_dist_threshold=5)
    helper.align_warp_face()
    for crop in helper.cropped_faces:
        x = torch.from_numpy(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)).permute(2, 0, 1)[None]
        x = x.to(restorer.device).float() / 127.5 - 1.0
        with torch.inference_mode(), restorer._autocast():  # the same precision as the pipeline's
            y = restorer.generator(x.contiguous(memory_format=torch.channels_last), None)
        y = ((y[0].float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
        helper.add_restored_face(cv2.cvtColor(y, cv2.COLOR_RGB2BGR))
    helper.get_inverse_affine(None)
    out = helper.paste_faces_to_input_image()
    cv2.imencode(".png", out)
    return (time.perf_counter() - t0) * 1000, len(helper.cropped_faces)


def run(device: str, repeat: int, model: Path | None, stages: str = "auto", done: list[dict] | None = None,
        json_path: Path | None = None) -> list[dict]:
    """The table for ``device``; with ``json_path``, ``done`` + the rows so far are written after each photo."""
    restorer = Restorer(WEIGHTS_DIR, device=device, model_path=model, stages=stages)
    options = RestoreOptions(upscale=2)
    print(f"\ndevice {restorer.device}, torch threads {torch.get_num_threads()}, "
          f"detector {restorer.detector.model_name}, parser {getattr(restorer.parser, 'name', None)}, "
          f"model {restorer.model_version}, stages {stages}, upscale x2, median of {repeat}")
    header = f"{'photo':32s} {'faces':>5s} " + " ".join(f"{s:>9s}" for s in STAGES)
    print(header + f" {'facexlib':>9s} {'ratio':>6s}")
    print("-" * (len(header) + 17))
    rows = []
    for name, path in PHOTOS.items():
        data = path.read_bytes()
        restorer.restore_bytes(data, options)  # warm-up: first calls of a shape are slower
        runs = [restorer.restore_bytes(data, options) for _ in range(repeat)]
        med = {s: statistics.median(r.timings[s] for r in runs) for s in STAGES}
        facexlib_loop(restorer, data, 2)
        fx = [facexlib_loop(restorer, data, 2) for _ in range(repeat)]
        fx_ms = statistics.median(t for t, _ in fx)
        row = f"{name:32s} {len(runs[0].faces):5d} " + " ".join(f"{med[s]:9.0f}" for s in STAGES)
        print(row + f" {fx_ms:9.0f} {fx_ms / med['total']:5.2f}x  (facexlib found {fx[0][1]} faces)")
        rows.append({"photo": name, "device": str(restorer.device), "stages": stages, "faces": len(runs[0].faces),
                     "precision": restorer.precision, "ms": {s: round(med[s], 1) for s in STAGES},
                     "facexlib_ms": round(fx_ms, 1), "ratio": round(fx_ms / med["total"], 2)})
        if json_path is not None:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps([*(done or []), *rows], indent=1))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", action="append", help="cpu and/or cuda (default: cpu, plus cuda if present)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--model", type=Path, default=None, help="generator weights; default shipped/classical")
    p.add_argument("--stages", choices=("auto", "numpy", "torch"), default="auto",
                   help="the pixel stages' implementation (auto: torch on CUDA, numpy on the CPU)")
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args()
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    rows: list[dict] = []
    for device in devices:
        rows += run(device, args.repeat, args.model, args.stages, rows, args.json)


if __name__ == "__main__":
    main()
