"""The GPU check's figures: merged into one JSON on the lent machine, written into the README here.

    python3 scripts/gpu_figures.py --merge PARTS_DIR --out $OUT/gpu_check.json [--seconds S]
    .venv/bin/python scripts/gpu_figures.py --readme gpu_check.json [--readme-path README.md]

``--merge`` (run by scripts/gpu_check.sh) reads the parts its steps wrote (``steps``, ``tests.xml``,
``stages.json``, ``layout.json``, ``pipeline.json``, ``train_step.json``; a missing part stays out) and
adds the date, the machine (GPU, driver, torch, CPU cores) and a summary against the issue's targets:
≥ 50 one-face 1080p photos/s and the GPU busy ≥ 70 % through the worker's code path, the generator
≤ 2 ms a face at batch ≥ 16. ``--readme`` renders that summary as the README's "GPU figures" section
(between its two markers) and keeps the whole JSON beside the docs (gpu_check.json in docs/), so the
figures come from a run, with its date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

START, END = "<!-- gpu-figures:start -->", "<!-- gpu-figures:end -->"
#: where ``--readme`` keeps the run's whole JSON (committed with the README section it wrote)
KEPT = Path(__file__).resolve().parents[1] / "docs" / "gpu_check.json"
TARGETS = {"one_face_1080p_photos_per_s": 50.0, "gpu_busy_pct": 70.0, "generator_ms_per_face_batch16plus": 2.0}


def _read(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {"cpu_cores": os.cpu_count()}
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    except Exception as e:  # noqa: BLE001 - a wedged GPU must not cost the figures already measured
        info["torch_error"] = repr(e)
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,compute_mode", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        info["driver"], _, info["compute_mode"] = (out.stdout.strip() or "None").partition(", ")
    except (OSError, subprocess.SubprocessError):
        info["driver"] = None
    return info


def _tests(path: Path) -> dict[str, int] | None:
    if not path.is_file():
        return None
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return None
    return {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}


def summary(figures: dict[str, Any]) -> dict[str, Any]:
    """The headline figures and the targets they meet (None where a part is missing)."""
    out: dict[str, Any] = {}
    layout = figures.get("layout") or []
    for photo in ("one1080", "solvay"):
        rows = [r for r in layout if r["photo"] == photo and "photos_per_s" in r]
        if rows:
            best = max(rows, key=lambda r: r["photos_per_s"])
            out[f"{photo}_best"] = {k: best.get(k) for k in ("children", "photos_per_s", "faces_per_s",
                                                             "gpu_busy_pct", "gpu_mib_per_child")}
    stages = figures.get("stages") or []
    gen = {(r["precision"], r["batch"]): r["ms_per_face"] for r in stages if r["stage"] == "generate"}
    out["generator_ms_per_face"] = {f"{p} batch {b}": v for (p, b), v in sorted(gen.items())}
    big = [(v, p, b) for (p, b), v in gen.items() if b >= 16]
    one = out.get("one1080_best") or {}
    got = {"one_face_1080p_photos_per_s": one.get("photos_per_s"), "gpu_busy_pct": one.get("gpu_busy_pct"),
           "generator_ms_per_face_batch16plus": min(big)[0] if big else None}
    if big:
        out["generator_best_batch16plus"] = {"ms_per_face": min(big)[0], "precision": min(big)[1],
                                             "batch": min(big)[2]}
    def met(key: str, target: float) -> bool | None:
        value = got[key]
        if value is None:
            return None
        return value <= target if key.startswith("generator") else value >= target

    out["targets"] = {k: {"target": t, "measured": got[k], "met": met(k, t)} for k, t in TARGETS.items()}
    train = figures.get("train_step") or []
    out["train_step_img_s"] = {f"{r['size']} px {r['precision']} batch {r['batch']}": r["gan_step_img_s"]
                               for r in train}
    return out


def merge(parts: Path, seconds: float | None) -> dict[str, Any]:
    steps = {}
    if (parts / "steps").is_file():
        for line in (parts / "steps").read_text().splitlines():
            name, *rest = line.split()
            steps[name] = {"exit": rest[0], "seconds": int(rest[1])} if len(rest) == 2 else {"exit": "skipped"}
    figures: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _machine(), "seconds": seconds, "steps": steps, "tests": _tests(parts / "tests.xml"),
        **{name: _read(parts / f"{name}.json") for name in ("stages", "layout", "pipeline", "train_step")},
    }
    figures["summary"] = summary(figures)
    return figures


def render(figures: dict[str, Any]) -> str:
    """The README's section body for one run's figures."""
    s, m = figures["summary"], figures["machine"]
    lines = [f"Measured {figures['date']} on {m.get('gpu', 'no GPU')} (driver {m.get('driver')}, torch "
             f"{m.get('torch')}, {m.get('cpu_cores')} CPU cores) by `scripts/gpu_check.sh`; every figure: "
             f"`{KEPT.relative_to(KEPT.parents[1])}`.", "",
             "| figure | measured | target |", "|---|---|---|"]
    names = {"one_face_1080p_photos_per_s": "one-face 1080p photos/s, worker code path",
             "gpu_busy_pct": "GPU busy meanwhile, %", "generator_ms_per_face_batch16plus":
             "generator ms a face, batch ≥ 16"}
    for key, t in s["targets"].items():
        mark = "" if t["met"] is None else (" ✓" if t["met"] else " ✗")
        lines.append(f"| {names[key]} | {t['measured']}{mark} | {'≤' if key.startswith('generator') else '≥'} "
                     f"{t['target']:g} |")
    for photo, label in (("one1080_best", "one-face 1080p"), ("solvay_best", "Solvay, 29 faces")):
        if photo in s:
            b = s[photo]
            lines.append(f"| {label}: best layout | {b['children']} children: {b['photos_per_s']} photos/s, "
                         f"{b['gpu_mib_per_child']} MiB GPU memory per child | |")
    for key, v in s.get("generator_ms_per_face", {}).items():
        lines.append(f"| generator, {key} | {v} ms a face | |")
    for key, v in s.get("train_step_img_s", {}).items():
        lines.append(f"| training GAN step, {key} | {v} img/s | |")
    tests = figures.get("tests")
    if tests:
        passed = tests["tests"] - tests["failures"] - tests["errors"] - tests["skipped"]
        lines.append(f"| torch stages = numpy stages on CUDA (tests) | {passed} passed of {tests['tests']} | all |")
    return "\n".join(lines)


def write_readme(figures: dict[str, Any], readme: Path) -> None:
    """The README's section from ``figures``; the whole JSON goes beside it, to :data:`KEPT`."""
    KEPT.write_text(json.dumps(figures, indent=1) + "\n")
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme} has no {START} ... {END} section")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{render(figures)}\n{END}{tail}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--merge", type=Path, help="the parts folder scripts/gpu_check.sh filled")
    p.add_argument("--out", type=Path, help="where --merge writes the JSON")
    p.add_argument("--seconds", type=float, help="how long the whole check took")
    p.add_argument("--readme", type=Path, help="a gpu_check.json to write into the README")
    p.add_argument("--readme-path", type=Path, default=Path(__file__).resolve().parents[1] / "README.md")
    args = p.parse_args()
    if args.merge:
        figures = merge(args.merge, args.seconds)
        out = args.out or Path("gpu_check.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(figures, indent=1))
        print(json.dumps(figures["summary"], indent=1))
    if args.readme:
        write_readme(json.loads(args.readme.read_text()), args.readme_path)
        print(f"wrote the GPU figures of {args.readme} into {args.readme_path}")


if __name__ == "__main__":
    main()
