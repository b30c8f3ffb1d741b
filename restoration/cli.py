"""``portrait restore`` and ``portrait demo``: the pipeline on this machine, no services needed.

``portrait/cli.py`` wires these functions in; they take plain paths (the weights directory and model
path come from the settings there) so ``restoration`` never imports the service's settings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from restoration.formats import EXTENSIONS, INPUT_SUFFIXES
from restoration.options import MASK_SOURCES, PRECISIONS, add_option_arguments, options_from_args

FILES_PER_BATCH = 4  # photos whose faces share generator batches


def _common_arguments(parser: argparse.ArgumentParser, weights_dir: Path, model_path: Path | None) -> None:
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    parser.add_argument("--model", type=Path, default=model_path,
                        help="generator weights (.safetensors), or 'classical' for the non-learned stand-in; "
                             "default: the shipped model (restoration/weights/)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="generator arithmetic: auto = bf16 on CUDA and on CPUs with AMX/AVX512-BF16, else fp32")
    parser.add_argument("--weights-dir", type=Path, default=weights_dir,
                        help=f"third-party weights (facexlib/, identity/, landmarks/); default {weights_dir}")
    parser.add_argument("--parser", default="auto",
                        help="face parser: auto, bisenet, parsenet, landmarks, none")
    parser.add_argument("--mask-source", default="input", choices=MASK_SOURCES,
                        help="the generator's face-part mask: parsed from the input, from a first mask-free pass "
                             "(restored: two generator passes), or none")
    parser.add_argument("--background", default="auto", choices=["auto", "classical", "none"],
                        help="background method: classical denoise + Lanczos upscale, or none")


def add_restore_arguments(
    parser: argparse.ArgumentParser, *, weights_dir: Path, model_path: Path | None
) -> None:
    """Arguments of ``portrait restore IN... -o OUTDIR``."""
    parser.add_argument("inputs", nargs="+", type=Path, help="image files or folders of images")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    add_option_arguments(parser)  # --upscale, --fidelity, ... as the API's options (restoration/options.py)
    parser.add_argument("--save-faces", action="store_true",
                        help="also write aligned input and restored face crops to OUTDIR/faces/")
    parser.add_argument("--compare", action="store_true",
                        help="also write side-by-side input | output images to OUTDIR/compare/")
    parser.add_argument("--report", type=Path, default=None, help="write a JSON report of every file here")
    parser.add_argument("--batch", type=int, default=0,
                        help="faces per generator batch (default 0 = auto: 16 on CUDA, 1 on the CPU)")
    _common_arguments(parser, weights_dir, model_path)


def add_demo_arguments(
    parser: argparse.ArgumentParser, *, weights_dir: Path, model_path: Path | None
) -> None:
    """Arguments of ``portrait demo -o OUTDIR``."""
    parser.add_argument("-o", "--output", type=Path, default=Path("out/demo"), help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the degradation (default 0)")
    add_option_arguments(parser, ("fidelity",))
    _common_arguments(parser, weights_dir, model_path)


def collect_inputs(paths: list[Path]) -> list[Path]:
    """Files as given, folders expanded (sorted, not recursive) to their image files."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in INPUT_SUFFIXES))
        else:
            files.append(p)
    return files


def _unique_stems(files: list[Path]) -> list[str]:
    seen: dict[str, int] = {}
    stems = []
    for f in files:
        n = seen.get(f.stem, 0)
        seen[f.stem] = n + 1
        stems.append(f.stem if n == 0 else f"{f.stem}_{n}")
    return stems


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left`` resized (nearest, so its blur shows as is) to ``right``'s height, then side by side."""
    h = right.shape[0]
    w = max(1, round(left.shape[1] * h / left.shape[0]))
    left = cv2.resize(left, (w, h), interpolation=cv2.INTER_NEAREST)
    return np.hstack([left, np.full((h, 4, 3), 255, np.uint8), right])


def _build_restorer(args: argparse.Namespace, max_batch: int | None = None) -> Any:
    from restoration.pipeline import Restorer

    return Restorer(args.weights_dir, device=args.device, model_path=args.model, max_batch=max_batch,
                    parser_backend=args.parser, background=args.background, limits=getattr(args, "limits", None),
                    precision=args.precision, mask_source=args.mask_source)


def _model_line(restorer: Any) -> str:
    if restorer.is_classical:
        return f"model: {restorer.model_version} — the classical stand-in (denoise + sharpen)"
    return f"model: {restorer.model_version} ({restorer.precision})"


