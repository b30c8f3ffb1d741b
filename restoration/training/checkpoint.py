"""Training checkpoints: the folder format, its save and load, the compact form that is committed, and the
shippable generator read out of one.

* Checkpoint = a folder (``<out>/ckpt``): ``state.json`` (iteration, config, optimiser hyper-parameters)
  + ``shard-NN.safetensors`` (G, G-EMA, D, and Adam moments when ``checkpoint.optimizer``), each shard
  ≤ 15 MiB so that every file can come back from a GPU session (≤ 16 MiB per file); weights fp16 and
  moments bf16 when ``checkpoint.fp16`` (the carried form), fp32 otherwise (exact resume). The loop's JSONL
  log (``log.jsonl``) lives in the folder too, so it travels with the checkpoint.
* Written atomically: a ``.tmp`` folder renamed over the old one, so a chunk cut off mid-save keeps the
  previous checkpoint.
* Compact form (:func:`compact_checkpoint`): G-EMA + D in fp16, no optimiser, small enough to commit as
  ``training/resume/``; :func:`restore_models` starts G from G-EMA when a checkpoint has no G.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from restoration.generator import Generator
from restoration.training.config import discriminator_config, generator_config, load_config
from restoration.training.discriminator import Discriminator

CKPT_FORMAT = "restoration.training/1"
SHARD_BYTES = 15 * 2**20
COMPACT_FALLBACK = {"G": "G_ema"}  # model -> where a compact checkpoint keeps its weights
FRESH_IF_CHANGED = {"D"}  # never shipped: a new discriminator design restarts it instead of failing


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
    """``state.json`` and every shard's tensors (``model/key`` and ``opt_model/index/key``) of a folder."""
    from safetensors.torch import load_file

    state = json.loads((path / "state.json").read_text())
    if state.get("format") != CKPT_FORMAT:
        raise ValueError(f"{path} is not a training checkpoint")
    tensors: dict[str, torch.Tensor] = {}
    for name in state["shards"]:
        tensors.update(load_file(str(path / name)))
    return state, tensors


def restore_models(models: dict[str, torch.nn.Module], opts: dict[str, torch.optim.Optimizer] | None,
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
    cfg = load_config(None, state["config"])
    g_ema = Generator(generator_config(cfg))
    disc = Discriminator(discriminator_config(cfg))
    restore_models({"G_ema": g_ema, "D": disc}, None, state, tensors)
    keep = {k: state[k] for k in ("iteration", "config", "train_seconds", "kimg", "model_version") if k in state}
    save_checkpoint(Path(dst), keep, {"G_ema": g_ema, "D": disc}, None, fp16=True)
    if (Path(src) / "log.jsonl").is_file():
        shutil.copy2(Path(src) / "log.jsonl", Path(dst) / "log.jsonl")


def generator_from_checkpoint(path: Path, name: str = "G_ema") -> Generator:
    """The (EMA) generator of a training checkpoint folder, float32, eval mode."""
    state, tensors = load_checkpoint(Path(path))
    g = Generator(generator_config(load_config(None, state["config"])))
    g.load_state_dict({k.split("/", 1)[1]: v.float() for k, v in tensors.items() if k.startswith(name + "/")})
    return g.eval()


__all__ = [
    "CKPT_FORMAT", "SHARD_BYTES", "COMPACT_FALLBACK", "FRESH_IF_CHANGED", "save_checkpoint", "load_checkpoint",
    "restore_models", "compact_checkpoint", "generator_from_checkpoint",
]
