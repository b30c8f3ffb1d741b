"""The pipeline's generator in fp32 and in bf16 on the same validation faces: quality and speed.

    .venv/bin/python benchmarks/precision.py [--model M.safetensors] [--limit 31] [--fidelity 1,0.5]

Each validation face of the pack (``data/pack``, person-disjoint from training) is degraded with the
``mixed`` preset at a fixed seed and restored through ``Restorer.restore_image(aligned=True)`` — the
service's own path: parse, generate, colour-match, fidelity blend — once per precision and fidelity.
Prints, per run, PSNR / SSIM against the clean face and the generator's ms per face, then the bf16 − fp32
PSNR difference (the acceptance bound is 0.1 dB) and the speed ratio. On a CPU without AMX-BF16 or
AVX512-BF16 oneDNN emulates bf16: expect the same quality and a ratio below 1 there.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np

from restoration.degrade import degrade
from restoration.metrics import psnr, ssim
from restoration.options import RestoreOptions
from restoration.paths import default_weights_dir
from restoration.pipeline import Restorer
from restoration.precision import cpu_bf16_native
from restoration.training.data import read_pack, read_rgb

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="generator weights; default: the shipped model")
    ap.add_argument("--pack", type=Path, default=REPO / "data" / "pack")
    ap.add_argument("--limit", type=int, default=0, help="at most this many validation faces (0 = all)")
    ap.add_argument("--fidelity", default="1", help="comma-separated fidelity values to compare")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    entries = read_pack(args.pack, "val")[: args.limit or None]
    gt = [read_rgb(e.face, 512) for e in entries]
    lq = [degrade(g, "mixed", np.random.default_rng(args.seed + i)) for i, g in enumerate(gt)]
    print(f"{len(gt)} validation faces, mixed preset; CPU bf16 in hardware: {cpu_bf16_native()}")
    print(f"input: PSNR {statistics.fmean(psnr(a, b) for a, b in zip(lq, gt, strict=True)):.2f} dB")
    fids = [float(f) for f in args.fidelity.split(",")]
    res: dict[tuple[str, float], float] = {}
    speed: dict[str, float] = {}
    for precision in ("fp32", "bf16"):
        r = Restorer(default_weights_dir(), device="cpu", model_path=args.model, precision=precision,
                     background="none")
        for fid in fids:
            opts = RestoreOptions(aligned=True, upscale=1, fidelity=fid)
            outs, gen_ms = [], []
            for face in lq:
                out = r.restore_image(face, opts)
                outs.append(out.image)
                gen_ms.append(out.timings["generate"])
            p = statistics.fmean(psnr(o, g) for o, g in zip(outs, gt, strict=True))
            s = statistics.fmean(ssim(o, g) for o, g in zip(outs, gt, strict=True))
            res[precision, fid] = p
            speed[precision] = statistics.median(gen_ms)
            print(f"{r.model_version} {precision} fidelity {fid}: PSNR {p:.3f} dB, SSIM {s:.4f}, "
                  f"generator {speed[precision]:.0f} ms/face (median)")
    for fid in fids:
        d = res["bf16", fid] - res["fp32", fid]
        print(f"fidelity {fid}: bf16 - fp32 = {d:+.3f} dB ({'within' if abs(d) <= 0.1 else 'OUTSIDE'} 0.1 dB)")
    print(f"generator speed bf16 / fp32: {speed['fp32'] / speed['bf16']:.2f}x")


if __name__ == "__main__":
    main()
