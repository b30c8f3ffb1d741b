"""scripts/evaluate.py end to end on a miniature pack: every baseline and mask source gets its rows."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import torch

from restoration.generator import Generator, GeneratorConfig, save_generator

ROOT = Path(__file__).resolve().parents[2]


def test_evaluate_scores_each_mask_source(mini_pack: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    g = Generator(GeneratorConfig.tiny(64))
    with torch.no_grad():  # style maps start as identity (masks ignored): make the masks matter
        for sm in g.style_maps:
            sm.out.weight.normal_()
    save_generator(g, tmp_path / "g.safetensors", "test")
    wild = tmp_path / "wild"
    wild.mkdir()
    for p in sorted((mini_pack / "faces").glob("*.jpg"))[:2]:
        shutil.copy(p, wild / p.name)

    out = tmp_path / "eval"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--model",
                        str(tmp_path / "g.safetensors"), "--pack", str(mini_pack), "--wild", str(wild),
                        "--out", str(out), "--device", "cpu", "--masks", "clean,degraded,none,restored"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {line.split("|")[1].strip(): line for line in (out / "eval.md").read_text().splitlines()
            if line.startswith("| ") and "/" in line}
    for preset in ("gfpgan", "heavy", "mixed"):
        for m in ("input", "classical", "ours, clean masks", "ours, degraded masks", "ours, none masks",
                  "ours, restored masks"):
            assert f"{preset} / {m}" in rows, rows.keys()
        assert rows[f"{preset} / ours, clean masks"] != rows[f"{preset} / ours, none masks"]
        grid = cv2.imread(str(out / f"grid_{preset}.png"))
        assert grid.shape[1] == 7 * grid.shape[0] // 2  # 7 columns (input, classical, ours x4, GT) x 2 faces
    assert "wild (2) / ours, restored masks" in rows and "wild (2) / ours, clean masks" not in rows
