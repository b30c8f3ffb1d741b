"""Resumable GAN training of the restoration generator, in time-boxed chunks: the command line.

    python -m restoration.training.train --config restoration/training/configs/tiny.yaml --out out/tiny \
        [--resume out/tiny/ckpt] [--init stage1/ckpt] [--max-minutes 9] [--max-iters N]
    python -m restoration.training.train --export CKPT --out g.safetensors    # the shippable generator
    python -m restoration.training.train --compact CKPT --out training/resume # what the next session resumes

Only the entry point lives here; the pieces have their own modules: the loop, one GAN step and the time
budget in ``restoration/training/loop.py``, checkpoints (format, compact form, export) in
``restoration/training/checkpoint.py``, validation in ``restoration/training/validation.py``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch.distributed as dist

from restoration.generator import save_generator
from restoration.training.checkpoint import compact_checkpoint, generator_from_checkpoint
from restoration.training.config import load_config
from restoration.training.loop import train


def main() -> None:
    """Parse the command line; export, compact, or train (under torchrun too)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="run folder (with --export: the .safetensors)")
    ap.add_argument("--export", type=Path, metavar="CKPT",
                    help="only write CKPT's G-EMA to --out as a restoration.generator checkpoint")
    ap.add_argument("--compact", type=Path, metavar="CKPT",
                    help="only write CKPT's G-EMA + D (fp16, no optimiser) to the folder --out, to commit")
    ap.add_argument("--resume", type=Path, help="checkpoint folder to continue (iteration, optimisers, ...)")
    ap.add_argument("--init", type=Path, help="checkpoint folder to start from (weights only: stage 2)")
    ap.add_argument("--max-minutes", type=float, help="wall-clock budget from process start")
    ap.add_argument("--max-iters", type=int)
    ap.add_argument("--pack", help="override data.pack")
    ap.add_argument("--weights-dir", type=Path)
    args = ap.parse_args()
    if args.export:
        state = json.loads((args.export / "state.json").read_text())
        version = f"{state['config']['model_version']}-it{state['iteration']}"
        save_generator(generator_from_checkpoint(args.export), args.out, version, fp16=True)
        return
    if args.compact:
        compact_checkpoint(args.compact, args.out)
        return
    if args.config:
        cfg = load_config(args.config)
    elif args.resume:  # go on with the run's own configuration
        cfg = load_config(None, json.loads((args.resume / "state.json").read_text())["config"])
    else:
        ap.error("--config is required (or --resume, to go on with the checkpoint's own configuration)")
    if args.pack:
        cfg.data.pack = args.pack
    r = train(cfg, args.out, args.resume, args.init, args.max_minutes, args.max_iters, args.weights_dir)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"done": r}))
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
