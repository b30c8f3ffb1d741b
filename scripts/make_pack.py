"""Build the training pack: every clean face of ``$FACES_DIR/hq`` aligned like the service aligns faces.

Why a pack: a GPU session only receives what travels with the call (≤ 64 MiB, tree + carried folders),
so the faces travel once as small aligned JPEGs with a manifest, never as the 117 MB source folder.
The pack goes to an ignored folder (``data/`` is in .gitignore): the faces are third-party data.

Layout of ``--out`` (default ``data/pack``)::

    manifest.csv            id, person, source, split, face_px (face size in the source), file
    faces/<id>.jpg          size×size aligned crop, JPEG ``--quality``
    masks/<id>.png          face-part class ids (restoration.parsing.PART_CLASSES) of the clean face
    masks_degraded/<id>_<k>.png  the same parser run on degraded copies (stage-2 "imperfect mask" mode)

Split: by person (London neutral and smiling share one person id), ~15% of people in validation,
decided by a hash of the person id so it never changes when faces are added.

    .venv/bin/python scripts/make_pack.py --out data/pack --size 512 --quality 92
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import shutil
from pathlib import Path

import cv2
import numpy as np

from restoration.paths import default_faces_dir, default_weights_dir

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> licence of its faces (../shared/MANIFEST.tsv); weights trained on a pack inherit them
LICENCES = {"london_neutral": "CC-BY-4.0", "london_smiling": "CC-BY-4.0", "canada": "CC-BY-4.0",
            "celebahq_stargan": "CelebA-HQ via StarGAN v2, CC-BY-NC-4.0", "celebahq_ddnm": "CelebA-HQ, non-commercial",
            "ffhq_gpen": "FFHQ, CC-BY-NC-SA-4.0", "idinvert_256": "FFHQ/CelebA-HQ, non-commercial"}
SOURCES = tuple(LICENCES)
COMMERCIAL = tuple(k for k, v in LICENCES.items() if v == "CC-BY-4.0")
VAL_PERCENT = 15
ALIGN = 512  # align at the service's size, then area-resize to the pack size


def person_id(source: str, stem: str) -> str:
    """Same person → same id: London files are ``<person>_03`` (neutral) and ``<person>_08`` (smiling)."""
    if source.startswith("london_"):
        return "london_" + stem.split("_")[0]
    return f"{source}_{stem}"


def split_of(person: str, val_percent: int = VAL_PERCENT) -> str:
    """Deterministic, order-independent split: a stable hash of the person id."""
    h = int(hashlib.sha1(person.encode()).hexdigest()[:8], 16)
    return "val" if h % 100 < val_percent else "train"


def _align(rgb: np.ndarray, detector: object) -> tuple[np.ndarray, float] | None:
    """Largest face aligned to the FFHQ 512 template, and its size in source pixels (512 / scale)."""
    from restoration.alignment import align_faces

    faces = detector.detect(rgb, threshold=0.5, min_face_size=32)  # type: ignore[attr-defined]
    if not faces:
        return None
    # the most confident face, not the largest: on these studio portraits RetinaFace also fires (score
    # ~0.55) on a larger chin-and-neck box, which largest-first would align instead of the face
    best = max(faces, key=lambda f: (round(f.score, 2), f.area))
    aligned = align_faces(rgb, best.landmarks[None], ALIGN)
    scale = float(np.sqrt(abs(np.linalg.det(aligned.affines[0][:, :2]))))
    return aligned.crops[0], ALIGN / scale


def main() -> None:
    faces_dir, weights_dir = default_faces_dir(), default_weights_dir()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces-dir", type=Path, default=faces_dir / "hq")
    ap.add_argument("--weights-dir", type=Path, default=weights_dir)
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "pack")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--quality", type=int, default=92)
    ap.add_argument("--min-face-px", type=int, default=0,
                    help="skip faces smaller than this in their source (default: half the pack size)")
    ap.add_argument("--masks", choices=("landmarks", "none"), default="landmarks")
    ap.add_argument("--degraded-masks", type=int, default=2, help="degraded copies parsed per face")
    ap.add_argument("--sources", default=",".join(SOURCES),
                    help=f"comma-separated source folders; 'commercial' = {','.join(COMMERCIAL)} (CC-BY-4.0 only)")
    ap.add_argument("--from-pack", type=Path, help="resize an existing pack instead (e.g. 512 -> 256, seconds)")
    args = ap.parse_args()
    sources = COMMERCIAL if args.sources == "commercial" else tuple(x.strip() for x in args.sources.split(","))
    if not sources or set(sources) - set(SOURCES):
        ap.error(f"--sources: a comma-separated subset of {', '.join(SOURCES)}, or 'commercial'")
    if args.from_pack:
        _resize_pack(args.from_pack, args.out, args.size, args.quality)
        return

    from restoration.detection import FaceDetector
    from restoration.training.data import read_rgb

    min_px = args.min_face_px or args.size // 2
    # RetinaFace mobile0.25's anchors stop at ~512 px: the studio portraits' 800-1300 px faces get wrong
    # landmarks at full size (up to 57 px off the template after alignment), 13-22 px when detected at 800
    detector = FaceDetector(args.weights_dir, "cpu", max_side=800)
    (args.out / "faces").mkdir(parents=True, exist_ok=True)
    rows, crops, skipped = [], [], []
    for source in sources:
        for path in sorted((args.faces_dir / source).glob("*")):
            if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            got = _align(read_rgb(path), detector)
            if got is None or got[1] < min_px:
                skipped.append(f"{source}/{path.name} ({'no face' if got is None else f'{got[1]:.0f} px'})")
                continue
            crop, face_px = got
            if args.size != ALIGN:
                crop = cv2.resize(crop, (args.size, args.size), interpolation=cv2.INTER_AREA)
            fid = f"{source}_{path.stem}"
            person = person_id(source, path.stem)
            cv2.imwrite(str(args.out / "faces" / f"{fid}.jpg"), crop[..., ::-1],
                        [cv2.IMWRITE_JPEG_QUALITY, args.quality])
            rows.append({"id": fid, "person": person, "source": source, "split": split_of(person),
                         "face_px": round(face_px), "file": f"faces/{fid}.jpg"})
            crops.append(crop)
    with open(args.out / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    if args.masks != "none":
        _write_masks(args, rows, crops)
    n_val = sum(r["split"] == "val" for r in rows)
    people = {r["person"] for r in rows}
    val_people = {r["person"] for r in rows if r["split"] == "val"}
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{len(rows)} faces ({len(people)} people): train {len(rows) - n_val}, val {n_val} "
          f"({len(val_people)} people); {size / 2**20:.1f} MiB in {args.out}")
    if skipped:
        print(f"skipped {len(skipped)}: " + ", ".join(skipped))
    print("licences of the faces (weights trained on this pack inherit them): "
          + "; ".join(sorted({LICENCES[r["source"]] for r in rows})))


def _resize_pack(src: Path, out: Path, size: int, quality: int) -> None:
    """Same faces, split and masks at another size (faces area-resized, masks nearest)."""
    for sub in ("faces", "masks", "masks_degraded"):
        if not (src / sub).is_dir():
            continue
        (out / sub).mkdir(parents=True, exist_ok=True)
        for p in sorted((src / sub).iterdir()):
            img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
            interp = cv2.INTER_AREA if sub == "faces" else cv2.INTER_NEAREST
            img = cv2.resize(img, (size, size), interpolation=interp)
            cv2.imwrite(str(out / sub / p.name), img, [cv2.IMWRITE_JPEG_QUALITY, quality] if sub == "faces" else [])
    shutil.copy2(src / "manifest.csv", out / "manifest.csv")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{out}: {size} px, {total / 2**20:.1f} MiB")


def _write_masks(args: argparse.Namespace, rows: list[dict], crops: list[np.ndarray]) -> None:
    """Parser masks of the clean faces, and of degraded copies (what the parser sees at inference)."""
    from restoration.degrade import degrade
    from restoration.parsing import get_parser

    parser = get_parser(args.masks, weights_dir=args.weights_dir)
    (args.out / "masks").mkdir(exist_ok=True)
    (args.out / "masks_degraded").mkdir(exist_ok=True)
    for i, (row, crop) in enumerate(zip(rows, crops, strict=True)):
        face = crop if args.size == ALIGN else cv2.resize(crop, (ALIGN, ALIGN), interpolation=cv2.INTER_CUBIC)
        rng = np.random.default_rng(i)
        batch = [face] + [degrade(face, ("mixed", "heavy")[k % 2], rng) for k in range(args.degraded_masks)]
        labels = parser.parse(np.stack(batch))
        if args.size != ALIGN:
            labels = np.stack([cv2.resize(m, (args.size, args.size), interpolation=cv2.INTER_NEAREST)
                               for m in labels])
        cv2.imwrite(str(args.out / "masks" / f"{row['id']}.png"), labels[0])
        for k, m in enumerate(labels[1:]):
            cv2.imwrite(str(args.out / "masks_degraded" / f"{row['id']}_{k}.png"), m)


if __name__ == "__main__":
    main()
