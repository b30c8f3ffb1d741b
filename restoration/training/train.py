"""Resumable GAN training of the restoration generator, in time-boxed chunks.

    python -m restoration.training.train --config restoration/training/configs/tiny.yaml --out out/tiny \
        [--resume out/tiny/ckpt] [--init stage1/ckpt] [--max-minutes 9] [--max-iters N]
    python -m restoration.training.train --export CKPT --out g.safetensors    # the shippable generator
    python -m restoration.training.train --compact CKPT --out training/resume # what the next session resumes

Why chunks: a GPU session gives ≤ 10 minutes per command and carries ≤ 64 MiB in and ≤ 16 MiB per file
out, so a run is a chain of ≤ 9-minute chunks, each resuming from the previous checkpoint folder.

* Checkpoint = a folder (``<out>/ckpt``): ``state.json`` (iteration, config, optimiser hyper-parameters)
  + ``shard-NN.safetensors`` (G, G-EMA, D, and Adam moments when ``checkpoint.optimizer``), each shard
  ≤ 15 MiB; weights fp16 and moments bf16 when ``checkpoint.fp16`` (the carried form), fp32 otherwise
  (exact resume). ``<out>/g_ema.safetensors`` is the shippable generator (restoration.generator format).
* Exact resume: every random draw of step k is a function of (seed, k, rank): the data (StepSampler) and
  torch's RNG, which is re-seeded at every step; so N steps == N/2 + resume + N/2 (fp32 checkpoint).
* Time budget: ``--max-minutes`` counts from process start; the loop stops early enough to write the
  checkpoint before it ends (it measures how long steps and saves take). SIGTERM also saves and exits.
* bf16 autocast on CUDA; EMA generator; lazy R1; JSONL log (``<out>/ckpt/log.jsonl``, so it travels with
  the checkpoint) of losses and periodic validation (PSNR, SSIM, identity cosine) on the validation split.
* Data parallel under torchrun: one process per GPU, each with its own slice of every step's samples;
  gradients are averaged with one all-reduce per model and step (not torch's DDP wrapper: the alternating
  G/D updates and R1's double backward are simpler and safe this way). Rank 0 logs and saves.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from restoration.errors import WeightsMissing
from restoration.generator import Generator, from_model, generator_mask, save_generator, to_model
from restoration.paths import default_weights_dir
from restoration.precision import resolve_precision
from restoration.training import losses as L
from restoration.training.config import generator_config, load_config, preset_from_config
from restoration.training.data import (
    Augment,
    MaskPolicy,
    PairDataset,
    StepSampler,
    read_labels,
    read_pack,
    read_rgb,
    worker_init,
)
from restoration.training.discriminator import Discriminator, DiscriminatorConfig

T_START = time.monotonic()
CKPT_FORMAT = "restoration.training/1"
SHARD_BYTES = 15 * 2**20
COMPACT_FALLBACK = {"G": "G_ema"}  # model -> where a compact checkpoint keeps its weights
FRESH_IF_CHANGED = {"D"}  # never shipped: a new discriminator design restarts it instead of failing

# ------------------------------------------------------------------------------------ checkpoints

def _flatten(models: dict[str, torch.nn.Module], opts: dict[str, torch.optim.Optimizer] | None,
             fp16: bool) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, meta = {}, {}
    wdt = torch.float16 if fp16 else torch.float32
    for name, m in models.items():
        for k, v in m.state_dict().items():
            tensors[f"{name}/{k}"] = v.detach().to("cpu", wdt if v.is_floating_point() else v.dtype)
    for name, opt in (opts or {}).items():
        sd = opt.state_dict()
        meta[name] = sd["param_groups"]
        for idx, st in sd["state"].items():
            for k, v in st.items():
                mdt = torch.float32 if (k == "step" or not fp16) else torch.bfloat16
                tensors[f"{name}/{idx}/{k}"] = v.detach().to("cpu", mdt)
    return tensors, meta


def save_checkpoint(path: Path, state: dict[str, Any], models: dict[str, torch.nn.Module],
                    opts: dict[str, torch.optim.Optimizer] | None, fp16: bool) -> None:
    """Write the checkpoint folder atomically (a tmp folder renamed over the old one), shards ≤ 15 MiB."""
    from safetensors.torch import save_file

    tensors, opt_groups = _flatten(models, opts, fp16)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k, v in tensors.items():
        nbytes = v.numel() * v.element_size()
        if shards[-1] and size + nbytes > SHARD_BYTES:
            shards.append({})
            size = 0
        shards[-1][k] = v.contiguous()
        size += nbytes
    names = []
    for i, sh in enumerate(shards):
        names.append(f"shard-{i:02d}.safetensors")
        save_file(sh, str(tmp / names[-1]))
    state = dict(state, format=CKPT_FORMAT, shards=names, opt_param_groups=opt_groups, fp16=fp16)
    (tmp / "state.json").write_text(json.dumps(state, indent=1))
    if (path / "log.jsonl").is_file():
        shutil.copy2(path / "log.jsonl", tmp / "log.jsonl")
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    state = json.loads((path / "state.json").read_text())
    if state.get("format") != CKPT_FORMAT:
        raise ValueError(f"{path} is not a training checkpoint")
    tensors: dict[str, torch.Tensor] = {}
    for name in state["shards"]:
        tensors.update(load_file(str(path / name)))
    return state, tensors


def _restore(models: dict[str, torch.nn.Module], opts: dict[str, torch.optim.Optimizer] | None,
             state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> bool:
    """Load weights (cast to each parameter's dtype); optimisers when present. True if they were.

    A compact checkpoint (:func:`compact_checkpoint`) has no ``G``: the generator then starts from G-EMA.
    A model in FRESH_IF_CHANGED whose architecture changed since the checkpoint starts fresh, with its
    optimiser (said on stdout); any other mismatch is an error.
    """
    fresh = set()
    for name, m in models.items():
        ref = m.state_dict()
        src = name if f"{name}/{next(iter(ref))}" in tensors else COMPACT_FALLBACK.get(name, name)
        differ = [k for k in ref if f"{src}/{k}" not in tensors or tensors[f"{src}/{k}"].shape != ref[k].shape]
        if differ and name in FRESH_IF_CHANGED:
            print(f"{name}: the checkpoint's {name} is another architecture ({len(differ)} of {len(ref)} "
                  f"tensors differ, e.g. {differ[0]}): {name} starts fresh")
            fresh.add(f"opt_{name}")
            continue
        m.load_state_dict({k: tensors[f"{src}/{k}"].to(ref[k].dtype) for k in ref}, strict=True)
    if not opts or not all(n in state.get("opt_param_groups", {}) for n in opts):
        return False
    for name, opt in opts.items():
        if name in fresh:
            continue
        st: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in tensors.items():
            parts = k.split("/")
            if parts[0] == name:
                st.setdefault(int(parts[1]), {})[parts[2]] = v.float()
        opt.load_state_dict({"state": st, "param_groups": state["opt_param_groups"][name]})
    return True


def compact_checkpoint(src: Path, dst: Path) -> None:
    """Write ``src``'s G-EMA and D (fp16) with its state and log to ``dst``: ~10 MiB for ``small512``.

    Why: a GPU session's checkpoint folder is lost with the session's checkout, and the full one (36 MiB
    with G and the Adam moments) is too big to commit. Committed as ``training/resume/``, the compact form
    lets the next GPU session go on from the same iteration (G restarts from G-EMA, Adam from zero, which
    its β2 = 0.99 refills within a few hundred steps) instead of from scratch.
    """
    state, tensors = load_checkpoint(Path(src))
    cfg = state["config"]
    g_ema = Generator(generator_config(cfg))
    disc = Discriminator(DiscriminatorConfig(size=cfg["data"]["size"], **cfg["discriminator"]))
    _restore({"G_ema": g_ema, "D": disc}, None, state, tensors)
    keep = {k: state[k] for k in ("iteration", "config", "train_seconds", "kimg", "model_version") if k in state}
    save_checkpoint(Path(dst), keep, {"G_ema": g_ema, "D": disc}, None, fp16=True)
    if (Path(src) / "log.jsonl").is_file():
        shutil.copy2(Path(src) / "log.jsonl", Path(dst) / "log.jsonl")


def generator_from_checkpoint(path: Path, name: str = "G_ema") -> Generator:
    """The (EMA) generator of a training checkpoint folder, float32, eval mode."""
    state, tensors = load_checkpoint(Path(path))
    g = Generator(generator_config(state["config"]))
    g.load_state_dict({k.split("/", 1)[1]: v.float() for k, v in tensors.items() if k.startswith(name + "/")})
    return g.eval()


# ------------------------------------------------------------------------------------ validation

class Validator:
    """A fixed validation batch (val split, fixed degradations) scored with PSNR / SSIM / identity."""

    def __init__(self, cfg: dict[str, Any], device: torch.device, weights_dir: Path) -> None:
        from restoration.degrade import degrade

        d = cfg["data"]
        self.weights_dir = weights_dir
        entries = read_pack(d["pack"], "val")[: d["val_faces"]]
        size = d["size"]
        gts, lqs, masks = [], [], []
        for i, e in enumerate(entries):
            gt = read_rgb(e.face, size)
            gts.append(gt)
            rng = np.random.default_rng([cfg["seed"], 10_000 + i])
            lqs.append(degrade(gt, preset_from_config(d["val_preset"]), rng))
            lab = read_labels(e.mask, size) if (d["val_mask"] == "clean" and e.mask) else None
            masks.append(lab)
        self.gt = np.stack(gts)
        self.lq = to_model(np.stack(lqs)).to(device)
        from restoration.parsing import NUM_PART_CLASSES

        half = size // 2
        self.mask = torch.stack([generator_mask(m)[0] if m is not None else
                                 torch.zeros(NUM_PART_CLASSES, half, half) for m in masks]).to(device)
        self.identity = None
        try:
            from restoration.metrics import IdentityScorer

            self.identity = IdentityScorer(weights_dir, str(device))
        except Exception as e:  # no weights: PSNR/SSIM only
            print(f"validation without identity cosine: {e}")
        self.baseline = self.score(from_model(self.lq))

    def score(self, out: np.ndarray, with_niqe: bool = False) -> dict[str, float]:
        from restoration.metrics import niqe, psnr, ssim

        r = {"psnr": float(np.mean([psnr(a, b) for a, b in zip(out, self.gt, strict=True)])),
             "ssim": float(np.mean([ssim(a, b) for a, b in zip(out, self.gt, strict=True)]))}
        if self.identity is not None:
            r["id_cos"] = float(np.mean(self.identity.cosine(out, self.gt)))
        if with_niqe:  # ~0.3 s a face: the final validation of a chunk only
            try:
                r["niqe"] = float(np.mean([niqe(o, self.weights_dir) for o in out]))
            except Exception as e:  # no NIQE parameters: the other figures still count
                print(f"validation without NIQE: {e}")
        return r

    @torch.no_grad()
    def run(self, g: torch.nn.Module, batch: int = 8, with_niqe: bool = False
            ) -> tuple[dict[str, float], np.ndarray]:
        outs = [from_model(g(self.lq[i:i + batch], self.mask[i:i + batch], noise_mode="fixed").float())
                for i in range(0, len(self.lq), batch)]
        out = np.concatenate(outs)
        return self.score(out, with_niqe), out

    def grid(self, out: np.ndarray, n: int = 8) -> np.ndarray:
        """Rows of (input | output | ground truth)."""
        lq = from_model(self.lq[:n])
        return np.concatenate([np.concatenate([a, b, c], 1) for a, b, c in zip(lq, out[:n], self.gt[:n],
                                                                                 strict=False)], 0)


# ------------------------------------------------------------------------------------ the loop

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


def train(cfg: dict[str, Any], out: Path, resume: Path | None = None, init: Path | None = None,
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
    precision = resolve_precision(str(cfg["train"].get("precision", "auto")), device)
    if rank == 0:
        print(f"precision: {precision} on {device}")
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    fmt = torch.channels_last if cfg["train"].get("channels_last", True) else torch.contiguous_format
    weights_dir = Path(weights_dir or default_weights_dir())
    seed, d, lc, oc, tc = cfg["seed"], cfg["data"], cfg["loss"], cfg["optim"], cfg["train"]
    max_iters = max_iters or tc["max_iters"]
    out = Path(out)
    ckpt_dir = out / "ckpt"
    log_path = ckpt_dir / "log.jsonl"

    torch.manual_seed(seed)
    g = Generator(generator_config(cfg)).to(device, memory_format=fmt)
    dcfg = DiscriminatorConfig(size=d["size"], **cfg["discriminator"])
    disc = Discriminator(dcfg).to(device, memory_format=fmt)
    g_ema = copy.deepcopy(g).eval().requires_grad_(False)
    betas = tuple(oc["betas"])
    opt_g = torch.optim.Adam(g.parameters(), lr=oc["lr_g"], betas=betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=oc["lr_d"], betas=betas)
    models = {"G": g, "G_ema": g_ema, "D": disc}
    opts = {"opt_G": opt_g, "opt_D": opt_d}

    it, train_seconds = 0, 0.0
    if resume or init:
        state, tensors = load_checkpoint(Path(resume or init))  # type: ignore[arg-type]
        had_opt = _restore(models, opts if resume else None, state, tensors)
        if resume:
            it, train_seconds = state["iteration"], state.get("train_seconds", 0.0)
            if rank == 0:
                print(f"resumed at iteration {it} (optimiser state {'restored' if had_opt else 'reset'})")
            if rank == 0 and Path(resume) != ckpt_dir and (Path(resume) / "log.jsonl").is_file():
                ckpt_dir.mkdir(parents=True, exist_ok=True)
                if not log_path.exists():
                    shutil.copy2(Path(resume) / "log.jsonl", log_path)

    entries = read_pack(d["pack"], "train")
    ds = PairDataset(entries, d["size"], preset_from_config(d["preset"]), seed, MaskPolicy(**d["mask_policy"]),
                     Augment(**d["augment"]))
    per_rank = d["batch_size"] // world
    sampler = StepSampler(len(ds), per_rank, seed, it, rank, world)
    workers = d["workers"]
    # spawn, not fork: a worker forked after the parent ran OpenCV / onnxruntime / OpenMP thread pools
    # (validation does) can hang forever on a lock inherited from a thread that does not exist in it
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=workers, pin_memory=device.type == "cuda",
                        worker_init_fn=worker_init, persistent_workers=workers > 0,
                        prefetch_factor=4 if workers else None,
                        multiprocessing_context="spawn" if workers else None)

    id_loss = None
    if lc["identity"] or lc["id_feat"]:
        try:
            id_loss = L.IdentityLoss(weights_dir, device)
        except WeightsMissing as e:  # e.g. a GPU chunk that did not carry the identity weights
            if rank == 0:
                print(f"identity losses off: {e}")
    vgg = None
    if lc["vgg"]:
        p = L.VGGLoss.available(weights_dir)
        vgg = L.VGGLoss(p, device) if p else None
        if vgg is None and rank == 0:
            print(f"loss.vgg = {lc['vgg']} ignored: no {weights_dir}/vgg/vgg19.pth")
    validator = Validator(cfg, device, weights_dir) if rank == 0 and tc["val_every"] else None
    if rank == 0:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        if validator is not None and it == 0:
            _append_log(log_path, {"iter": 0, "val_input": validator.baseline})

    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    deadline = T_START + max_minutes * 60 if max_minutes else math.inf
    save_cost, step_cost = 2.0, 0.0
    last_save = time.monotonic()
    ema_nimg = oc["ema_halflife_kimg"] * 1000
    sums: dict[str, float] = {}
    t_log, n_log = time.monotonic(), 0
    last: dict[str, Any] = {}

    def save() -> None:
        nonlocal save_cost, last_save
        t = time.monotonic()
        if rank == 0:
            st = {"iteration": it, "config": cfg, "train_seconds": train_seconds,
                  "kimg": it * d["batch_size"] / 1000, "model_version": cfg["model_version"]}
            save_checkpoint(ckpt_dir, st, models, opts if cfg["checkpoint"]["optimizer"] else None,
                            cfg["checkpoint"]["fp16"])
            save_generator(g_ema, out / "g_ema.safetensors", f"{cfg['model_version']}-it{it}", fp16=True)
        save_cost = max(save_cost, time.monotonic() - t)
        last_save = time.monotonic()

    data_iter = iter(loader)
    while it < max_iters:
        now = time.monotonic()
        if stop["flag"] or now + 2 * step_cost + 2 * save_cost + 3 > deadline:
            break
        t_step = now
        batch = next(data_iter)
        torch.manual_seed(seed * 1_000_003 + it * world + rank)
        lq = batch["lq"].to(device, non_blocking=True).contiguous(memory_format=fmt)
        gt = batch["gt"].to(device, non_blocking=True).contiguous(memory_format=fmt)
        mask = batch["mask"].to(device, non_blocking=True).contiguous(memory_format=fmt)
        adv_on = lc["adv"] > 0 and it >= lc["adv_start"]

        # --- generator step
        disc.requires_grad_(False)
        with amp:
            fake = g(lq, mask)
            terms = {"l1": L.l1(fake, gt)}
            if lc["ms_ssim"]:
                terms["ms_ssim"] = L.ms_ssim_loss(fake, gt)
            if id_loss is not None:
                terms["identity"], terms["id_feat"] = id_loss(fake, gt)
            if vgg is not None:
                terms["vgg"] = vgg(fake, gt)
            if adv_on or lc["fm"]:
                # one D pass over [fake; real]: D is frozen and the reals need no gradient
                n = fake.shape[0]
                both = torch.cat([fake, gt]) if lc["fm"] else fake
                logits, feats = disc(both, features=True)
                if adv_on:
                    terms["adv"] = L.g_adv_loss(logits[:n])
                if lc["fm"]:
                    terms["fm"] = L.feature_matching([f[:n] for f in feats], [f[n:] for f in feats])
        total = sum(lc[k] * v.float() for k, v in terms.items() if lc.get(k))
        opt_g.zero_grad(set_to_none=True)
        total.backward()
        _allreduce_grads(list(g.parameters()), world)
        if oc["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(g.parameters(), oc["grad_clip"])
        opt_g.step()
        terms["total"] = total

        # --- discriminator step (+ lazy R1)
        if adv_on:
            disc.requires_grad_(True)
            with amp:
                logits = disc(torch.cat([gt, fake.detach()]))
                ld = L.d_adv_loss(logits[: gt.shape[0]], logits[gt.shape[0]:])
            loss_d = ld
            if lc["r1_gamma"] and it % lc["r1_every"] == 0:
                r1 = L.r1_penalty(disc, gt)
                terms["r1"] = r1
                loss_d = loss_d + r1 * (lc["r1_gamma"] / 2 * lc["r1_every"])
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            _allreduce_grads(list(disc.parameters()), world)
            opt_d.step()
            terms["d"] = ld

        # --- EMA (StyleGAN2: half-life in images, ramped up at the start)
        nimg = (it + 1) * d["batch_size"]
        half = min(ema_nimg, nimg * oc["ema_rampup"]) if oc["ema_rampup"] else ema_nimg
        _ema_update(g_ema, g, 0.5 ** (d["batch_size"] / max(half, 1e-8)))
        it += 1

        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        n_log += 1
        dt = time.monotonic() - t_step
        train_seconds += dt
        step_cost = dt if step_cost == 0 else 0.9 * step_cost + 0.1 * dt
        if rank == 0 and (it % tc["log_every"] == 0 or it == max_iters):
            el = time.monotonic() - t_log
            last = {"iter": it, "kimg": round(nimg / 1000, 3), **{k: v / n_log for k, v in sums.items()},
                    "img_per_s": round(n_log * d["batch_size"] / max(el, 1e-9), 2),
                    "elapsed_s": round(time.monotonic() - T_START, 1)}
            _append_log(log_path, last)
            print(json.dumps(last), flush=True)
            sums, n_log, t_log = {}, 0, time.monotonic()
        val_fits = time.monotonic() + 4 * save_cost < deadline
        if validator is not None and it % tc["val_every"] == 0 and val_fits:
            scores, _ = validator.run(g_ema)
            _append_log(log_path, {"iter": it, "val": scores})
            print(json.dumps({"iter": it, "val": scores}), flush=True)
        if time.monotonic() - last_save > tc["ckpt_minutes"] * 60:
            save()
    save()
    if validator is not None:
        import cv2

        scores, outs = validator.run(g_ema, with_niqe=True)
        _append_log(log_path, {"iter": it, "val": scores, "final": True})
        cv2.imwrite(str(out / "samples.png"), validator.grid(outs)[..., ::-1])
        last = dict(last, val=scores)
    if world > 1:
        dist.barrier()
    return dict(last, iter=it)


def main() -> None:
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
        cfg["data"]["pack"] = args.pack
    r = train(cfg, args.out, args.resume, args.init, args.max_minutes, args.max_iters, args.weights_dir)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"done": r}))
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
