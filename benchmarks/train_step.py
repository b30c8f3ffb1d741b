"""Training throughput on the CPU: a generator step alone and the full GAN step, in fp32 and bf16.

    .venv/bin/python benchmarks/train_step.py [--sizes 256,512] [--precisions fp32,bf16] [--steps 4] [--warmup 1]
        [--compile] [--device cpu|cuda] [--batch N] [--json out/train_step.json]

For each size (256 at batch 8, 512 at batch 4) and precision (fp32, or bf16 = ``torch.autocast("cpu",
bfloat16)``; channels_last in both), on random inputs (``lq``, ``gt`` in [-1, 1], the one-hot mask of
random part labels), it prints:

1. img/s of a generator step alone: G forward + L1 + backward + Adam step;
2. img/s of the full GAN step exactly as training runs it: ``restoration.training.loop.GanStep`` with the
   ``small`` generator and the loss configuration of ``restoration/training/configs/cpu512_gan.yaml``
   (L1, MS-SSIM, identity and its features when ``WEIGHTS_DIR`` has them, feature matching, adversarial,
   lazy R1). R1 steps are timed apart and amortised: (r1_every − 1 plain steps + 1 R1 step) / r1_every.
   Data loading and the EMA update are not in it;
3. the bf16 / fp32 speed ratio of each;
4. the full step's ms per part (GanStep's ``record_function`` labels, CPU time totals from one profiled
   plain step and one profiled R1 step, amortised the same way), and the time outside the labels.

``--compile`` also times the generator step with G ``torch.compile``d, against eager in the same run.
``--device cuda`` times the same steps on the GPU (``--batch`` sets the batch, e.g. 16 there; the per-part
table is CPU time and is left out there), as ``scripts/gpu_check.sh`` does.
It also says whether this CPU computes bf16 in hardware (AMX-BF16 / AVX512-BF16): elsewhere oneDNN
emulates bf16 and expect a ratio below 1. Targets for the full GAN step on AMX machines: ≥ 3 img/s at 512
and ≥ 12 img/s at 256.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the profiler's "gpuGetDeviceCount failed" on a CPU host
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from restoration.generator import generator_mask  # noqa: E402
from restoration.parsing import NUM_PART_CLASSES  # noqa: E402
from restoration.paths import default_weights_dir  # noqa: E402
from restoration.precision import cpu_bf16_native  # noqa: E402
from restoration.training import losses as L  # noqa: E402
from restoration.training.config import RunConfig, load_config  # noqa: E402
from restoration.training.loop import STEP_PARTS, GanStep, build_models, loss_networks  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "restoration" / "training" / "configs" / "cpu512_gan.yaml"
BATCH = {256: 8, 512: 4}
TARGET = {256: 12.0, 512: 3.0}  # full GAN step, img/s, on AMX machines
FMT = torch.channels_last


DEVICE = torch.device("cpu")  # --device


def random_batch(size: int, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """lq, gt (N×3×S×S in [-1, 1]) and the generator's mask (N×C×S/2×S/2) of random part labels."""
    gen = torch.Generator().manual_seed(0)
    lq, gt = (torch.rand(batch, 3, size, size, generator=gen) * 2 - 1 for _ in range(2))
    mask = generator_mask(torch.randint(0, NUM_PART_CLASSES, (batch, size, size), generator=gen))
    return lq.to(DEVICE), gt.to(DEVICE), mask.to(DEVICE)


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def seconds_per_call(fn: Callable[[], object], n: int) -> float:
    _sync()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    _sync()
    return (time.perf_counter() - t) / max(n, 1)


def profiled(fn: Callable[[], object]) -> dict[str, float]:
    """ms of each GanStep part in one call of ``fn``, plus the whole step (wall) and "other" (outside the parts);
    nothing on CUDA (the profile is of CPU time)."""
    if DEVICE.type != "cpu":
        return {}
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        fn()
        wall = (time.perf_counter() - t) * 1000
    ms = {e.key: e.cpu_time_total / 1000 for e in prof.key_averages() if e.key in STEP_PARTS}
    return {**ms, "other": wall - sum(ms.values()), "whole step (profiled)": wall}


def g_step_seconds(cfg: RunConfig, amp: torch.autocast, data: tuple[torch.Tensor, ...], steps: int, warmup: int,
                   compiled: bool = False) -> float:
    """Seconds per generator step alone: G forward + L1 + backward + Adam step (G ``torch.compile``d when
    ``compiled``: the first warm-up step pays the compilation)."""
    g, _, opt, _ = build_models(cfg, DEVICE, FMT)
    fwd = torch.compile(g) if compiled else g
    lq, gt, mask = data

    def g_step() -> None:
        with amp:
            loss = L.l1(fwd(lq, mask), gt)
        opt.zero_grad(set_to_none=True)
        loss.float().backward()
        opt.step()

    seconds_per_call(g_step, warmup)
    return seconds_per_call(g_step, steps)


