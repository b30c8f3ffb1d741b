"""Build a training pack from photo folders: detect, gate, de-duplicate, group by person, align, mask.

Why a pack: a GPU session only receives what travels with the call (≤ 64 MiB, tree + carried folders),
so the faces travel once as small aligned JPEGs with a manifest, never as the source folders. The pack
goes to an ignored folder (``data/`` is in .gitignore): the faces are third-party data.

Two packs, by licence (``--pack``):

* ``commercial`` — the sources whose licence allows a paid product (CC-BY-4.0 London/Canada, public-domain
  US Congress portraits). The shipped model is trained on this pack only.
* ``research`` — adds the non-commercial sources not reserved for evaluation, and any extra folder given
  with an unknown or non-commercial licence. For experiments; never shipped.

Sources marked ``eval_only`` (CelebA-HQ, FFHQ, idinvert) are the out-of-distribution benchmark of
``scripts/evaluate.py`` and never join a training pack. ``--pack ood`` aligns them like the others into an
evaluation pack whose faces are all in the ``val`` split (the trainer finds no training face in it), with
the size and sharpness gates off unless asked (idinvert's faces are 256 px).

Every photo passes the same gate, in this order; a photo that fails is listed in ``rejects.tsv`` with its
reason, never a crash: ``unreadable`` (corrupt, truncated or not an image), ``no face``, ``several faces``
(a second confident face at least half the size of the first), ``small face`` (the 512 template spans
fewer source pixels than ``--min-face-px``: the crop would be an up-sampled, soft target), ``soft``
(Laplacian variance of the aligned face at 256 px under ``--min-sharpness``), ``greyscale``, and
``near-duplicate`` (the whole photo's 256-bit difference hash within ``--dup-bits`` of a better copy).
Faces that pass are
grouped by person — the file-name rule of each source (London neutral/smiling share a person) and
MobileFaceNet cosine ≥ ``--same-person`` (the training-side recogniser, never the dlib judge) — and the
split is decided per group by a stable hash, so no person is in both train and val.

Layout of ``--out`` (default ``data/pack``)::

    manifest.csv            id, person, source, licence, split, face_px, sharpness, file
    quality.tsv             every photo's measurements and verdict (accepted / the reason)
    rejects.tsv             rejected photos with their reason
    report.md               counts per source, licence and split; rejects by reason
    contact.jpg             every accepted face, a row per source; rejects.jpg: rejects with reasons
    faces/<id>.jpg          size×size aligned crop, JPEG ``--quality``
    masks/<id>.png          face-part class ids (restoration.parsing.PART_CLASSES) of the clean face
    masks_degraded/<id>_<k>.png  the same parser run on degraded copies (stage-2 "imperfect mask" mode)

    .venv/bin/python scripts/make_pack.py --out data/pack --pack commercial        # make pack
    .venv/bin/python scripts/make_pack.py --out data/ood --pack ood                # make pack, too
    .venv/bin/python scripts/make_pack.py --out data/research --pack research ~/more_photos --licence CC0-1.0
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from restoration.paths import default_faces_dir, default_weights_dir

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Source:
    """A folder of clean photos under ``$FACES_DIR/hq`` and what its licence allows."""

    licence: str
    commercial: bool
    eval_only: bool = False  # the out-of-distribution benchmark: never packed


PUBLIC_DOMAIN = "public domain (US Government work)"
#: ../shared/MANIFEST.tsv's licences; weights trained on a pack inherit them
SOURCES: dict[str, Source] = {
    "london_neutral": Source("CC-BY-4.0", True),
    "london_smiling": Source("CC-BY-4.0", True),
    "canada": Source("CC-BY-4.0", True),
    "us_congress": Source(PUBLIC_DOMAIN, True),
    "celebahq_stargan": Source("CelebA-HQ via StarGAN v2, CC-BY-NC-4.0", False, eval_only=True),
    "celebahq_ddnm": Source("CelebA-HQ, non-commercial", False, eval_only=True),
    "ffhq_gpen": Source("FFHQ, CC-BY-NC-SA-4.0", False, eval_only=True),
    "idinvert_256": Source("FFHQ/CelebA-HQ, non-commercial", False, eval_only=True),
}
#: licences under which an extra folder may join the commercial pack
COMMERCIAL_LICENCES = ("CC-BY-4.0", "CC0-1.0", "public domain")
PACKS = {
    "commercial": tuple(k for k, s in SOURCES.items() if s.commercial and not s.eval_only),
    "research": tuple(k for k, s in SOURCES.items() if not s.eval_only),
    "ood": tuple(k for k, s in SOURCES.items() if s.eval_only),  # evaluation only: every face in "val"
}
COMMERCIAL = PACKS["commercial"]
EVAL_ONLY = tuple(k for k, s in SOURCES.items() if s.eval_only)
VAL_PERCENT = 15
ALIGN = 512  # align at the service's size, then area-resize to the pack size
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def person_id(source: str, stem: str) -> str:
    """Same person → same id: London files are ``<person>_03`` (neutral) and ``<person>_08`` (smiling)."""
    if source.startswith("london_"):
        return "london_" + stem.split("_")[0]
    return f"{source}_{stem}"


def split_of(person: str, val_percent: int = VAL_PERCENT) -> str:
    """Deterministic, order-independent split: a stable hash of the person id."""
    h = int(hashlib.sha1(person.encode()).hexdigest()[:8], 16)
    return "val" if h % 100 < val_percent else "train"


def read_photo(path: Path) -> np.ndarray:
    """RGB uint8, EXIF-rotated; raises ``ValueError`` on a corrupt, truncated or non-image file."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()  # a truncated file raises here (PIL does not pad it silently as OpenCV does)
            im = ImageOps.exif_transpose(im).convert("RGB")
            return np.asarray(im).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"{type(e).__name__}: {e}") from None


