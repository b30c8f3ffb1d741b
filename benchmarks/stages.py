"""Per-face cost of the stages that run over a batch of faces, at several batch sizes, on one device.

    .venv/bin/python benchmarks/stages.py [--device cpu|cuda] [--batches 1,2,4,8] [--precisions fp32,bf16]
                                          [--seconds 2] [--model M.safetensors] [--json out/stages.json]

On real faces (the Solvay 1927 photo's, detected, aligned and parsed once, repeated to fill a batch) it
times, per batch size: the generator as the pipeline runs it (``Restorer._generate``: the faces' part
mask, channels_last, autocast in the given precision), the identity embedder (inputs and outputs in one
call, as the pipeline reports ``identity_cosine``), and the torch pixel stages of
restoration/device_stages.py on the device (alignment, soft part masks, colour match, paste-back into
the ×2 canvas); on the CPU also the landmark parser (MediaPipe, which has no GPU path here). Prints ms
a face for each (stage, precision, batch) and the ratio to batch 1 in the same run: this is what chose
the pipeline's generator batch (``restoration.pipeline.AUTO_BATCH``); with ``--device cuda`` it gives
the GPU's per-stage figures (the identity embedder is ONNX Runtime on the CPU where no CUDA provider is
installed: its row is then host time). Photos from FACES_DIR, weights from WEIGHTS_DIR.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch

from restoration import device_stages
from restoration.alignment import align_faces
from restoration.image_io import decode
from restoration.parsing import PART_CLASSES
from restoration.paths import default_faces_dir, default_weights_dir
from restoration.pipeline import Restorer

PHOTO = default_faces_dir() / "wild" / "whole" / "gpen_Solvay_conference_1927.png"


def _ms_per_call(fn: Callable[[], object], seconds: float, sync: Callable[[], None]) -> float:
    fn()  # warm-up: the first call of a shape is slower (allocator, oneDNN/cuDNN plans)
    sync()
    n, t0 = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    sync()
    return (time.perf_counter() - t0) * 1000 / n


def run(device: str, batches: list[int], precisions: list[str], seconds: float, model: Path | None,
        json_path: Path | None = None) -> list[dict]:
    weights = default_weights_dir()
    base = Restorer(weights, device=device, model_path=model, precision="fp32")
    dev = base.device
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    photo = decode(PHOTO.read_bytes())
    faces = base.detector.detect(photo.rgb)
    landmarks = np.stack([f.landmarks for f in faces])
    crops = align_faces(photo.rgb, landmarks).crops
    labels = base.parser.parse(crops) if base.parser is not None else np.zeros(crops.shape[:3], np.uint8)
    pixels = device_stages.upload(photo.rgb, dev)
    canvas = device_stages.enhance_background(pixels, 2, "auto")
    print(f"device {dev}, torch threads {torch.get_num_threads()}, model {base.model_version}, "
          f"{len(faces)} faces of {PHOTO.name} repeated to fill each batch; ms a face")
    rows: list[dict] = []

    def record(stage: str, precision: str, batch: int, ms_call: float) -> None:
        one = next((r["ms_per_face"] for r in rows if (r["stage"], r["precision"], r["batch"]) ==
                    (stage, precision, 1)), None)
        row = {"stage": stage, "precision": precision, "batch": batch, "ms_per_face": round(ms_call / batch, 3)}
        row["vs_batch_1"] = round(row["ms_per_face"] / one, 2) if one else 1.0
        rows.append(row)
        print(f"{stage:12s} {precision:5s} batch {batch:3d}: {row['ms_per_face']:9.2f} ms/face "
              f"({row['vs_batch_1']:.2f}x batch 1)", flush=True)
        if json_path is not None:  # after each row: a run cut short keeps what it measured
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(rows, indent=1))

    def take(b: int) -> np.ndarray:
        return np.resize(np.arange(len(crops)), b)

    for precision in precisions:
        r = base if precision == "fp32" else Restorer(weights, device=device, model_path=model,
                                                       precision=precision)
        for b in batches:
            idx = take(b)
            x = device_stages.upload(crops[idx], dev)
            record("generate", precision, b, _ms_per_call(partial(r._generate, x, labels[idx]), seconds, sync))
    for b in batches:
        idx = take(b)
        x = device_stages.upload(crops[idx], dev)
        lab = device_stages.upload(labels[idx], dev)
        masks = device_stages.part_masks(lab, PART_CLASSES)
        inverse = align_faces(photo.rgb, landmarks[idx]).inverse_affines
        calls = {
            "align": partial(device_stages.align_faces, pixels, landmarks[idx]),
            "masks": partial(device_stages.part_masks, lab, PART_CLASSES),
            "colour": partial(device_stages.match_color, x, x, masks),
            "paste": partial(device_stages.paste_faces, canvas, x, inverse, masks, 2),
        }
        if base.embedder is not None:
            calls["identity"] = partial(base.embedder.embed_aligned, np.concatenate([crops[idx], crops[idx]]))
        if dev.type == "cpu" and base.parser is not None:
            calls["parse"] = partial(base.parser.parse, crops[idx])
        for stage, call in calls.items():
            record(stage, "fp32", b, _ms_per_call(call, seconds, sync))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batches", default="1,2,4,8")
    p.add_argument("--precisions", default="fp32", help="comma-separated: fp32, bf16")
    p.add_argument("--seconds", type=float, default=2.0, help="timed seconds per measurement (at least 3 calls)")
    p.add_argument("--model", type=Path, default=None, help="generator weights; default the shipped model")
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args()
    run(args.device, [int(b) for b in args.batches.split(",")], args.precisions.split(","), args.seconds,
        args.model, args.json)


if __name__ == "__main__":
    main()