def bench(size: int, precision: str, steps: int, warmup: int, weights_dir: Path, compiled: bool = False,
          batch: int | None = None) -> dict[str, object]:
    batch = batch or BATCH[size]
    cfg = load_config(CONFIG, {"data": {"size": size, "batch_size": batch}})
    lc = cfg.loss
    amp = torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    lq, gt, mask = (t.contiguous(memory_format=FMT) for t in random_batch(size, batch))

    g_ips = batch / g_step_seconds(cfg, amp, (lq, gt, mask), steps, warmup)
    if compiled:
        t = time.perf_counter()
        c_ips = batch / g_step_seconds(cfg, amp, (lq, gt, mask), steps, max(warmup, 1), compiled=True)
        print(f"{size} px, batch {batch}, {precision}: G step with torch.compile'd G {c_ips:.2f} img/s "
              f"({c_ips / g_ips:.2f}x eager; {time.perf_counter() - t:.0f} s with the compilation)", flush=True)

    # the full GAN step, R1 steps timed apart
    g, disc, opt_g, opt_d = build_models(cfg, DEVICE, FMT)
    id_loss, vgg = loss_networks(lc, weights_dir, DEVICE)
    step = GanStep(g, disc, opt_g, opt_d, lc, cfg.optim.grad_clip, id_loss=id_loss, vgg=vgg, amp=amp,
                   memory_format=FMT)
    its = range(lc.adv_start, lc.adv_start + 2 * lc.r1_every + 1)
    plain_it = next((i for i in its if not step.r1_due(i)), None)
    r1_it = next((i for i in its if step.r1_due(i)), None)
    rate = 0.0 if r1_it is None else 1.0 if plain_it is None else 1 / lc.r1_every
    kinds = {k: it for k, it in (("plain", plain_it), ("r1", r1_it)) if it is not None}
    per_kind, parts = {}, {}
    for kind, it in kinds.items():
        def run(it: int = it) -> None:
            step(it, lq, gt, mask)
        seconds_per_call(run, warmup if kind == "plain" else min(warmup, 1))
        per_kind[kind] = seconds_per_call(run, steps if kind == "plain" else max(1, steps // lc.r1_every))
        parts[kind] = profiled(run)
    weight = {"plain": 1 - rate, "r1": rate}
    gan_s = sum(weight[k] * s for k, s in per_kind.items())
    names = [p for p in (*STEP_PARTS, "other", "whole step (profiled)") if any(p in v for v in parts.values())]
    ms = {p: sum(weight[k] * v.get(p, 0.0) for k, v in parts.items()) for p in names}
    on = [k for k in ("l1", "ms_ssim", "identity", "id_feat", "vgg", "fm", "adv") if lc.weight(k)
          and not (k in ("identity", "id_feat") and id_loss is None) and not (k == "vgg" and vgg is None)]
    print(f"{size} px, batch {batch}, {precision}: G step {g_ips:.2f} img/s; GAN step {batch / gan_s:.2f} img/s "
          f"({' + '.join(on)}; R1 every {lc.r1_every}: plain {per_kind.get('plain', 0):.2f} s, "
          f"R1 {per_kind.get('r1', 0):.2f} s)", flush=True)
    return {"g": g_ips, "gan": batch / gan_s, "ms": ms, "batch": batch}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--steps", type=int, default=4, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--compile", action="store_true",
                    help="also time the generator step with G torch.compile'd (inductor's default mode)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--batch", type=int, help="images per step (default: 8 at 256, 4 at 512)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda":  # as training sets them (restoration/training/loop.py, place_process)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    sizes = [int(s) for s in args.sizes.split(",")]
    precisions = args.precisions.split(",")
    weights_dir = default_weights_dir()
    print(f"CPU bf16 in hardware (AMX-BF16 / AVX512-BF16): {cpu_bf16_native()}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; weights: {weights_dir}")
    res: dict[tuple[int, str], dict] = {}
    for s in sizes:
        for p in precisions:
            res[s, p] = bench(s, p, args.steps, args.warmup, weights_dir, args.compile, args.batch)
            if args.json:  # after each one: a run cut short keeps what it measured
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps([
                    {"size": s, "precision": p, "device": str(DEVICE), "batch": r["batch"],
                     "g_step_img_s": round(r["g"], 2), "gan_step_img_s": round(r["gan"], 2)}
                    for (s, p), r in res.items()], indent=1))

    print("\nsize  batch  precision  G step img/s  GAN step img/s  target (AMX)")
    for (s, p), r in res.items():
        print(f"{s:<5} {r['batch']:<6} {p:<10} {r['g']:>12.2f}  {r['gan']:>14.2f}  ≥ {TARGET[s]:g}")
    for s in sizes:
        if (s, "fp32") in res and (s, "bf16") in res:
            a, b = res[s, "fp32"], res[s, "bf16"]
            print(f"bf16 / fp32 at {s}: G step {b['g'] / a['g']:.2f}x, GAN step {b['gan'] / a['gan']:.2f}x")
    cols = list(res)
    print("\nms per GAN step (R1 amortised)" + "".join(f"  {f'{s} {p}':>10}" for s, p in cols))
    for part in dict.fromkeys(p for r in res.values() for p in r["ms"]):
        print(f"{part:<30}" + "".join(f"  {res[c]['ms'].get(part, 0.0):>10.0f}" for c in cols))


if __name__ == "__main__":
    main()