def sharpness(face512: np.ndarray) -> float:
    """Laplacian variance of the aligned face's central region at 256 px (grey): low = soft or blurred."""
    g = cv2.cvtColor(cv2.resize(face512, (256, 256), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(g[64:208, 72:184], cv2.CV_64F).var())


def is_greyscale(rgb: np.ndarray, tol: float = 3.0) -> bool:
    """No colour: the mean chroma of the Lab image is under ``tol`` (a sepia scan counts as colour)."""
    lab = cv2.cvtColor(cv2.resize(rgb, (128, 128), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2LAB)
    chroma = np.hypot(lab[..., 1].astype(np.float32) - 128, lab[..., 2].astype(np.float32) - 128)
    return float(chroma.mean()) < tol


def dhash(rgb: np.ndarray) -> int:
    """256-bit difference hash of the whole photo: re-encodes and resizes of one photo differ in few bits.

    Of the whole photo, not the aligned face: the detector's landmarks move by a pixel or two between a
    photo and its re-encoded copy, and the aligned crops then differ as much as two photos of one sitter
    (38-52 of 256 bits; correlation 0.89). Different photos of one person are no duplicates: the person
    grouping below keeps them in one split.
    """
    g = cv2.cvtColor(cv2.resize(rgb, (17, 16), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    bits = (g[:, 1:] > g[:, :-1]).flatten()
    return int(sum(1 << i for i, b in enumerate(bits) if b))


@dataclass
class Photo:
    """One input photo's measurements and verdict (``reason`` empty = accepted)."""

    source: str
    path: Path
    licence: str
    reason: str = ""
    face_px: float = 0.0
    sharpness: float = 0.0
    faces: int = 0
    grey: bool = False
    crop: np.ndarray | None = None
    hash: int = 0

    @property
    def id(self) -> str:
        return f"{self.source}_{self.path.stem}"


def measure(photo: Photo, detector: object) -> None:
    """Detect, align and measure one photo in place; sets ``reason`` when a per-photo gate fails."""
    from restoration.alignment import align_faces
    from restoration.detection import box_iou

    try:
        rgb = read_photo(photo.path)
    except ValueError as e:
        photo.reason = f"unreadable ({e})"
        return
    faces = detector.detect(rgb, threshold=0.5, min_face_size=32)  # type: ignore[attr-defined]
    if not faces:
        photo.reason = "no face"
        return
    # the most confident face, not the largest: on these studio portraits RetinaFace also fires (score
    # ~0.55) on a larger chin-and-neck box, which largest-first would align instead of the face
    best = max(faces, key=lambda f: (round(f.score, 2), f.area))
    side = float(np.sqrt(best.area))
    photo.faces = sum(f.score >= 0.9 for f in faces)
    others = [f for f in faces if f is not best and f.score >= 0.9 and np.sqrt(f.area) >= side / 2
              and box_iou(f.box, best.box) < 0.3]
    aligned = align_faces(rgb, best.landmarks[None], ALIGN)
    photo.face_px = ALIGN / float(np.sqrt(abs(np.linalg.det(aligned.affines[0][:, :2]))))
    photo.crop = aligned.crops[0]
    photo.sharpness = sharpness(photo.crop)
    photo.grey = is_greyscale(photo.crop)
    photo.hash = dhash(rgb)
    if others:
        photo.reason = f"several faces ({len(others) + 1})"


def gate(photos: list[Photo], min_face_px: float, min_sharpness: float, dup_bits: int) -> None:
    """The size, sharpness, colour and near-duplicate gates, in place (after :func:`measure`)."""
    for p in photos:
        if p.reason:
            continue
        if p.face_px < min_face_px:
            p.reason = f"small face ({p.face_px:.0f} px < {min_face_px:.0f})"
        elif p.sharpness < min_sharpness:
            p.reason = f"soft (sharpness {p.sharpness:.0f} < {min_sharpness:.0f})"
        elif p.grey:
            p.reason = "greyscale"
    # near-duplicates: keep the copy with the most native pixels, then the sharpest
    kept: list[Photo] = []
    for p in sorted((p for p in photos if not p.reason), key=lambda p: (-p.face_px, -p.sharpness, p.id)):
        twin = next((k for k in kept if bin(p.hash ^ k.hash).count("1") <= dup_bits), None)
        if twin is not None:
            p.reason = f"near-duplicate of {twin.id}"
        else:
            kept.append(p)


def group_people(photos: list[Photo], embedder: object | None, same_person: float) -> dict[str, str]:
    """Photo id → group id: the sources' file-name rule, joined by identity cosine ≥ ``same_person``."""
    ids = [p.id for p in photos]
    parent = {i: person_id(p.source, p.path.stem) for i, p in zip(ids, photos, strict=True)}
    roots = {r: r for r in parent.values()}

    def find(x: str) -> str:
        while roots[x] != x:
            roots[x] = roots[roots[x]]
            x = roots[x]
        return x

    if embedder is not None and len(photos) > 1:
        emb = np.concatenate([embedder.embed_aligned(np.stack([p.crop for p in photos[i:i + 32]]))  # type: ignore[attr-defined]
                              for i in range(0, len(photos), 32)])
        sim = emb @ emb.T
        for a, b in zip(*np.nonzero(np.triu(sim, 1) >= same_person), strict=True):
            ra, rb = find(parent[ids[a]]), find(parent[ids[b]])
            if ra != rb:
                roots[max(ra, rb)] = min(ra, rb)
    return {i: find(parent[i]) for i in ids}


def collect(args: argparse.Namespace) -> list[Photo]:
    """The photos of the chosen pack's sources and of the extra folders, in a stable order."""
    folders: list[tuple[str, Path, str]] = [(s, args.faces_dir / s, SOURCES[s].licence) for s in args.sources]
    for extra in args.folders:
        folders.append((extra.name, extra, args.licence))
    photos = []
    for name, folder, licence in folders:
        for path in sorted(folder.glob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                photos.append(Photo(name, path, licence))
            elif path.is_file() and path.suffix.lower() not in (".csv", ".tsv", ".tem", ".txt", ".md"):
                photos.append(Photo(name, path, licence, reason="unreadable (not an image file name)"))
    return photos


def main() -> None:
    faces_dir, weights_dir = default_faces_dir(), default_weights_dir()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="*", type=Path, help="extra photo folders (their licence: --licence)")
    ap.add_argument("--licence", default="unknown",
                    help=f"licence of the extra folders; commercial pack only if one of {COMMERCIAL_LICENCES}")
    ap.add_argument("--pack", choices=tuple(PACKS), default="commercial")
    ap.add_argument("--sources", help="comma-separated source folders of $FACES_DIR/hq instead of --pack's "
                    f"(any of {', '.join(k for k in SOURCES if k not in EVAL_ONLY)}; 'commercial' = the pack)")
    ap.add_argument("--faces-dir", type=Path, default=faces_dir / "hq")
    ap.add_argument("--weights-dir", type=Path, default=weights_dir)
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "pack")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--quality", type=int, default=92)
    ap.add_argument("--min-face-px", type=float,
                    help="source pixels the 512 template must span (below: an up-sampled, soft target); "
                    "default 300, 0 for --pack ood")
    ap.add_argument("--min-sharpness", type=float,
                    help="Laplacian variance of the aligned face at 256 px; default 60, 0 for --pack ood")
    ap.add_argument("--dup-bits", type=int, default=12, help="difference-hash bits within which faces are copies")
    ap.add_argument("--same-person", type=float, default=0.55,
                    help="MobileFaceNet cosine at which two faces join one person (0 = file names only)")
    ap.add_argument("--masks", choices=("landmarks", "none"), default="landmarks")
    ap.add_argument("--degraded-masks", type=int, default=2, help="degraded copies parsed per face")
    ap.add_argument("--from-pack", type=Path, help="resize an existing pack instead (e.g. 512 -> 256, seconds)")
    args = ap.parse_args()
    ood = args.pack == "ood"
    args.min_face_px = args.min_face_px if args.min_face_px is not None else 0 if ood else 300
    args.min_sharpness = args.min_sharpness if args.min_sharpness is not None else 0 if ood else 60.0
    if args.from_pack:
        _resize_pack(args.from_pack, args.out, args.size, args.quality)
        return
    if args.sources in (None, "commercial", "research"):
        args.sources = PACKS[args.sources or args.pack]
        if args.sources is PACKS["research"]:
            args.pack = "research"
    elif ood:
        ap.error("--pack ood takes its sources from the table (no --sources)")
    else:
        args.sources = tuple(x.strip() for x in args.sources.split(","))
        bad = set(args.sources) - set(SOURCES) | set(args.sources) & set(EVAL_ONLY)
        if bad:
            ap.error(f"--sources: {', '.join(sorted(bad))}: not a packable source "
                     f"({', '.join(EVAL_ONLY)} are for evaluation only)")
    if args.pack == "commercial":
        if any(not SOURCES[s].commercial for s in args.sources):
            ap.error("--pack commercial: a source has a non-commercial licence (use --pack research)")
        if args.folders and not args.licence.startswith(COMMERCIAL_LICENCES):
            ap.error(f"--pack commercial: extra folders need --licence in {COMMERCIAL_LICENCES}")
    for folder in args.folders:
        if not folder.is_dir():
            ap.error(f"{folder}: not a folder")

    from restoration.detection import FaceDetector

    # RetinaFace mobile0.25's anchors stop at ~512 px: the studio portraits' 800-1300 px faces get wrong
    # landmarks at full size (up to 57 px off the template after alignment), 13-22 px when detected at 800
    detector = FaceDetector(args.weights_dir, "cpu", max_side=800)
    photos = collect(args)
    for i, p in enumerate(photos):
        if not p.reason:
            measure(p, detector)
        if (i + 1) % 100 == 0:
            print(f"  measured {i + 1}/{len(photos)}", flush=True)
    gate(photos, args.min_face_px, args.min_sharpness, args.dup_bits)
    accepted = [p for p in photos if not p.reason]
    if not accepted:
        raise SystemExit("no face passed the gate: see the reasons with --out's rejects.tsv")
    embedder = None
    if args.same_person > 0:
        from restoration.identity import IdentityEmbedder

        embedder = IdentityEmbedder(args.weights_dir)
    groups = group_people(accepted, embedder, args.same_person or 1.1)
    write_pack(args, photos, accepted, groups)


def write_pack(args: argparse.Namespace, photos: list[Photo], accepted: list[Photo], groups: dict[str, str]
               ) -> None:
    """Faces, manifest, masks, the quality and reject lists, the report and the contact sheets."""
    out: Path = args.out
    if (out / "faces").is_dir():
        shutil.rmtree(out / "faces")
    for sub in ("masks", "masks_degraded"):
        if (out / sub).is_dir():
            shutil.rmtree(out / sub)
    (out / "faces").mkdir(parents=True)
    rows, crops = [], []
    for p in accepted:
        crop = p.crop
        if args.size != ALIGN:
            crop = cv2.resize(crop, (args.size, args.size), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(out / "faces" / f"{p.id}.jpg"), crop[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, args.quality])
        person = groups[p.id]
        split = "val" if args.pack == "ood" else split_of(person)
        rows.append({"id": p.id, "person": person, "source": p.source, "licence": p.licence,
                     "split": split, "face_px": round(p.face_px), "sharpness": round(p.sharpness, 1),
                     "file": f"faces/{p.id}.jpg"})
        crops.append(crop)
    with open(out / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(out / "quality.tsv", "w") as f:
        f.write("source\tfile\tfaces_at_0.9\tface_px\tsharpness\tgreyscale\tverdict\n")
        for p in photos:
            f.write(f"{p.source}\t{p.path.name}\t{p.faces}\t{p.face_px:.0f}\t{p.sharpness:.1f}\t{p.grey}\t"
                    f"{p.reason or 'accepted'}\n")
    rejects = [p for p in photos if p.reason]
    with open(out / "rejects.tsv", "w") as f:
        f.write("source\tfile\treason\n")
        f.writelines(f"{p.source}\t{p.path}\t{p.reason}\n" for p in rejects)
    if args.masks != "none":
        _write_masks(args, rows, crops)
    _contact_sheet(accepted, out / "contact.jpg")
    if rejects:
        _contact_sheet(rejects, out / "rejects.jpg", label=True)
    report = _report(args, photos, rows)
    (out / "report.md").write_text(report)
    print(report)


def _report(args: argparse.Namespace, photos: list[Photo], rows: list[dict]) -> str:
    people = {r["person"] for r in rows}
    val = [r for r in rows if r["split"] == "val"]
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    lines = [f"# Pack `{args.pack}`: {len(rows)} faces of {len(people)} people",
             "",
             f"Train {len(rows) - len(val)} faces, val {len(val)} faces of {len({r['person'] for r in val})} "
             f"people (split by person, stable hash); {size / 2**20:.1f} MiB at {args.size} px.",
             f"Gate: face ≥ {args.min_face_px:.0f} source px, sharpness ≥ {args.min_sharpness:.0f}, colour, "
             f"one face; near-duplicates within {args.dup_bits} hash bits; same person at MobileFaceNet cosine "
             f"≥ {args.same_person}.",
             "", "| source | licence | photos | accepted | people | train | val |", "|---|---|---|---|---|---|---|"]
    for src in dict.fromkeys(p.source for p in photos):
        mine = [r for r in rows if r["source"] == src]
        lic = next(p.licence for p in photos if p.source == src)
        lines.append(f"| {src} | {lic} | {sum(p.source == src for p in photos)} | {len(mine)} | "
                     f"{len({r['person'] for r in mine})} | {sum(r['split'] == 'train' for r in mine)} | "
                     f"{sum(r['split'] == 'val' for r in mine)} |")
    lines += ["", "Licences of the faces (weights trained on this pack inherit them): "
              + "; ".join(sorted({r["licence"] for r in rows})) + ".", "",
              "| rejected because | photos |", "|---|---|"]
    kinds = Counter(p.reason.split(" (")[0].split(" of ")[0] for p in photos if p.reason)
    lines += [f"| {k} | {n} |" for k, n in kinds.most_common()] or ["| (none) | 0 |"]
    merged = Counter(r["person"] for r in rows)
    multi = sum(1 for n in merged.values() if n > 1)
    lines += ["", f"{multi} people have more than one face; every file and its reason: rejects.tsv, "
              "quality.tsv. Contact sheets: contact.jpg (accepted), rejects.jpg.", ""]
    return "\n".join(lines)


def _contact_sheet(photos: list[Photo], path: Path, label: bool = False, tile: int = 96, cols: int = 24) -> None:
    """A grid of thumbnails (aligned crops where there is one), labelled with the reason for rejects."""
    tiles = []
    for p in photos:
        t = np.zeros((tile, tile, 3), np.uint8) if p.crop is None else cv2.resize(
            p.crop, (tile, tile), interpolation=cv2.INTER_AREA)
        if label:
            t = t.copy()
            cv2.rectangle(t, (0, tile - 24), (tile, tile), (0, 0, 0), -1)
            for k, text in enumerate((p.id[-14:], p.reason.split(" (")[0][:16])):
                cv2.putText(t, text, (2, tile - 14 + 11 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 255), 1,
                            cv2.LINE_AA)
        tiles.append(t)
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % cols)
    grid = np.concatenate([np.concatenate(tiles[i:i + cols], axis=1) for i in range(0, len(tiles), cols)])
    cv2.imwrite(str(path), grid[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])


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
