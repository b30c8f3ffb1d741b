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

:func:`train` reads as BasicSR's ``train_pipeline``: each concern it used to hold inline is a piece of its
own, in the order it runs: :func:`place_process` (device, torchrun), :class:`Trainer` (models, optimisers,
one step with EMA, validation, saving), :func:`load_resume` (continue a checkpoint, or start from one's
weights), :func:`train_loader`, :class:`Budget` (iterations, deadline, signals, when to save) and
:class:`LossLog` (the logged loss means). All of them read the typed :class:`RunConfig`.
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
from collections.abc import Iterator
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Placement:
    """This process's place in the run: its device, its rank and the number of processes (torchrun's)."""

    device: torch.device
    rank: int = 0
    world: int = 1


def place_process() -> Placement:
    """Join torchrun's process group when there is one; train on this rank's GPU (TF32 matmuls, cuDNN
    autotuning) or on the CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if not torch.cuda.is_available():
        return Placement(torch.device("cpu"), rank, world)
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    torch.cuda.set_device(device)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    return Placement(device, rank, world)


def ema_beta(cfg: RunConfig, it: int) -> float:
    """G-EMA's decay at step ``it`` (StyleGAN2): a half-life of ``optim.ema_halflife_kimg`` thousand images,
    shorter at the start (``optim.ema_rampup`` of the images seen so far)."""
    batch, oc = cfg.data.batch_size, cfg.optim
    full = oc.ema_halflife_kimg * 1000
    half = min(full, (it + 1) * batch * oc.ema_rampup) if oc.ema_rampup else full
    return 0.5 ** (batch / max(half, 1e-8))


class Trainer:
    """What one training process holds: G, G-EMA, D and their optimisers, the GAN step (with its precision,
    memory format and loss networks), the validator (rank 0, when ``train.val_every``) and the run folder
    ``out`` (checkpoint and log in ``out/ckpt``). It takes a step, validates and saves; :func:`train` says
    when."""

    def __init__(self, cfg: RunConfig, out: Path, place: Placement, weights_dir: Path) -> None:
        self.cfg, self.out, self.place = cfg, out, place
        self.ckpt_dir = out / "ckpt"
        self.log_path = self.ckpt_dir / "log.jsonl"
        self.main = place.rank == 0  # logs, validates and saves
        device = place.device
        # bf16 autocast where the hardware computes bf16 (CUDA, AMX / AVX512-BF16 CPUs), else fp32
        precision = resolve_precision(cfg.train.precision, device)
        if self.main:
            print(f"precision: {precision} on {device}")
        amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
        fmt = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
        g, disc, opt_g, opt_d = build_models(cfg, device, fmt)
        self.g_ema = copy.deepcopy(g).eval().requires_grad_(False)
        self.models = {"G": g, "G_ema": self.g_ema, "D": disc}
        self.opts = {"opt_G": opt_g, "opt_D": opt_d}
        id_loss, vgg = loss_networks(cfg.loss, weights_dir, device, quiet=not self.main)
        self.gan_step = GanStep(g, disc, opt_g, opt_d, cfg.loss, cfg.optim.grad_clip, id_loss=id_loss, vgg=vgg,
                                amp=amp, memory_format=fmt, world=place.world)
        self.validator = Validator(cfg, device, weights_dir) if self.main and cfg.train.val_every else None

    def begin(self, it: int) -> None:
        """Rank 0: the checkpoint folder; a new run's log starts with the validation inputs' own scores."""
        if self.main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            if self.validator is not None and it == 0:
                _append_log(self.log_path, {"iter": 0, "val_input": self.validator.baseline})

    def step(self, it: int, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Iteration ``it``: torch's RNG seeded from (seed, it, rank), the GAN step, the EMA update."""
        torch.manual_seed(self.cfg.seed * 1_000_003 + it * self.place.world + self.place.rank)
        terms = self.gan_step(it, batch["lq"], batch["gt"], batch["mask"])
        _ema_update(self.g_ema, self.gan_step.g, ema_beta(self.cfg, it))
        return terms

    def validation_due(self, it: int) -> bool:
        """Whether this process validates after step ``it`` (every ``train.val_every`` steps, rank 0)."""
        return self.validator is not None and it % self.cfg.train.val_every == 0

    def validate(self, it: int) -> None:
        """Score G-EMA on the validation batch: a row of the log and a line on stdout."""
        assert self.validator is not None
        scores, _ = self.validator.run(self.g_ema)
        _append_log(self.log_path, {"iter": it, "val": scores})
        print(json.dumps({"iter": it, "val": scores}), flush=True)

    def final_validation(self, it: int) -> dict[str, float]:
        """The chunk's last validation (with NIQE): a ``final`` row of the log, and ``out/samples.png``."""
        import cv2

        assert self.validator is not None
        scores, outs = self.validator.run(self.g_ema, with_niqe=True)
        _append_log(self.log_path, {"iter": it, "val": scores, "final": True})
        cv2.imwrite(str(self.out / "samples.png"), self.validator.grid(outs)[..., ::-1])
        return scores

    def save(self, it: int, train_seconds: float) -> None:
        """Rank 0: the checkpoint folder (atomically, ``restoration/training/checkpoint.py``) and G-EMA as a
        shippable generator, ``out/g_ema.safetensors``."""
        if not self.main:
            return
        cfg = self.cfg
        state = {"iteration": it, "config": cfg.to_dict(), "train_seconds": train_seconds,
                 "kimg": it * cfg.data.batch_size / 1000, "model_version": cfg.model_version}
        save_checkpoint(self.ckpt_dir, state, self.models, self.opts if cfg.checkpoint.optimizer else None,
                        cfg.checkpoint.fp16)
        save_generator(self.g_ema, self.out / "g_ema.safetensors", f"{cfg.model_version}-it{it}", fp16=True)


