"""The training loop: resumable GAN training of the restoration generator, in time-boxed chunks.

Why chunks: a GPU session gives ≤ 10 minutes per command and carries ≤ 64 MiB in and ≤ 16 MiB per file
out, so a run is a chain of ≤ 9-minute chunks, each resuming from the previous checkpoint folder
(``restoration/training/checkpoint.py``).

* Exact resume: every random draw of step k is a function of (seed, k, rank): the data (StepSampler) and
  torch's RNG, which is re-seeded at every step; so N steps == N/2 + resume + N/2 (fp32 checkpoint).
* Time budget: ``max_minutes`` counts from process start (:data:`T_START`, set when this module is first
  imported); the loop stops early enough to write the checkpoint before it ends (it measures how long
  steps and saves take). SIGTERM and SIGINT also save and exit.
* One iteration is :class:`GanStep`: the generator step (reconstruction, identity and perceptual terms, one
  D pass over [fake; real] for the adversarial and feature-matching terms), then the discriminator step
  with lazy R1. Its parts carry ``torch.profiler.record_function`` labels (:data:`STEP_PARTS`) so that a
  profiler attributes the step's time (``benchmarks/train_step.py`` times it and prints them).
* bf16 autocast where the hardware computes bf16 (``restoration/precision.py``); EMA generator; JSONL log
  (``<out>/ckpt/log.jsonl``, so it travels with the checkpoint) of losses and periodic validation
  (``restoration/training/validation.py``).
* Data parallel under torchrun: one process per GPU, each with its own slice of every step's samples;
  gradients are averaged with one all-reduce per model and step (not torch's DDP wrapper: the alternating
  G/D updates and R1's double backward are simpler and safe this way). Rank 0 logs and saves.

"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.profiler import record_function
from torch.utils.data import DataLoader

from restoration.errors import WeightsMissing
from restoration.generator import Generator, save_generator
from restoration.paths import default_weights_dir
from restoration.precision import resolve_precision
from restoration.training import losses as L
from restoration.training.checkpoint import load_checkpoint, restore_models, save_checkpoint
from restoration.training.config import (
    LossConfig,
    RunConfig,
    discriminator_config,
    generator_config,
    preset_from_config,
)
from restoration.training.data import Augment, MaskPolicy, PairDataset, StepSampler, read_pack, worker_init
from restoration.training.diffaugment import diff_augment
from restoration.training.discriminator import Discriminator
from restoration.training.validation import Validator

T_START = time.monotonic()
#: the record_function labels of one GanStep, in order (R1 only every ``loss.r1_every`` steps)
STEP_PARTS = ("G forward", "losses", "D (G step)", "G backward+Adam", "D (D step)", "R1", "D backward+Adam")


def _allreduce_grads(params: list[torch.nn.Parameter], world: int) -> None:
    grads = [p.grad for p in params if p.grad is not None]
    if world == 1 or not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    flat /= world
    off = 0
    for g in grads:
        g.copy_(flat[off:off + g.numel()].view_as(g))
        off += g.numel()


@torch.no_grad()
def _ema_update(ema: torch.nn.Module, g: torch.nn.Module, beta: float) -> None:
    for pe, p in zip(ema.parameters(), g.parameters(), strict=True):
        pe.lerp_(p.detach(), 1 - beta)
    for be, b in zip(ema.buffers(), g.buffers(), strict=True):
        be.copy_(b)


def _append_log(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def build_models(cfg: RunConfig, device: torch.device, memory_format: torch.memory_format
                 ) -> tuple[Generator, Discriminator, torch.optim.Adam, torch.optim.Adam]:
    """G and D initialised from ``cfg.seed`` (G first), on ``device``, and their Adam optimisers."""
    oc = cfg.optim
    torch.manual_seed(cfg.seed)
    g = Generator(generator_config(cfg)).to(device, memory_format=memory_format)
    disc = Discriminator(discriminator_config(cfg)).to(device, memory_format=memory_format)
    opt_g = torch.optim.Adam(g.parameters(), lr=oc.lr_g, betas=oc.betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=oc.lr_d, betas=oc.betas)
    return g, disc, opt_g, opt_d


def loss_networks(lc: LossConfig, weights_dir: Path, device: torch.device, quiet: bool = False
                  ) -> tuple[L.IdentityLoss | None, L.VGGLoss | None]:
    """The frozen networks the ``loss`` config asks for, None for each that is off or lacks weights
    (said on stdout unless ``quiet``): identity (MobileFaceNet) and VGG19."""
    id_loss = None
    if lc.identity or lc.id_feat:
        try:
            id_loss = L.IdentityLoss(weights_dir, device)
        except WeightsMissing as e:  # e.g. a GPU chunk that did not carry the identity weights
            if not quiet:
                print(f"identity losses off: {e}")
    vgg = None
    if lc.vgg:
        p = L.VGGLoss.available(weights_dir)
        vgg = L.VGGLoss(p, device) if p else None
        if vgg is None and not quiet:
            print(f"loss.vgg = {lc.vgg} ignored: no {weights_dir}/vgg/vgg19.pth")
    return id_loss, vgg


class GanStep:
    """One training iteration, exactly as the loop runs it; returns the loss terms (tensors).

    Generator step: G forward; L1, MS-SSIM, identity / identity features, VGG (each when on); one D pass
    over [fake; real] (D frozen, reals without gradient) for the adversarial term (from ``adv_start``) and
    feature matching; the weighted sum backward, gradients all-reduced, clipped, Adam step. Then, when the
    adversarial term is on, the discriminator step on [real; fake] with lazy R1 every ``r1_every`` steps
    (weighted by ``r1_gamma / 2 * r1_every``). The caller seeds torch's RNG; the EMA update is the loop's.
    A class so that the loop and benchmarks run the same code, with the models, optimisers, loss config,
    loss networks, autocast context and memory format held once.
    """

    def __init__(self, g: torch.nn.Module, disc: torch.nn.Module, opt_g: torch.optim.Optimizer,
                 opt_d: torch.optim.Optimizer, loss: LossConfig, grad_clip: float = 0.0, *,
                 id_loss: torch.nn.Module | None = None, vgg: torch.nn.Module | None = None,
                 amp: contextlib.AbstractContextManager | None = None,
                 memory_format: torch.memory_format = torch.channels_last, world: int = 1) -> None:
        self.g, self.disc, self.opt_g, self.opt_d = g, disc, opt_g, opt_d
        self.loss, self.grad_clip = loss, grad_clip
        self.id_loss, self.vgg = id_loss, vgg
        self.amp = amp if amp is not None else contextlib.nullcontext()
        self.memory_format, self.world = memory_format, world
        self.device = next(g.parameters()).device

    def adv_on(self, it: int) -> bool:
        """Whether iteration ``it`` has the adversarial term (and so a discriminator step)."""
        return self.loss.adv > 0 and it >= self.loss.adv_start

    def r1_due(self, it: int) -> bool:
        """Whether iteration ``it``'s discriminator step adds the (lazy) R1 penalty."""
        return self.adv_on(it) and bool(self.loss.r1_gamma) and it % self.loss.r1_every == 0

    def __call__(self, it: int, lq: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor
                 ) -> dict[str, torch.Tensor]:
        lc, fmt, g, disc = self.loss, self.memory_format, self.g, self.disc
        lq = lq.to(self.device, non_blocking=True).contiguous(memory_format=fmt)
        gt = gt.to(self.device, non_blocking=True).contiguous(memory_format=fmt)
        mask = mask.to(self.device, non_blocking=True).contiguous(memory_format=fmt)
        adv_on = self.adv_on(it)

        # --- generator step
        disc.requires_grad_(False)
        with self.amp:
            with record_function("G forward"):
                fake = g(lq, mask)
            with record_function("losses"):
                terms = {"l1": L.l1(fake, gt)}
                if lc.ms_ssim:
                    terms["ms_ssim"] = L.ms_ssim_loss(fake, gt)
                if self.id_loss is not None:
                    terms["identity"], terms["id_feat"] = self.id_loss(fake, gt)
                if self.vgg is not None:
                    terms["vgg"] = self.vgg(fake, gt)
            if adv_on or lc.fm:
                with record_function("D (G step)"):
                    # one D pass over [fake; real]: D is frozen and the reals need no gradient
                    n = fake.shape[0]
                    both = torch.cat([fake, gt]) if lc.fm else fake
                    both = diff_augment(both, lc.diffaug, pairs=2 if lc.fm else 1)
                    logits, feats = disc(both, features=True)
                    if adv_on:
                        terms["adv"] = L.g_adv_loss(logits[:n])
                    if lc.fm:
                        terms["fm"] = L.feature_matching([f[:n] for f in feats], [f[n:] for f in feats])
        with record_function("G backward+Adam"):
            total = sum(lc.weight(k) * v.float() for k, v in terms.items() if lc.weight(k))
            self.opt_g.zero_grad(set_to_none=True)
            total.backward()
            _allreduce_grads(list(g.parameters()), self.world)
            if self.grad_clip:
                torch.nn.utils.clip_grad_norm_(g.parameters(), self.grad_clip)
            self.opt_g.step()
        terms["total"] = total

        # --- discriminator step (+ lazy R1)
        if adv_on:
            with record_function("D (D step)"):
                disc.requires_grad_(True)
                with self.amp:
                    logits = disc(diff_augment(torch.cat([gt, fake.detach()]), lc.diffaug, pairs=2))
                    ld = L.d_adv_loss(logits[: gt.shape[0]], logits[gt.shape[0]:])
            loss_d = ld
            if self.r1_due(it):
                with record_function("R1"):
                    r1 = L.r1_penalty(disc, gt)
                terms["r1"] = r1
                loss_d = loss_d + r1 * (lc.r1_gamma / 2 * lc.r1_every)
            with record_function("D backward+Adam"):
                self.opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                _allreduce_grads(list(disc.parameters()), self.world)
                self.opt_d.step()
            terms["d"] = ld
        return terms


