"""Append a training chunk's row to training/LOG.md and keep its validation grid beside the checkpoint.

Reads the compact checkpoint's ``state.json`` and ``log.jsonl`` (the trainer's own validation: G-EMA on
the pack's validation faces, ``mixed`` preset at fixed seeds, at the training size; NIQE on the final one),
writes ``<ckpt>/samples.jpg`` (input | output | ground truth) from the run's ``samples.png``, and inserts
one row into the chunk table of ``training/LOG.md``:

    .venv/bin/python scripts/log_chunk.py --ckpt training/resume --run out/train --from-iter 0 --cpu-min 140
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
HEADER = ("| date | chunk | stage (config) | iterations | images seen | CPU min | GPU min "
          "| val PSNR / SSIM / id cos / NIQE | notes |")


def fmt_val(v: dict | None) -> str:
    if not v:
        return "–"
    parts = [f"{v['psnr']:.2f}", f"{v['ssim']:.3f}", f"{v.get('id_cos', float('nan')):.3f}"]
    parts.append(f"{v['niqe']:.2f}" if "niqe" in v else "–")
    return " / ".join(parts)


def insert_row(log_md: Path, cells: list[str]) -> int:
    """Insert ``cells`` as the last row of the chunk table; returns the chunk number it got."""
    lines = log_md.read_text().splitlines()
    i = lines.index(HEADER)
    j = i + 2
    while j < len(lines) and lines[j].startswith("|"):
        j += 1
    chunk = j - (i + 2) + 1
    cells[1] = str(chunk)
    lines.insert(j, "| " + " | ".join(cells) + " |")
    log_md.write_text("\n".join(lines) + "\n")
    return chunk


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", type=Path, default=ROOT / "training" / "resume")
    ap.add_argument("--run", type=Path, default=ROOT / "out" / "train")
    ap.add_argument("--from-iter", type=int, required=True)
    ap.add_argument("--cpu-min", type=float, default=0.0)
    ap.add_argument("--gpu-min", type=float, default=0.0)
    ap.add_argument("--note", default="")
    ap.add_argument("--log", type=Path, default=ROOT / "training" / "LOG.md")
    args = ap.parse_args()
    state = json.loads((args.ckpt / "state.json").read_text())
    rows = [json.loads(x) for x in (args.ckpt / "log.jsonl").read_text().splitlines() if x.strip()]
    vals = [r for r in rows if "val" in r and r["iter"] <= state["iteration"]]
    base = next((r["val_input"] for r in rows if "val_input" in r), None)
    last = vals[-1]["val"] if vals else None
    samples = args.run / "samples.png"
    if samples.is_file():
        img = cv2.imread(str(samples))
        img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(args.ckpt / "samples.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    cfg = state["config"]
    batch = cfg["data"]["batch_size"]
    n_iter = state["iteration"] - args.from_iter
    loss = cfg["loss"]
    terms = "+".join(k for k in ("l1", "ms_ssim", "identity", "id_feat", "fm", "adv") if loss.get(k))
    note = args.note or f"{terms}; {cfg['data']['preset']}, batch {batch}; input {fmt_val(base)}"
    if cfg["data"].get("val_mask", "clean") != "clean":  # the val column is conditioned on other masks
        note += f"; val masks: {cfg['data']['val_mask']}"
    policy = cfg["data"].get("mask_policy", {})
    stage = "masks" if policy.get("corrupt") or policy.get("degraded") else "GAN" if loss.get("adv") else "warm-up"
    cells = [dt.date.today().isoformat(), "?", f"{cfg['model_version']} ({stage})",
             f"{args.from_iter:,} → {state['iteration']:,}", f"{n_iter * batch:,}", f"{args.cpu_min:.0f}",
             f"{args.gpu_min:.0f}", fmt_val(last), note]
    chunk = insert_row(args.log, cells)
    print(f"training/LOG.md: chunk {chunk}: " + " | ".join(cells[2:]))


if __name__ == "__main__":
    main()
