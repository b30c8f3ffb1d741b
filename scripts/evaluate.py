"""Evaluate a candidate generator against the input, the classical stand-in and the shipped model.

Two sets of faces, each degraded with every preset (gfpgan, heavy, mixed) at fixed seeds:

* ``val`` — the training pack's validation people (person-disjoint from training; ``data/pack``);
* ``ood`` — faces of sources no training pack ever holds (CelebA-HQ, FFHQ, idinvert; ``data/ood``, built by
  ``scripts/make_pack.py --pack ood``): other people, other photographers, other alignment and colour.

Per method and preset: PSNR, SSIM, the **independent identity judge** (dlib's ResNet, never trained
against: ``restoration/judge.py``) as the share of faces still recognised (distance < 0.6) and the mean
distance, MobileFaceNet cosine (the training loss's network: a second, flattering figure), NIQE, and
``colour`` (restoration/metrics.py: ΔE between the mean Lab colours of output and truth, a whole-crop
colour shift; the input's is what the degradation shifted) and ``outline`` (metrics.outline_edge: how much more
the output's edges gather on the served part map's region borders than the truth's do; above 1 the model
draws its mask's outline: the face-oval ring and wavy hair edges). NIQE of ``$FACES_DIR/wild/cropped`` (real
degraded faces, no ground truth) too.

Methods: ``input`` (the degraded face, back at 512 by the degradation's up-sampling), ``classical``
(bilateral denoise + unsharp mask), ``shipped`` (``--shipped``, default the committed weights) and
``candidate`` (``--model``: g_ema.safetensors or a training checkpoint folder). Learned models get masks
from ``--masks``: ``degraded`` (the parser on the degraded input: the served path, default), ``clean``
(the parser on the clean face: the training condition), ``none``, ``restored`` (the parser on the
model's mask-free output); with several, the candidate gets a row per source and the shipped model the first.

The ship rule reads the judge: the candidate ships only if, on both sets and every preset, it recognises at
least the shipped model's share and its mean distance is no larger. With ``--fidelity auto`` the rule compares
both models as the service delivers them by default (``fidelity=auto``) and prints the raw outputs' comparison
beside it; without, the raw outputs. The script prints that verdict and the issue's targets against the input.
``--fidelity auto,0.25,0.5,0.75`` adds rows of the learned models blended with
the input as the service's ``fidelity`` option does (``auto``: restoration/fidelity.py; the curve of identity
and NIQE against fidelity, drawn in ``<out>/fidelity_curve.png``). Writes
``<out>/eval.md``, ``<out>/eval.json``, ``<out>/faces.json`` (per face and row: judge distance, NIQE and
MobileFaceNet cosine to the degraded input)
and ``<out>/grid_<set>_<preset>.png`` (columns: the rows, then the ground truth).

    .venv/bin/python scripts/evaluate.py --out out/eval                          # input, classical, shipped
    .venv/bin/python scripts/evaluate.py --model training/resume --out out/eval  # + the candidate
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from restoration import fidelity
from restoration.degrade import degrade
from restoration.fidelity import AUTO
from restoration.generator import from_model, generator_mask, to_model
from restoration.judge import SAME_PERSON, IdentityJudge
from restoration.metrics import IdentityScorer, colour_shift, niqe, outline_edge, psnr, ssim
from restoration.parsing import outlines
from restoration.paths import default_faces_dir, default_weights_dir
from restoration.training.data import read_labels, read_pack, read_rgb

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ("gfpgan", "heavy", "mixed")
MASK_SOURCES = ("clean", "degraded", "none", "restored")
SHIPPED = ROOT / "restoration" / "weights" / "restorer.safetensors"
SIZE = 512
FIGURES = ("psnr", "ssim", "recognised", "id_dist", "mfn_cos", "niqe", "colour", "outline")
HEADER = ("| set / preset / method | PSNR ↑ | SSIM ↑ | recognised (dlib) ↑ | id distance (dlib) ↓ "
          "| MobileFaceNet cos ↑ | NIQE ↓ | colour ΔE ↓ | outline edge → 1 |")

Method = Callable[[np.ndarray, np.ndarray | None], np.ndarray]  # (N×S×S×3 uint8, labels or None) -> uint8


def classical_method() -> Method:
    from restoration.classical import ClassicalFaceRestorer

    c = ClassicalFaceRestorer()
    return lambda faces, _labels: np.stack([c.restore_uint8(f) for f in faces])


def model_method(path: Path, device: str, batch: int = 4) -> Method:
    """A generator from ``save_generator`` output or from a training checkpoint folder (its G-EMA)."""
    if path.is_dir():
        from restoration.training.checkpoint import generator_from_checkpoint

        g = generator_from_checkpoint(path).to(device).eval()
    else:
        from restoration.generator import load_generator

        g, _ = load_generator(path, device)

    @torch.no_grad()
    def run(faces: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        size = g.config.size
        outs = []
        for i in range(0, len(faces), batch):
            f = faces[i:i + batch]
            if size != f.shape[1]:
                f = np.stack([cv2.resize(x, (size, size), interpolation=cv2.INTER_AREA) for x in f])
            x = to_model(f).to(device)
            m = None
            if labels is not None:
                m = generator_mask(np.stack([cv2.resize(lab, (size, size), interpolation=cv2.INTER_NEAREST)
                                             for lab in labels[i:i + batch]])).to(device)
            y = from_model(g(x, m, noise_mode="fixed"))
            if size != faces.shape[1]:
                y = np.stack([cv2.resize(v, faces.shape[1:3][::-1], interpolation=cv2.INTER_CUBIC) for v in y])
            outs.append(y)
        return np.concatenate(outs)

    return run


def auto_blend(restored: np.ndarray, inputs: np.ndarray, input_niqe: list[float], scorer: IdentityScorer
               ) -> tuple[np.ndarray, np.ndarray]:
    """``fidelity=auto`` as the service applies it (restoration/fidelity.py), on the generator's own output
    (the service blends it after matching its mean colour to the input's inside the paste mask): step 1
    from each input's NIQE (``input_niqe``), step 2 with MobileFaceNet (the pipeline's embedder) — never
    with the dlib judge. Returns the blended faces and the weight each got."""
    w = np.array([fidelity.fidelity_for(q) for q in input_niqe], np.float32)
    out = fidelity.blend(restored, inputs, w)
    lost = (w > fidelity.FLOOR) & ~np.array([fidelity.keeps_person(float(c)) for c in scorer.cosine(out, inputs)])
    w[lost] = fidelity.FLOOR
    out[lost] = fidelity.blend(restored[lost], inputs[lost], w[lost])
    return out, w


def plot_curve(results: dict[str, dict[str, dict[str, float]]], methods: list[str], path: Path) -> None:
    """Identity (dlib distance, recognised share) and NIQE against fidelity, a line per preset and method
    (shipped dashed) and a panel row per set; 0 is the input, 1 the method's output; ``auto`` is a star at
    the mean weight it chose."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in results if "/" in k and methods[-1] in results[k]]
    sets = sorted({k.split(" / ")[0] for k in keys}, key=lambda x: x != "val")
    fig, axes = plt.subplots(len(sets), 3, figsize=(13, 3.6 * len(sets)), squeeze=False)
    for r, set_name in enumerate(sets):
        for key, cand in ((k, m) for k in keys if k.startswith(set_name + " /") for m in methods):
            rows = results[key]
            pts = sorted([(0.0, rows["input"]), (1.0, rows[cand])] + [
                (float(n.rsplit(" ", 1)[1]), v) for n, v in rows.items()
                if n.startswith(f"{cand}, fidelity ") and not n.endswith(AUTO)], key=lambda p: p[0])
            auto = rows.get(f"{cand}, fidelity {AUTO}")
            style = "o--" if cand == "shipped" and len(methods) > 1 else "o-"
            for c, (fig_key, label) in enumerate((("id_dist", "dlib distance to the truth ↓"),
                                                  ("recognised", "recognised by dlib (< 0.6) ↑"),
                                                  ("niqe", "NIQE ↓"))):
                ax = axes[r][c]
                line = ax.plot([x for x, _ in pts], [v[fig_key] for _, v in pts], style,
                               label=f"{key.split(' / ')[1]}, {cand}")[0]
                if auto:
                    ax.plot([auto["fidelity"]], [auto[fig_key]], "*", ms=14, color=line.get_color())
                ax.set_title(f"{set_name}: {label}", fontsize=10)
                ax.set_xlabel("fidelity (0 = input, 1 = restored; ★ = auto at its mean weight)", fontsize=8)
                ax.grid(alpha=0.3)
        axes[r][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _cell(vals: dict[str, float], k: str) -> str:
    v = vals.get(k)
    return "–" if v is None else f"{v:.3f}" if k not in ("psnr", "niqe", "colour", "outline") else f"{v:.2f}"


def _row(name: str, vals: dict[str, float]) -> str:
    return f"| {name} | " + " | ".join(_cell(vals, k) for k in FIGURES) + " |"


def ship_verdict(results: dict[str, dict[str, dict[str, float]]], cand: str, shipped: str) -> tuple[bool, list[str]]:
    """Whether ``cand`` recognises ≥ and its mean distance ≤ ``shipped``'s on every set and preset."""
    ok, lines = True, []
    for key, methods in results.items():
        if cand not in methods or shipped not in methods or "/" not in key:
            continue
        c, s = methods[cand], methods[shipped]
        good = c["recognised"] >= s["recognised"] and c["id_dist"] <= s["id_dist"]
        ok &= good
        lines.append(f"| {key} | {s['recognised']:.3f} / {s['id_dist']:.3f} | {c['recognised']:.3f} / "
                     f"{c['id_dist']:.3f} | {'yes' if good else '**no**'} |")
    return ok, lines


def ship_rule_lines(results: dict[str, dict[str, dict[str, float]]], cand: str, at_auto: bool) -> list[str]:
    """The ship rule's verdict and tables, candidate against ``shipped``. With ``at_auto`` (the run has
    fidelity=auto rows) the verdict reads both models at auto, as the service delivers them by default, and
    the raw outputs' comparison follows; otherwise the raw outputs decide."""
    table = ["| set / preset | shipped: recognised / distance | candidate | candidate ≥ shipped |",
             "|---|---|---|---|"]
    ok, rows = ship_verdict(results, cand, "shipped")
    if not at_auto:
        return ["", "Ship rule (the independent judge on both sets, every preset; add `--fidelity auto` to judge "
                f"the service's default): **{'the candidate may ship' if ok else 'keep the shipped model'}**.", "",
                *table, *rows]
    ok_auto, rows_auto = ship_verdict(results, f"{cand}, fidelity {AUTO}", f"shipped, fidelity {AUTO}")
    return ["", f"Ship rule (the independent judge on both sets, every preset, at fidelity={AUTO}, the service's "
            f"default): **{'the candidate may ship' if ok_auto else 'keep the shipped model'}**.", "", *table,
            *rows_auto, "", "The raw generator outputs (fidelity 1): "
            f"**{'the candidate is at least as good' if ok else 'the candidate falls short'}**.", "", *table, *rows]


def target_lines(results: dict[str, dict[str, dict[str, float]]], method: str, clean_niqe: dict[str, float]
                 ) -> list[str]:
    """The model issue's targets for ``method``, against the input in the same run."""
    out = []
    for key, methods in results.items():
        if method not in methods or "/" not in key:
            continue
        set_name, preset = key.split(" / ")
        m, i = methods[method], methods["input"]
        need = i["recognised"] + (0.10 if preset == "heavy" else 0.0)
        checks = [f"recognised {m['recognised']:.3f} ≥ {need:.3f}: {'yes' if m['recognised'] >= need else 'no'}",
                  f"distance {m['id_dist']:.3f} < {i['id_dist']:.3f}: {'yes' if m['id_dist'] < i['id_dist'] else 'no'}",
                  f"NIQE {m['niqe']:.2f} ≤ {clean_niqe[set_name] + 1.5:.2f}: "
                  f"{'yes' if m['niqe'] <= clean_niqe[set_name] + 1.5 else 'no'}"]
        if preset == "gfpgan":
            ok = m["psnr"] >= i["psnr"] - 0.3
            checks.append(f"PSNR {m['psnr']:.2f} ≥ {i['psnr'] - 0.3:.2f}: {'yes' if ok else 'no'}")
        out.append(f"| {key} | " + "; ".join(checks) + " |")
    return out


def main() -> None:
    faces_dir = default_faces_dir()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="none", help="candidate: g_ema.safetensors, a training checkpoint folder, "
                    "or none")
    ap.add_argument("--shipped", default=str(SHIPPED), help="the shipped weights to compare with, or none")
    ap.add_argument("--pack", type=Path, default=ROOT / "data" / "pack")
    ap.add_argument("--ood", type=Path, default=ROOT / "data" / "ood",
                    help="the out-of-distribution pack (scripts/make_pack.py --pack ood), or none")
    ap.add_argument("--wild", type=Path, default=faces_dir / "wild" / "cropped")
    ap.add_argument("--weights-dir", type=Path, default=default_weights_dir())
    ap.add_argument("--masks", default="degraded",
                    help="comma-separated mask sources for the learned models: degraded, clean, none, restored")
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--fidelity", default="",
                    help="comma-separated fidelities below 1 or auto (e.g. auto,0.25,0.5,0.75): extra rows of the "
                    "shipped model and the candidate, blended with the input as the service's fidelity option does")
    ap.add_argument("--limit", type=int, default=0, help="at most this many faces per set (0 = all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "eval")
    args = ap.parse_args()
    t0 = time.time()
    try:
        fidelities = [f.strip() if f.strip() == AUTO else float(f) for f in args.fidelity.split(",") if f.strip()]
    except ValueError:
        fidelities = [-1.0]
    if any(f != AUTO and not 0.0 <= f < 1.0 for f in fidelities):
        ap.error("--fidelity: comma-separated values in [0, 1), or auto")
    modes = [m.strip() for m in args.masks.split(",") if m.strip()]
    if not modes or set(modes) - set(MASK_SOURCES):
        ap.error(f"--masks: a comma-separated list of {', '.join(MASK_SOURCES)}")
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    if not presets or set(presets) - set(PRESETS):
        ap.error(f"--presets: a comma-separated list of {', '.join(PRESETS)}")
    sets = {"val": args.pack}
    if str(args.ood) != "none":
        if not (args.ood / "manifest.csv").is_file():
            ap.error(f"{args.ood}: no out-of-distribution pack; build it with `make pack` "
                     "(scripts/make_pack.py --out data/ood --pack ood) or pass --ood none")
        sets["ood"] = args.ood

    parser = None
    if {"degraded", "restored"} & set(modes):
        from restoration.parsing import get_parser

        parser = get_parser("landmarks", weights_dir=args.weights_dir)
    runs: list[tuple[str, Method, str]] = [("input", lambda f, _l: f, "none"),
                                           ("classical", classical_method(), "none")]
    free: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # each model's mask-free output for the last faces

    def learned(name: str, fn: Method) -> Method:
        def mask_free(faces: np.ndarray, _labels: np.ndarray | None = None) -> np.ndarray:
            if name not in free or free[name][0] is not faces:
                free[name] = (faces, fn(faces, None))
            return free[name][1]
        return mask_free

    models: dict[str, Method] = {}
    if args.shipped != "none":
        models["shipped"] = model_method(Path(args.shipped), args.device)
        runs.append(("shipped", models["shipped"], modes[0]))
    if args.model != "none":
        models["candidate"] = model_method(Path(args.model), args.device)
        for m in modes:
            name = "candidate" if len(modes) == 1 else f"candidate, {m} masks"
            runs.append((name, learned("candidate", models["candidate"]) if m == "none" else models["candidate"], m))

    def labels_for(mode: str, faces: np.ndarray, clean: np.ndarray | None, model: str) -> np.ndarray | None:
        if mode == "clean":
            return clean
        if mode == "degraded" and parser is not None:
            return parser.parse(faces)
        if mode == "restored" and parser is not None and model in models:
            return parser.parse(learned(model, models[model])(faces))
        return None

    cand_name = next((n for n, _, m in runs if n.startswith("candidate") and m == modes[0]), "")
    per_face: dict[str, dict[str, dict[str, list[float]]]] = {}  # faces.json: per-face distance and NIQE
    grid_columns: list[str] = []
    scorer, judge = IdentityScorer(args.weights_dir), IdentityJudge()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict[str, float]]] = {}
    clean_niqe: dict[str, float] = {}
    lines = [HEADER, "|---" * (len(FIGURES) + 1) + "|"]
    described = []
    for set_name, pack in sets.items():
        entries = read_pack(pack, "val")
        if args.limit:
            entries = entries[: args.limit]
        gt = np.stack([read_rgb(e.face, SIZE) for e in entries])
        clean = np.stack([read_labels(e.mask, SIZE) for e in entries]) if all(e.mask for e in entries) else None
        if "clean" in modes and clean is None:
            ap.error(f"--masks clean: {pack} has no masks/ (scripts/make_pack.py --masks landmarks)")
        ref = judge.reference(gt)
        clean_niqe[set_name] = float(np.nanmean([niqe(a, args.weights_dir) for a in gt]))
        results[f"{set_name} clean"] = {"ground truth": {"niqe": clean_niqe[set_name]}}
        lines.append(_row(f"{set_name} / ground truth", {"niqe": clean_niqe[set_name]}))
        sources = sorted({e.source for e in entries})
        described.append(f"`{set_name}`: {len(entries)} faces of {len({e.person for e in entries})} people "
                         f"({', '.join(sources)})")
        for preset in presets:
            lq = np.stack([degrade(f, preset, np.random.default_rng([args.seed, i])) for i, f in enumerate(gt)])
            outs, parsed = {}, {}
            key = f"{set_name} / {preset}"
            results[key] = {}
            for name, fn, mode in runs:
                owner = "candidate" if name.startswith("candidate") else name
                if (mode, owner) not in parsed:
                    parsed[mode, owner] = labels_for(mode, lq, clean, owner)
                outs[name] = fn(lq, parsed[mode, owner])
            # the served mask's region borders (the parse of the degraded input), for every row's outline figure
            served = next((v for (m, _o), v in parsed.items() if m == "degraded" and v is not None), None)
            if served is None and parser is not None:
                served = parser.parse(lq)
            bands = None if served is None else [outlines(lab) for lab in served]
            # NIQE of each degraded input, once: the input row's figure and auto's step 1
            lq_niqe = [niqe(a, args.weights_dir) for a in lq]
            auto_w = {}
            for base in (b for b in ("shipped", cand_name) if b in outs):  # blended as the service does
                for f in fidelities:
                    if f == AUTO:
                        outs[f"{base}, fidelity {AUTO}"], auto_w[f"{base}, fidelity {AUTO}"] = auto_blend(
                            outs[base], lq, lq_niqe, scorer)
                    else:
                        outs[f"{base}, fidelity {f:g}"] = fidelity.blend(outs[base], lq, np.full(len(lq), f))
            for name, out in outs.items():
                dist = judge.distances(out, ref)
                face_niqe = lq_niqe if name == "input" else [niqe(a, args.weights_dir) for a in out]
                vals = {"psnr": float(np.mean([psnr(a, b) for a, b in zip(out, gt, strict=True)])),
                        "ssim": float(np.mean([ssim(a, b) for a, b in zip(out, gt, strict=True)])),
                        "recognised": float(np.mean(dist < SAME_PERSON)), "id_dist": float(dist.mean()),
                        "mfn_cos": float(np.mean(scorer.cosine(out, gt))),
                        "niqe": float(np.nanmean(face_niqe)),
                        "colour": float(np.mean([colour_shift(a, b) for a, b in zip(out, gt, strict=True)]))}
                if bands is not None:
                    vals["outline"] = float(np.nanmean([outline_edge(a, b, m) for a, b, m
                                                        in zip(out, gt, bands, strict=True)]))
                if name in auto_w:
                    vals["fidelity"] = float(auto_w[name].mean())
                results[key][name] = vals
                per_face.setdefault(key, {})[name] = {
                    "id_dist": [round(float(d), 4) for d in dist], "niqe": [round(float(v), 3) for v in face_niqe],
                    "mfn_input": [round(float(c), 4) for c in scorer.cosine(out, lq)]}
                lines.append(_row(f"{key} / {name}", vals))
            n = min(6, len(gt))
            # the grid: every method at its own output and at auto (the fixed blends are in the curve)
            grid_columns = [k for k in outs if ", fidelity " not in k or k.endswith(AUTO)]
            cols = [outs[k] for k in grid_columns] + [gt]
            grid = np.concatenate([np.concatenate([c[i] for c in cols], 1) for i in range(n)], 0)
            cv2.imwrite(str(args.out / f"grid_{set_name}_{preset}.png"),
                        cv2.resize(grid[..., ::-1], None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
            print(f"{key}: done ({time.time() - t0:.0f} s)", flush=True)
    wild_files = sorted(p for p in args.wild.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if wild_files:
        wild = np.stack([read_rgb(p, SIZE) for p in wild_files])
        for name, fn, mode in runs:
            if mode == "clean":  # no clean face to parse
                continue
            owner = "candidate" if name.startswith("candidate") else name
            out = fn(wild, labels_for(mode, wild, None, owner))
            blends = {name: out}
            if name in ("shipped", cand_name) and fidelities:
                wild_niqe = [niqe(a, args.weights_dir) for a in wild]
                blends.update({f"{name}, fidelity {f if f == AUTO else f'{f:g}'}":
                               auto_blend(out, wild, wild_niqe, scorer)[0] if f == AUTO
                               else fidelity.blend(out, wild, np.full(len(wild), f)) for f in fidelities})
            for row, o in blends.items():
                v = float(np.nanmean([niqe(a, args.weights_dir) for a in o]))
                results.setdefault(f"wild ({len(wild)})", {})[row] = {"niqe": v}
                lines.append(_row(f"wild ({len(wild)}) / {row}", {"niqe": v}))

    head = [f"Sets: {'; '.join(described)}; wild: {args.wild.name}. Candidate: `{args.model}`; shipped: "
            f"`{args.shipped}`. Masks for the learned models: {', '.join(modes)}. Recognised = dlib ResNet "
            f"distance to the ground truth < {SAME_PERSON} (the independent judge).", ""]
    tail = ["", f"Columns of grid_<set>_<preset>.png: {' | '.join(grid_columns)} | GT. "
            f"Took {time.time() - t0:.0f} s on {args.device}."]
    cand = cand_name or None
    if cand and "shipped" in models:
        tail += ship_rule_lines(results, cand, AUTO in fidelities)
    best = cand or ("shipped" if "shipped" in models else None)
    # the service's default is fidelity=auto: its row gets the targets too
    auto_rows = [f"{m}, fidelity {AUTO}" for m in ("shipped", cand) if m and AUTO in fidelities
                 and any(f"{m}, fidelity {AUTO}" in v for v in results.values())]
    for row in [best, *auto_rows]:
        if row:
            tail += ["", f"Targets for `{row}` against the input:", "", "| set / preset | checks |", "|---|---|",
                     *target_lines(results, row, clean_niqe)]
    text = "\n".join(head + lines + tail) + "\n"
    (args.out / "eval.md").write_text(text)
    (args.out / "eval.json").write_text(json.dumps(results, indent=1))
    (args.out / "faces.json").write_text(json.dumps(per_face))
    curves = [m for m in ("shipped", cand) if m and any(m in v for v in results.values())]
    if curves and fidelities:
        plot_curve(results, curves, args.out / "fidelity_curve.png")
    print(text)


if __name__ == "__main__":
    main()