def run_restore(args: argparse.Namespace) -> int:
    """Restore every input into ``args.output``; bad files are reported and skipped (exit 1 if any)."""
    from tqdm import tqdm

    from restoration.errors import RestorationError

    try:
        options = options_from_args(args)
    except ValueError as e:
        print(f"error: invalid options: {e}", file=sys.stderr)
        return 2
    files = collect_inputs(args.inputs)
    if not files:
        print("error: no input images found", file=sys.stderr)
        return 2
    try:
        restorer = _build_restorer(args, args.batch)
    except (RestorationError, ValueError) as e:  # missing weights, unusable --device
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(_model_line(restorer), file=sys.stderr)
    out_dir: Path = args.output
    out_dir.mkdir(parents=True, exist_ok=True)
    stems = _unique_stems(files)
    entries: list[dict[str, Any]] = []
    failed = 0
    bar = tqdm(total=len(files), unit="photo", desc="restoring")
    for start in range(0, len(files), FILES_PER_BATCH):
        chunk = list(range(start, min(start + FILES_PER_BATCH, len(files))))
        blobs: list[bytes] = []
        for i in chunk:
            try:
                blobs.append(files[i].read_bytes())
            except OSError as e:
                blobs.append(b"")
                print(f"cannot read {files[i]}: {e}", file=sys.stderr)
        results = restorer.restore_many(blobs, options, keep_crops=args.save_faces, keep_input=args.compare)
        for i, res in zip(chunk, results, strict=True):
            entry: dict[str, Any] = {"input": str(files[i])}
            if isinstance(res, RestorationError):
                failed += 1
                entry.update(ok=False, error={"code": res.code, "message": res.message})
                tqdm.write(f"skipped {files[i]}: {res}", file=sys.stderr)
            else:
                out_path = out_dir / f"{stems[i]}.{EXTENSIONS[res.format]}"
                out_path.write_bytes(res.data)
                entry.update(ok=True, output=str(out_path), **res.to_report())
                if args.compare and res.input_image is not None:
                    _write_rgb(out_dir / "compare" / f"{stems[i]}.png", side_by_side(res.input_image, res.image))
                if args.save_faces and res.input_crops is not None:
                    for k, (a, b) in enumerate(zip(res.input_crops, res.restored_crops or [], strict=True)):
                        _write_rgb(out_dir / "faces" / f"{stems[i]}_{k:02d}_input.png", a)
                        _write_rgb(out_dir / "faces" / f"{stems[i]}_{k:02d}_restored.png", b)
            entries.append(entry)
            bar.update(1)
    bar.close()
    if args.report is not None:
        report = {"model_version": restorer.model_version, "device": str(restorer.device),
                  "options": options.model_dump(), "files": entries}
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2))
    ok = len(files) - failed
    nfaces = sum(e.get("num_faces", 0) for e in entries)
    tail = f", {failed} failed" if failed else ""
    print(f"{ok}/{len(files)} restored ({nfaces} faces) into {out_dir}{tail}", file=sys.stderr)
    return 1 if failed else 0


def _builtin_degrade(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur, noise and JPEG at q 30: the fallback when restoration.degrade is absent."""
    x = cv2.GaussianBlur(rgb, (0, 0), 1.5).astype(np.float32)
    x += rng.normal(0, 6, x.shape).astype(np.float32)
    x = np.clip(x, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(x, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 30])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _label(img: np.ndarray, text: str) -> np.ndarray:
    img = img.copy()
    cv2.putText(img, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def run_demo(args: argparse.Namespace) -> int:
    """Degrade scikit-image's astronaut, halve it, restore it ×2, write degraded/restored/before_after.png
    (the three photos side by side, and the face close up under them)."""
    from skimage import data

    from restoration.errors import RestorationError

    clean = data.astronaut()  # 512×512 RGB, public domain (NASA)
    rng = np.random.default_rng(args.seed)
    try:
        from restoration.degrade import degrade

        # GFPGAN's training degradation (blur, down, noise, JPEG) at full size, then half size as input
        bad, how = degrade(clean, "gfpgan", rng), "restoration.degrade preset 'gfpgan'"
    except ImportError:
        bad, how = _builtin_degrade(clean, rng), "built-in blur + noise + JPEG q30"
    degraded = cv2.resize(bad, (256, 256), interpolation=cv2.INTER_AREA)
    t0 = time.perf_counter()
    try:
        restorer = _build_restorer(args)
    except (RestorationError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    load_s = time.perf_counter() - t0
    options = options_from_args(args, upscale=2, output_format="png", detection_threshold=0.5)
    result = restorer.restore_image(degraded, options)
    out: Path = args.output
    out.mkdir(parents=True, exist_ok=True)
    _write_rgb(out / "degraded.png", degraded)
    _write_rgb(out / "restored.png", result.image)
    up = cv2.resize(degraded, (result.width, result.height), interpolation=cv2.INTER_NEAREST)
    panels = [_label(up, "degraded (input)"), _label(result.image, "restored"), _label(clean, "original")]
    sep = np.full((result.height, 4, 3), 255, np.uint8)
    rows = [np.hstack([panels[0], sep, panels[1], sep, panels[2]])]
    if result.faces:  # a second row: the first face, close up, in the same three images
        x1, y1, x2, y2 = (v * result.upscale for v in result.faces[0]["box"])
        half = 0.8 * max(x2 - x1, y2 - y1)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        box = [int(max(0, cx - half)), int(max(0, cy - half)), int(min(result.width, cx + half)),
               int(min(result.height, cy + half))]
        zoom = [cv2.resize(p[box[1]:box[3], box[0]:box[2]], (p.shape[1], p.shape[0]), interpolation=cv2.INTER_CUBIC)
                for p in (up, result.image, clean)]
        rows += [np.full((4, rows[0].shape[1], 3), 255, np.uint8), np.hstack([zoom[0], sep, zoom[1], sep, zoom[2]])]
    _write_rgb(out / "before_after.png", np.vstack(rows))
    print(f"degraded with {how} (seed {args.seed}), restored x2 on {restorer.device}")
    print(_model_line(restorer))
    if restorer.is_classical:
        print("NOTE: this is the non-learned stand-in; faces are denoised and sharpened, not re-synthesised.")
    print(f"faces: {len(result.faces)}; models loaded in {load_s * 1000:.0f} ms")
    print("timings (ms): " + ", ".join(f"{k} {v:.0f}" for k, v in result.timings.items()))
    for name in ("degraded.png", "restored.png", "before_after.png"):
        print(f"wrote {out / name}")
    return 0