def train(cfg: RunConfig, out: Path, resume: Path | None = None, init: Path | None = None,
          max_minutes: float | None = None, max_iters: int | None = None,
          weights_dir: Path | None = None) -> dict[str, Any]:
    """Run (or continue) training until ``max_iters`` or the time budget; returns the last log row."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    else:
        device = torch.device("cpu")
    # bf16 autocast where the hardware computes bf16 (CUDA, AMX / AVX512-BF16 CPUs), else fp32
    precision = resolve_precision(cfg.train.precision, device)
    if rank == 0:
        print(f"precision: {precision} on {device}")
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    fmt = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    weights_dir = Path(weights_dir or default_weights_dir())
    seed, d, lc, oc, tc = cfg.seed, cfg.data, cfg.loss, cfg.optim, cfg.train
    max_iters = max_iters or tc.max_iters
    out = Path(out)
    ckpt_dir = out / "ckpt"
    log_path = ckpt_dir / "log.jsonl"

    g, disc, opt_g, opt_d = build_models(cfg, device, fmt)
    g_ema = copy.deepcopy(g).eval().requires_grad_(False)
    models = {"G": g, "G_ema": g_ema, "D": disc}
    opts = {"opt_G": opt_g, "opt_D": opt_d}

    it, train_seconds = 0, 0.0
    if resume or init:
        state, tensors = load_checkpoint(Path(resume or init))  # type: ignore[arg-type]
        had_opt = restore_models(models, opts if resume else None, state, tensors)
        if resume:
            it, train_seconds = state["iteration"], state.get("train_seconds", 0.0)
            if rank == 0:
                print(f"resumed at iteration {it} (optimiser state {'restored' if had_opt else 'reset'})")
            if rank == 0 and Path(resume) != ckpt_dir and (Path(resume) / "log.jsonl").is_file():
                ckpt_dir.mkdir(parents=True, exist_ok=True)
                if not log_path.exists():
                    shutil.copy2(Path(resume) / "log.jsonl", log_path)

    entries = read_pack(d.pack, "train")
    ds = PairDataset(entries, d.size, preset_from_config(d.preset), seed, MaskPolicy(**d.mask_policy),
                     Augment(**d.augment))
    per_rank = d.batch_size // world
    sampler = StepSampler(len(ds), per_rank, seed, it, rank, world)
    workers = d.workers
    # spawn, not fork: a worker forked after the parent ran OpenCV / onnxruntime / OpenMP thread pools
    # (validation does) can hang forever on a lock inherited from a thread that does not exist in it
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=workers, pin_memory=device.type == "cuda",
                        worker_init_fn=worker_init, persistent_workers=workers > 0,
                        prefetch_factor=4 if workers else None,
                        multiprocessing_context="spawn" if workers else None)

    id_loss, vgg = loss_networks(lc, weights_dir, device, quiet=rank != 0)
    step = GanStep(g, disc, opt_g, opt_d, lc, oc.grad_clip, id_loss=id_loss, vgg=vgg, amp=amp,
                   memory_format=fmt, world=world)
    validator = Validator(cfg, device, weights_dir) if rank == 0 and tc.val_every else None
    if rank == 0:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        if validator is not None and it == 0:
            _append_log(log_path, {"iter": 0, "val_input": validator.baseline})

    stop = {"flag": False}
    # SIGTERM / SIGINT: finish the step, save, return (the loader's workers are in their own process group,
    # so a Ctrl-C or a kill of the chunk's group does not reach them); the caller's handlers come back after
    previous = {sig: signal.signal(sig, lambda *_: stop.update(flag=True)) for sig in (signal.SIGTERM, signal.SIGINT)}
    deadline = T_START + max_minutes * 60 if max_minutes else math.inf
    save_cost, step_cost = 2.0, 0.0
    last_save = time.monotonic()
    ema_nimg = oc.ema_halflife_kimg * 1000
    sums: dict[str, float] = {}
    t_log, n_log = time.monotonic(), 0
    last: dict[str, Any] = {}

    def save() -> None:
        nonlocal save_cost, last_save
        t = time.monotonic()
        if rank == 0:
            st = {"iteration": it, "config": cfg.to_dict(), "train_seconds": train_seconds,
                  "kimg": it * d.batch_size / 1000, "model_version": cfg.model_version}
            save_checkpoint(ckpt_dir, st, models, opts if cfg.checkpoint.optimizer else None, cfg.checkpoint.fp16)
            save_generator(g_ema, out / "g_ema.safetensors", f"{cfg.model_version}-it{it}", fp16=True)
        save_cost = max(save_cost, time.monotonic() - t)
        last_save = time.monotonic()

    try:
        data_iter = iter(loader)
        while it < max_iters:
            now = time.monotonic()
            if stop["flag"] or now + 2 * step_cost + 2 * save_cost + 3 > deadline:
                break
            t_step = now
            batch = next(data_iter)
            torch.manual_seed(seed * 1_000_003 + it * world + rank)
            terms = step(it, batch["lq"], batch["gt"], batch["mask"])

            # --- EMA (StyleGAN2: half-life in images, ramped up at the start)
            nimg = (it + 1) * d.batch_size
            half = min(ema_nimg, nimg * oc.ema_rampup) if oc.ema_rampup else ema_nimg
            _ema_update(g_ema, g, 0.5 ** (d.batch_size / max(half, 1e-8)))
            it += 1

            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n_log += 1
            dt = time.monotonic() - t_step
            train_seconds += dt
            step_cost = dt if step_cost == 0 else 0.9 * step_cost + 0.1 * dt
            if rank == 0 and (it % tc.log_every == 0 or it == max_iters):
                el = time.monotonic() - t_log
                last = {"iter": it, "kimg": round(nimg / 1000, 3), **{k: v / n_log for k, v in sums.items()},
                        "img_per_s": round(n_log * d.batch_size / max(el, 1e-9), 2),
                        "elapsed_s": round(time.monotonic() - T_START, 1)}
                _append_log(log_path, last)
                print(json.dumps(last), flush=True)
                sums, n_log, t_log = {}, 0, time.monotonic()
            val_fits = time.monotonic() + 4 * save_cost < deadline
            if validator is not None and it % tc.val_every == 0 and val_fits:
                scores, _ = validator.run(g_ema)
                _append_log(log_path, {"iter": it, "val": scores})
                print(json.dumps({"iter": it, "val": scores}), flush=True)
            if time.monotonic() - last_save > tc.ckpt_minutes * 60:
                save()
        save()
    finally:  # also after an error: the caller gets its Ctrl-C back
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if validator is not None:
        import cv2

        scores, outs = validator.run(g_ema, with_niqe=True)
        _append_log(log_path, {"iter": it, "val": scores, "final": True})
        cv2.imwrite(str(out / "samples.png"), validator.grid(outs)[..., ::-1])
        last = dict(last, val=scores)
    if world > 1:
        dist.barrier()
    return dict(last, iter=it)


__all__ = ["T_START", "STEP_PARTS", "build_models", "loss_networks", "GanStep", "train"]