def load_resume(trainer: Trainer, resume: Path | None = None, init: Path | None = None) -> tuple[int, float]:
    """Load a checkpoint folder into ``trainer``; returns the (iteration, training seconds) to go on from.

    ``resume`` continues a run: weights, optimisers where the checkpoint has them (a compact one has none:
    G starts from G-EMA, Adam from zero), its iteration and training time; and its ``log.jsonl`` is copied
    into the trainer's checkpoint folder when that has none yet, so that the log goes on too. ``init``
    starts a new run (stage 2) from its weights alone, at iteration 0. Neither: (0, 0.0).
    """
    src = resume or init
    if src is None:
        return 0, 0.0
    src = Path(src)
    state, tensors = load_checkpoint(src)
    had_opt = restore_models(trainer.models, trainer.opts if resume else None, state, tensors)
    if not resume:
        return 0, 0.0
    it = state["iteration"]
    if trainer.main:
        print(f"resumed at iteration {it} (optimiser state {'restored' if had_opt else 'reset'})")
        if src != trainer.ckpt_dir and (src / "log.jsonl").is_file() and not trainer.log_path.exists():
            trainer.ckpt_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / "log.jsonl", trainer.log_path)
    return it, state.get("train_seconds", 0.0)


def train_loader(cfg: RunConfig, start_step: int, place: Placement) -> DataLoader:
    """This process's batches of the pack's training faces from step ``start_step`` on (its share,
    ``data.batch_size`` / world, of every step): by :class:`StepSampler`, the batches a run that never
    stopped would have seen, whatever ``data.workers``."""
    d = cfg.data
    ds = PairDataset(read_pack(d.pack, "train"), d.size, preset_from_config(d.preset), cfg.seed,
                     MaskPolicy(**d.mask_policy), Augment(**d.augment))
    sampler = StepSampler(len(ds), d.batch_size // place.world, cfg.seed, start_step, place.rank, place.world)
    # spawn, not fork: a worker forked after the parent ran OpenCV / onnxruntime / OpenMP thread pools
    # (validation does) can hang forever on a lock inherited from a thread that does not exist in it
    return DataLoader(ds, batch_sampler=sampler, num_workers=d.workers, pin_memory=place.device.type == "cuda",
                      worker_init_fn=worker_init, persistent_workers=d.workers > 0,
                      prefetch_factor=4 if d.workers else None,
                      multiprocessing_context="spawn" if d.workers else None)


class Budget:
    """When the loop stops and saves.

    It stops at ``max_iters``; at SIGTERM or SIGINT (inside :meth:`catching_signals`: the step ends first);
    and before ``max_minutes``, counted from :data:`T_START`, run out, early enough to still save: a step
    starts only with room left for two steps, two saves and :attr:`MARGIN_S` (it keeps a running mean of a
    step's time and the longest save), a validation only with room for four saves. A periodic checkpoint
    is due every ``ckpt_minutes``.
    """

    MARGIN_S = 3.0

    def __init__(self, max_iters: int, max_minutes: float | None, ckpt_minutes: float) -> None:
        self.max_iters = max_iters
        self.deadline = T_START + max_minutes * 60 if max_minutes else math.inf
        self.ckpt_seconds = ckpt_minutes * 60
        self.step_cost, self.save_cost = 0.0, 2.0
        self.last_save = time.monotonic()
        self.signalled = False

    @contextlib.contextmanager
    def catching_signals(self) -> Iterator[None]:
        """SIGTERM / SIGINT inside only mark the budget spent, so that the loop finishes its step and saves
        (the loader's workers are in their own process group: a Ctrl-C or a kill of the chunk's group does
        not reach them). The caller's handlers come back after, also after an error."""
        def stop(*_: object) -> None:
            self.signalled = True

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def go_on(self, it: int) -> bool:
        """Whether to take step ``it`` (0-based)."""
        room = time.monotonic() + 2 * self.step_cost + 2 * self.save_cost + self.MARGIN_S <= self.deadline
        return it < self.max_iters and not self.signalled and room

    def step_took(self, seconds: float) -> None:
        self.step_cost = seconds if self.step_cost == 0 else 0.9 * self.step_cost + 0.1 * seconds

    def room_for_validation(self) -> bool:
        return time.monotonic() + 4 * self.save_cost < self.deadline

    def save_due(self) -> bool:
        return time.monotonic() - self.last_save > self.ckpt_seconds

    @contextlib.contextmanager
    def saving(self) -> Iterator[None]:
        """Time the save inside: the longest one sets how early the loop stops."""
        t = time.monotonic()
        yield
        self.save_cost = max(self.save_cost, time.monotonic() - t)
        self.last_save = time.monotonic()


class LossLog:
    """Each loss term's mean over the steps since the last row, with images/s: every ``train.log_every``
    steps and at ``last_iter``, a row of ``path`` (the checkpoint's ``log.jsonl``, which
    ``scripts/log_chunk.py`` reads) and the same line on stdout, when ``write`` (rank 0)."""

    def __init__(self, path: Path, cfg: RunConfig, last_iter: int, write: bool) -> None:
        self.path, self.last_iter, self.write = path, last_iter, write
        self.batch, self.every = cfg.data.batch_size, cfg.train.log_every
        self.sums: dict[str, float] = {}
        self.n, self.since = 0, time.monotonic()
        self.last: dict[str, Any] = {}  # the last row written

    def add(self, terms: dict[str, torch.Tensor]) -> None:
        for k, v in terms.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v.detach())
        self.n += 1

    def row_if_due(self, it: int) -> None:
        """After step ``it`` (so ``it`` steps done): the row, when one is due."""
        if not self.write or (it % self.every and it != self.last_iter):
            return
        el = time.monotonic() - self.since
        self.last = {"iter": it, "kimg": round(it * self.batch / 1000, 3),
                     **{k: v / self.n for k, v in self.sums.items()},
                     "img_per_s": round(self.n * self.batch / max(el, 1e-9), 2),
                     "elapsed_s": round(time.monotonic() - T_START, 1)}
        _append_log(self.path, self.last)
        print(json.dumps(self.last), flush=True)
        self.sums, self.n, self.since = {}, 0, time.monotonic()


def train(cfg: RunConfig, out: Path, resume: Path | None = None, init: Path | None = None,
          max_minutes: float | None = None, max_iters: int | None = None,
          weights_dir: Path | None = None) -> dict[str, Any]:
    """Run (or continue) training until ``max_iters`` (absolute; default ``train.max_iters``), the time
    budget or a signal, saving every ``train.ckpt_minutes`` and at the end; returns the last log row."""
    place = place_process()
    trainer = Trainer(cfg, Path(out), place, Path(weights_dir or default_weights_dir()))
    it, train_seconds = load_resume(trainer, resume, init)
    loader = train_loader(cfg, it, place)
    trainer.begin(it)
    budget = Budget(max_iters or cfg.train.max_iters, max_minutes, cfg.train.ckpt_minutes)
    log = LossLog(trainer.log_path, cfg, budget.max_iters, write=trainer.main)
    with budget.catching_signals():
        batches = iter(loader)
        while budget.go_on(it):
            t_step = time.monotonic()
            log.add(trainer.step(it, next(batches)))
            it += 1
            seconds = time.monotonic() - t_step
            train_seconds += seconds
            budget.step_took(seconds)
            log.row_if_due(it)
            if trainer.validation_due(it) and budget.room_for_validation():
                trainer.validate(it)
            if budget.save_due():
                with budget.saving():
                    trainer.save(it, train_seconds)
        with budget.saving():
            trainer.save(it, train_seconds)
    last = log.last
    if trainer.validator is not None:
        last = dict(last, val=trainer.final_validation(it))
    if place.world > 1:
        dist.barrier()
    return dict(last, iter=it)


__all__ = [
    "T_START", "STEP_PARTS", "build_models", "loss_networks", "GanStep", "Placement", "place_process", "ema_beta",
    "Trainer", "load_resume", "train_loader", "Budget", "LossLog", "train",
]
