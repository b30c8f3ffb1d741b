"""Face-part masks for 512x512 FFHQ-aligned faces.

The generator is conditioned on a one-hot map of face parts, so every parser backend maps its own
labels onto ONE class set, :data:`PART_CLASSES`. Two real backends exist:

* ``bisenet`` / ``parsenet``: facexlib's CelebAMask-HQ parsers (19 labels, mapped below). They see hair,
  ears, neck, glasses and clothes, but not irises. Their weights are downloaded by real deployments
  into ``<weights_dir>/facexlib``; they are absent on development machines.
* ``landmarks``: MediaPipe Face Landmarker v2 (478-point mesh) run through ``ai_edge_litert``; the mesh is
  rasterised into polygons (skin, brows, eyes, irises, nose, lips, inner mouth). MediaPipe Selfie
  Segmentation (a person mask) then outlines what the mesh cannot see, and :func:`split_person` divides
  the person pixels outside the mesh into ``hair``, ``ears``, ``neck`` and ``cloth`` by their place
  relative to the face and their colour relative to its skin. It never produces ``eyeglasses`` or
  ``accessories`` (:data:`LANDMARK_ABSENT`).

``none`` returns all-background maps: the mask-free path (the generator also accepts ``mask=None``).
"""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path
from typing import NamedTuple, Protocol

import cv2
import numpy as np
import torch

from restoration.alignment import FACE_SIZE, FFHQ_TEMPLATE_512
from restoration.errors import WeightsMissing

#: The one class set every backend maps onto; the generator's mask channels follow this order.
PART_CLASSES: list[str] = [
    "background",   # 0
    "skin",         # 1  face skin incl. forehead (landmarks: face oval, to mid-forehead, minus parts)
    "brows",        # 2  both eyebrows
    "eyes",         # 3  the visible eye opening (sclera + iris for the CelebA parsers)
    "irises",       # 4  landmarks only: iris disc clipped by the eyelids
    "nose",         # 5
    "lips",         # 6  upper + lower lip
    "inner_mouth",  # 7  teeth, tongue, the dark between the lips
    "hair",         # 8  landmarks: person mask above/beside the face, not skin-coloured
    "ears",         # 9  landmarks: skin-coloured person pixels beside the face (CelebA: earrings -> accessories)
    "neck",         # 10 landmarks: skin-coloured person pixels below the mouth (neck, bare shoulders)
    "eyeglasses",   # 11 CelebA parsers only
    "accessories",  # 12 CelebA parsers only: hat, earring, necklace
    "cloth",        # 13 landmarks: person pixels below the chin that are neither skin nor hair-coloured
]
NUM_PART_CLASSES: int = len(PART_CLASSES)
_C = {name: i for i, name in enumerate(PART_CLASSES)}

#: Classes the landmark backend can never produce (document for training: mask dropout covers them).
LANDMARK_ABSENT: frozenset[str] = frozenset({"eyeglasses", "accessories"})
#: Classes the CelebAMask-HQ parsers can never produce.
CELEBA_ABSENT: frozenset[str] = frozenset({"irises"})

# facexlib BiSeNet (zllrunning/face-parsing.PyTorch label order).
BISENET_LABELS: list[str] = [
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
    "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat",
]
# facexlib ParseNet (PSFRGAN / official CelebAMask-HQ label order).
PARSENET_LABELS: list[str] = [
    "background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
    "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
]
_CELEBA_TO_PART: dict[str, str] = {
    "background": "background", "skin": "skin", "l_brow": "brows", "r_brow": "brows",
    "l_eye": "eyes", "r_eye": "eyes", "eye_g": "eyeglasses", "l_ear": "ears", "r_ear": "ears",
    "ear_r": "accessories", "nose": "nose", "mouth": "inner_mouth", "u_lip": "lips", "l_lip": "lips",
    "neck": "neck", "neck_l": "accessories", "cloth": "cloth", "hair": "hair", "hat": "accessories",
}


#: The coarse regions whose borders are a part map's outlines: the face (skin and the features inside it,
#: whose own borders are real edges of a face), hair, ears, neck, cloth, accessories and the background.
_REGION = np.array([{"background": 0, "hair": 2, "ears": 3, "neck": 4, "accessories": 5, "cloth": 6}.get(name, 1)
                    for name in PART_CLASSES], np.uint8)


def outlines(labels: np.ndarray, width: int = 5) -> np.ndarray:
    """Boolean H×W band, about ``width`` px wide (at least 2), along the borders between the coarse regions
    of an H×W part map (face, hair, ears, neck, cloth, accessories, background): where a generator that
    copies its condition would draw the face oval's ring and the hair's wavy edge (metrics.outline_edge
    measures it)."""
    region = _REGION[labels]
    kernel = np.ones((3, 3), np.uint8)
    border = cv2.dilate(region, kernel) != cv2.erode(region, kernel)
    if width > 3:
        border = cv2.dilate(border.astype(np.uint8), np.ones((width - 2, width - 2), np.uint8)) > 0
    return border


def celeba_lut(labels: list[str]) -> np.ndarray:
    """Lookup table: CelebAMask-HQ label id (in the given order) -> PART_CLASSES id."""
    return np.array([_C[_CELEBA_TO_PART[name]] for name in labels], dtype=np.uint8)


class FaceParser(Protocol):
    name: str

    def parse(self, faces: np.ndarray) -> np.ndarray:
        """uint8 N x 512 x 512 x 3 RGB aligned faces -> uint8 N x 512 x 512 PART_CLASSES ids."""
        ...


def _check_faces(faces: np.ndarray) -> np.ndarray:
    faces = np.asarray(faces)
    if faces.ndim == 3:
        faces = faces[None]
    if faces.ndim != 4 or faces.shape[1:] != (FACE_SIZE, FACE_SIZE, 3) or faces.dtype != np.uint8:
        raise ValueError(f"expected uint8 N x {FACE_SIZE} x {FACE_SIZE} x 3 RGB faces, got {faces.dtype} "
                         f"{faces.shape}")
    return faces


class NoneParser:
    """All background: the mask-free path, so callers need no special case."""

    name = "none"

    def parse(self, faces: np.ndarray) -> np.ndarray:
        faces = _check_faces(faces)
        return np.zeros(faces.shape[:3], dtype=np.uint8)


class CelebAParser:
    """facexlib BiSeNet / ParseNet at 512, labels remapped onto PART_CLASSES.

    Runs on its device in batches; :meth:`parse` also takes the faces as a tensor already on that device
    (the pipeline's torch stages), which then never leave it.
    """

    #: the pipeline may pass device tensors (restoration/pipeline.py ``Restorer._parse``)
    takes_tensors = True

    def __init__(self, kind: str, weights_path: Path, device: str = "cpu") -> None:
        from facexlib.parsing.bisenet import BiSeNet
        from facexlib.parsing.parsenet import ParseNet

        self.name = kind
        self.device = torch.device(device)
        if kind == "bisenet":
            net: torch.nn.Module = BiSeNet(num_class=19)
            self._mean, self._std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
            self._lut = torch.from_numpy(celeba_lut(BISENET_LABELS))
        else:
            net = ParseNet(in_size=512, out_size=512, parsing_ch=19)
            self._mean, self._std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
            self._lut = torch.from_numpy(celeba_lut(PARSENET_LABELS))
        net.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True), strict=True)
        self.net = net.eval().to(self.device)
        self._lut = self._lut.to(self.device)

    @torch.inference_mode()
    def parse(self, faces: np.ndarray | torch.Tensor, batch_size: int = 8) -> np.ndarray:
        """uint8 N×512×512×3 RGB faces (numpy, or a tensor on any device) -> uint8 N×512×512 part ids."""
        if isinstance(faces, torch.Tensor):
            if faces.ndim == 3:
                faces = faces[None]
            if faces.ndim != 4 or tuple(faces.shape[1:]) != (FACE_SIZE, FACE_SIZE, 3) or faces.dtype != torch.uint8:
                raise ValueError(f"expected uint8 N x {FACE_SIZE} x {FACE_SIZE} x 3 RGB faces, got {faces.dtype} "
                                 f"{tuple(faces.shape)}")
            batches = faces
        else:
            batches = torch.from_numpy(_check_faces(faces))
        mean = torch.tensor(self._mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self._std, device=self.device).view(1, 3, 1, 1)
        out = []
        for i in range(0, len(batches), batch_size):
            x = batches[i:i + batch_size].to(self.device).permute(0, 3, 1, 2).float() / 255.0
            logits = self.net((x - mean) / std)[0]
            out.append(self._lut[logits.argmax(1)].cpu().numpy())
        return np.concatenate(out, 0)


# --- landmark backend ------------------------------------------------------------------------------
# MediaPipe canonical mesh index loops (from the published face-mesh topology), each a closed polygon.
_FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
              152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
_LIPS_OUTER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146]
_LIPS_INNER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95]
_EYE_R = [33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7]  # subject's right
_EYE_L = [263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249]
_BROW_R = [70, 63, 105, 66, 107, 55, 65, 52, 53, 46]  # upper edge outward->inward, lower edge back
_BROW_L = [300, 293, 334, 296, 336, 285, 295, 282, 283, 276]
_NOSE_HULL = [168, 193, 417, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 97, 326, 327, 64, 294, 48, 278, 115, 344,
              220, 440, 45, 275]
_IRIS_R = (468, [469, 470, 471, 472])  # centre, ring
_IRIS_L = (473, [474, 475, 476, 477])

# mesh points comparable with the template: eye centres (iris centres), nose tip, mouth corners
_TEMPLATE_MESH_IDX = [468, 473, 1, 61, 291]


def _sub(lm: np.ndarray, idx: list[int]) -> np.ndarray:
    return np.round(lm[idx, :2] * 8).astype(np.int32)  # 3 fractional bits for cv2 shift=3


def rasterise_landmarks(lm: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """478 x 2(+) mesh points in pixel coordinates of a ``size`` crop -> uint8 size x size class map.

    Later parts overwrite earlier ones: skin < nose < brows < eyes < irises (clipped to the eye) < lips <
    inner mouth.
    """
    lab = np.zeros((size, size), dtype=np.uint8)

    def fill(idx: list[int], cls: str, target: np.ndarray = lab) -> None:
        cv2.fillPoly(target, [_sub(lm, idx)], int(_C[cls]), lineType=cv2.LINE_8, shift=3)

    fill(_FACE_OVAL, "skin")
    nose = cv2.convexHull(_sub(lm, _NOSE_HULL))
    cv2.fillPoly(lab, [nose], int(_C["nose"]), shift=3)
    fill(_BROW_R, "brows")
    fill(_BROW_L, "brows")
    for eye, (centre, ring) in ((_EYE_R, _IRIS_R), (_EYE_L, _IRIS_L)):
        eye_mask = np.zeros_like(lab)
        fill(eye, "eyes", eye_mask)
        lab[eye_mask > 0] = _C["eyes"]
        c = lm[centre, :2]
        r = float(np.mean(np.linalg.norm(lm[ring, :2] - c, axis=1)))
        iris = np.zeros_like(lab)
        cv2.circle(iris, (int(round(c[0] * 8)), int(round(c[1] * 8))), int(round(r * 8)), 1, -1, shift=3)
        lab[(iris > 0) & (eye_mask > 0)] = _C["irises"]
    fill(_LIPS_OUTER, "lips")
    fill(_LIPS_INNER, "inner_mouth")
    return lab


def template_landmark_error(lm: np.ndarray) -> float:
    """Mean distance (px at 512) between mesh eye/nose/mouth points and the FFHQ template.

    On well-aligned faces this is ~5-15 px; a large value means the mesh failed (e.g. a very degraded face).
    """
    return float(np.mean(np.linalg.norm(lm[_TEMPLATE_MESH_IDX, :2] - FFHQ_TEMPLATE_512, axis=1)))


def template_prior(size: int = FACE_SIZE) -> np.ndarray:
    """A coarse part map drawn from the 5-point template alone: the fallback when the mesh fails."""
    s = size / FACE_SIZE
    t = FFHQ_TEMPLATE_512 * s
    lab = np.zeros((size, size), dtype=np.uint8)
    cx = float(t[:, 0].mean())
    cv2.ellipse(lab, (int(cx), int(0.5 * (t[0, 1] + t[3, 1]))), (int(150 * s), int(200 * s)), 0, 0, 360,
                int(_C["skin"]), -1)
    for e in t[:2]:
        brow_c, eye_c = (int(e[0]), int(e[1] - 32 * s)), (int(e[0]), int(e[1]))
        cv2.ellipse(lab, brow_c, (int(34 * s), int(9 * s)), 0, 0, 360, int(_C["brows"]), -1)
        cv2.ellipse(lab, eye_c, (int(26 * s), int(11 * s)), 0, 0, 360, int(_C["eyes"]), -1)
    nx, ny = t[2, 0], t[2, 1] + 10 * s
    nose = np.array([[cx, t[0, 1]], [nx - 24 * s, ny], [nx + 24 * s, ny]])
    cv2.fillPoly(lab, [np.round(nose).astype(np.int32)], int(_C["nose"]))
    mc = t[3:].mean(0)
    half_w = float(np.linalg.norm(t[4] - t[3])) / 2
    cv2.ellipse(lab, (int(mc[0]), int(mc[1])), (int(half_w), int(16 * s)), 0, 0, 360, int(_C["lips"]), -1)
    return lab


class SelfieSegmenter:
    """MediaPipe Selfie Segmentation (``selfie_segmentation.tflite``): person probability of aligned faces.

    Input 256 x 256 RGB in [0, 1]; on 512 aligned faces it outlines head, hair, ears, neck and shoulders,
    heavily degraded faces too. Output upsampled to the face size.
    """

    MODEL_IN = 256

    def __init__(self, path: Path, num_threads: int = 2) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interp = Interpreter(model_path=str(path), num_threads=num_threads)
        self._in = self._interp.get_input_details()[0]["index"]
        self._out = self._interp.get_output_details()[0]["index"]
        self._interp.allocate_tensors()
        self._batch = 1
        self._lock = threading.Lock()

    def person(self, faces: np.ndarray) -> np.ndarray:
        """uint8 N x S x S x 3 RGB -> float32 N x S x S person probability."""
        size = self.MODEL_IN
        x = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in faces])
        x = x.astype(np.float32) * (1.0 / 255.0)
        with self._lock:
            if len(x) != self._batch:
                self._interp.resize_tensor_input(self._in, [len(x), size, size, 3])
                self._interp.allocate_tensors()
                self._batch = len(x)
            self._interp.set_tensor(self._in, x)
            self._interp.invoke()
            p = self._interp.get_tensor(self._out).reshape(len(x), size, size).copy()
        side = faces.shape[1]
        return np.stack([cv2.resize(m, (side, side), interpolation=cv2.INTER_LINEAR) for m in p])


def _colour_model(lab_img: np.ndarray, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Robust centre and spread (median, 1.4826 MAD) of CIELAB colours under ``sel``; None if too few."""
    px = lab_img[sel]
    if len(px) < 50:
        return None
    med = np.median(px, axis=0)
    return med, 1.4826 * np.median(np.abs(px - med), axis=0)


def _close(lab_img: np.ndarray, model: tuple[np.ndarray, np.ndarray] | None, k: float,
           floor: tuple[float, float, float]) -> np.ndarray:
    """Pixels within ``k`` spreads (at least ``floor``) of the colour model (none without a model)."""
    if model is None:
        return np.zeros(lab_img.shape[:2], bool)
    med, spread = model
    tol = np.maximum(k * spread, np.asarray(floor, np.float32))
    return np.all(np.abs(lab_img - med) <= tol, axis=-1)


def split_person(labels: np.ndarray, person: np.ndarray, face: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Label the person pixels the mesh left as background: ``hair``, ``ears``, ``neck`` or ``cloth``.

    ``labels``: the mesh's S x S class map; ``person``: S x S person probability; ``face``: the S x S x 3 RGB
    crop. Geometry comes from the mesh's face region (top, chin, sides, eye and mouth rows); colour from
    its skin (CIELAB median and MAD). Skin-coloured pixels beside the face between the eyes and mouth are
    ears, below the mouth neck; the rest above the chin is hair; below the chin, pixels coloured like the
    hair above the forehead are hair (long hair on the shoulders), the others cloth. Heuristic, but it gives
    the generator where the hair and shoulders are, which the mesh alone cannot.

    The colour tests run at :data:`SPLIT_COLOUR_SIZE` (the person mask they refine comes from a 256-px
    segmenter anyway) and the geometry at S: 29 faces of a crowd photo took 23 ms a face at 512, 6 at 256
    (AMD EPYC, 2 cores), with the same class on 99 % of the person pixels (tests/restoration/test_parsing.py).
    """
    out = labels.copy()
    facemask = labels > 0
    rest = (person >= threshold) & ~facemask
    if not facemask.any() or not rest.any():
        return out
    rows, cols = np.flatnonzero(facemask.any(axis=1)), np.flatnonzero(facemask.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1], cols[0], cols[-1]
    h, w = float(y1 - y0 + 1), float(x1 - x0 + 1)
    cx = 0.5 * (x0 + x1)
    side = labels.shape[0]
    yy, xx = np.arange(side)[:, None], np.arange(side)[None, :]  # broadcast, no grid

    def row(classes: tuple[str, ...], default: float) -> float:
        """The mean row of the pixels of ``classes``."""
        per_row = np.isin(labels, [_C[c] for c in classes]).sum(axis=1)
        n = per_row.sum()
        return float(per_row @ yy[:, 0] / n) if n else y0 + default * h

    eye_y, mouth_y = row(("eyes", "irises"), 0.45), row(("lips", "inner_mouth"), 0.8)
    skinlike, hairlike = _colour_classes(labels, person >= threshold, face, (yy < y0 + 0.05 * h))
    skinlike &= rest
    hairlike &= rest
    beside = (np.abs(xx - cx) > 0.5 * w - 0.08 * w) & (np.abs(xx - cx) < 0.5 * w + 0.2 * w)
    ears = rest & skinlike & beside & (yy > eye_y - 0.12 * h) & (yy < mouth_y)
    neck = rest & skinlike & (yy >= mouth_y) & ~ears
    below = rest & (yy > y1) & ~neck
    cloth = below & ~hairlike
    hair = rest & ~ears & ~neck & ~cloth
    out[hair], out[ears], out[neck], out[cloth] = _C["hair"], _C["ears"], _C["neck"], _C["cloth"]
    return out


#: side at which :func:`split_person` tells skin-like and hair-like colours apart
SPLIT_COLOUR_SIZE = 256


def _colour_classes(labels: np.ndarray, person: np.ndarray, face: np.ndarray, top: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(skin-like, hair-like) boolean S x S maps of :func:`split_person`, computed at SPLIT_COLOUR_SIZE.

    Skin-like: within 2.5 spreads (at least 18, 6, 6 in L, a, b) of the skin's colour; hair-like: not
    skin-like and within 2.5 spreads (at least 12, 5, 5) of the colour of the person pixels off the face
    near the top of the face (``top``: S x 1 or S x S rows).
    """
    side = labels.shape[0]
    k = max(1, side // SPLIT_COLOUR_SIZE)
    small = cv2.resize(face, (side // k, side // k), interpolation=cv2.INTER_AREA) if k > 1 else face
    lab_img = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab_s, person_s = labels[::k, ::k], person[::k, ::k]
    rest = person_s & (lab_s == 0)
    skinlike = _close(lab_img, _colour_model(lab_img, lab_s == _C["skin"]), 2.5, (18.0, 6.0, 6.0))
    above = rest & np.broadcast_to(top, labels.shape)[::k, ::k]
    hairlike = _close(lab_img, _colour_model(lab_img, above & ~skinlike), 2.5, (12.0, 5.0, 5.0))
    hairlike &= ~skinlike
    if k > 1:
        def up(m: np.ndarray) -> np.ndarray:
            return cv2.resize(m.view(np.uint8), (side, side), interpolation=cv2.INTER_NEAREST).view(bool)

        skinlike, hairlike = up(skinlike), up(hairlike)
    return skinlike, hairlike


class Mesh(NamedTuple):
    """Mesh model output for a batch: ``points`` N x 478 x 3 (x, y in 512-px coordinates), ``presence``
    N logits, ``spread`` N: disagreement between the test-time views in eye distances (0.02-0.1 on good
    meshes; 0 where only the plain view ran because the face was confidently found)."""

    points: np.ndarray
    presence: np.ndarray
    spread: np.ndarray


class LandmarkParser:
    """MediaPipe 478-point mesh on the aligned crop resized to 256, rasterised to part polygons.

    The aligned face is already centred and scaled like the mesh model's training crops, so the face
    detector stage is skipped. For degraded faces (low presence score) the mesh runs on three views (as
    is, zoomed in, zoomed out, slightly shifted); the per-point median is used and the views' disagreement
    (``spread``) measures how much the mesh can be trusted. On the 32 real degraded faces of
    ``wild/cropped``, good meshes spread < 0.11 eye distances, the four doubtful ones 0.15-0.24. A doubtful
    mesh (spread > ``MAX_SPREAD``) that is also far from the alignment template falls back to
    :func:`template_prior` (coarse, but never in the wrong place); one near the template is kept.
    """

    name = "landmarks"
    MODEL_IN = 256
    #: test-time views: (zoom, dx, dy in 256-px units); the window is 256*zoom wide
    VIEWS = ((1.0, 0.0, 0.0), (1.15, 5.0, -4.0), (0.87, -6.0, 3.0))
    #: presence logit under which the extra views run
    TTA_BELOW = 8.0
    MAX_SPREAD = 0.2
    MAX_TEMPLATE_ERROR = 25.0

    def __init__(self, task_path: Path, num_threads: int = 2, tta: bool = True,
                 segmenter: Path | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.segmenter = SelfieSegmenter(segmenter, num_threads) if segmenter else None
        with zipfile.ZipFile(task_path) as z:
            content = z.read("face_landmarks_detector.tflite")
        self._interp = Interpreter(model_content=content, num_threads=num_threads)
        self._in = self._interp.get_input_details()[0]["index"]
        self._interp.allocate_tensors()
        outs = self._interp.get_output_details()
        self._out_lm, self._out_presence = outs[0]["index"], outs[1]["index"]
        self._batch = 1
        self._lock = threading.Lock()  # a TFLite interpreter is not thread-safe
        self.views = self.VIEWS if tta else self.VIEWS[:1]

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if len(x) != self._batch:
                self._interp.resize_tensor_input(self._in, [len(x), self.MODEL_IN, self.MODEL_IN, 3])
                self._interp.allocate_tensors()
                self._batch = len(x)
            self._interp.set_tensor(self._in, x)
            self._interp.invoke()
            lm = self._interp.get_tensor(self._out_lm).reshape(len(x), 478, 3).copy()
            presence = self._interp.get_tensor(self._out_presence).reshape(len(x)).copy()
        return lm, presence

    def _run_views(self, small: np.ndarray, views: tuple[tuple[float, float, float], ...]
                   ) -> tuple[np.ndarray, np.ndarray]:
        """256-px faces -> (N x V x 478 x 3 points in 512-px face coordinates, N x V presence logits)."""
        n, size = len(small), self.MODEL_IN
        x = np.empty((n, len(views), size, size, 3), np.float32)
        origins = [((size - size * z) / 2 + dx, (size - size * z) / 2 + dy) for z, dx, dy in views]
        for v, ((z, _, _), (x0, y0)) in enumerate(zip(views, origins, strict=True)):
            m = np.array([[1 / z, 0, -x0 / z], [0, 1 / z, -y0 / z]], np.float32)
            for i, f in enumerate(small):
                x[i, v] = f if z == 1.0 and x0 == y0 == 0 else cv2.warpAffine(
                    f, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        x *= 1.0 / 255.0  # the mesh model takes RGB in [0, 1]
        lm, presence = self._run(x.reshape(-1, size, size, 3))
        lm, presence = lm.reshape(n, len(views), 478, 3), presence.reshape(n, len(views))
        for v, ((z, _, _), origin) in enumerate(zip(views, origins, strict=True)):  # undo the zoom
            lm[:, v, :, :2] = lm[:, v, :, :2] * z + np.asarray(origin)
            lm[:, v, :, 2] *= z
        return lm * (FACE_SIZE / size), presence

    def landmarks(self, faces: np.ndarray) -> Mesh:
        """Aligned faces -> :class:`Mesh`.

        Every face gets the plain view; faces whose presence logit is under ``TTA_BELOW`` (degraded or
        unusual ones: clean faces score 10-25) also get the two zoomed views and the per-point median.
        """
        faces = _check_faces(faces)
        if not len(faces):
            return Mesh(np.zeros((0, 478, 3), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32))
        size = self.MODEL_IN
        small = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in faces])
        lm, presence = self._run_views(small, self.views[:1])
        points, pres, spread = lm[:, 0].copy(), presence[:, 0].copy(), np.zeros(len(faces), np.float32)
        doubtful = np.flatnonzero(pres < self.TTA_BELOW) if len(self.views) > 1 else np.array([], int)
        if len(doubtful):
            lm2, p2 = self._run_views(small[doubtful], self.views[1:])
            lm = np.concatenate([lm[doubtful], lm2], axis=1)
            med = np.median(lm, axis=1)
            eye = np.linalg.norm(med[:, 468, :2] - med[:, 473, :2], axis=1) + 1e-6
            spread[doubtful] = np.linalg.norm(lm[..., :2] - med[:, None, :, :2], axis=-1).mean(axis=(1, 2)) / eye
            points[doubtful] = med
            pres[doubtful] = np.median(np.concatenate([presence[doubtful], p2], axis=1), axis=1)
        return Mesh(points.astype(np.float32), pres, spread)

    def silhouettes(self, faces: np.ndarray) -> np.ndarray | None:
        """N x S x S person probability of the faces (None without a segmenter). A restored face keeps
        its input's silhouette, so the pipeline takes it from the input whichever face it parses."""
        return None if self.segmenter is None else self.segmenter.person(_check_faces(faces))

    def parse(self, faces: np.ndarray, batch_size: int = 16, person: np.ndarray | None = None) -> np.ndarray:
        """Part maps; ``person`` (:meth:`silhouettes` of the same faces, or of their inputs) saves the
        segmenter's pass."""
        faces = _check_faces(faces)
        out = np.empty(faces.shape[:3], dtype=np.uint8)
        for i in range(0, len(faces), batch_size):
            chunk = faces[i:i + batch_size]
            mesh = self.landmarks(chunk)
            if person is not None:
                person_chunk = person[i:i + batch_size]
            else:
                person_chunk = self.segmenter.person(chunk) if self.segmenter is not None else None
            for j, (lm, spread) in enumerate(zip(mesh.points, mesh.spread, strict=True)):
                ok = spread <= self.MAX_SPREAD or template_landmark_error(lm) <= self.MAX_TEMPLATE_ERROR
                lab = rasterise_landmarks(lm) if ok else template_prior()
                out[i + j] = split_person(lab, person_chunk[j], chunk[j]) if person_chunk is not None else lab
        return out


def get_parser(backend: str = "auto", weights_dir: Path | str | None = None,
               device: str = "cpu") -> FaceParser:
    """Build a parser. ``auto`` = BiSeNet when its weights exist, else the landmark mesh.

    ``backend`` is one of ``auto``, ``bisenet``, ``parsenet``, ``landmarks``, ``none``. A backend that is
    asked for by name but has no weights raises :class:`WeightsMissing` naming the file.
    """
    if weights_dir is None:
        # the one WEIGHTS_DIR lookup; imported here so the pipeline (which always passes a folder)
        # does not import scipy through restoration.metrics
        from restoration.paths import default_weights_dir

        weights_dir = default_weights_dir()
    wd = Path(weights_dir)
    if backend == "none":
        return NoneParser()
    if backend == "auto":
        backend = "bisenet" if (wd / "facexlib" / "parsing_bisenet.pth").is_file() else "landmarks"
    if backend in ("bisenet", "parsenet"):
        path = wd / "facexlib" / f"parsing_{backend}.pth"
        if not path.is_file():
            raise WeightsMissing(f"face parser '{backend}' needs {path} "
                                 f"(facexlib release file parsing_{backend}.pth)")
        return CelebAParser(backend, path, device=device)
    if backend == "landmarks":
        path = wd / "landmarks" / "face_landmarker.task"
        seg = wd / "segmentation" / "selfie_segmentation.tflite"
        for p, what in ((path, "MediaPipe Face Landmarker v2 .task"),
                        (seg, "MediaPipe Selfie Segmentation, from the mediapipe==0.10.14 wheel")):
            if not p.is_file():
                raise WeightsMissing(f"face parser 'landmarks' needs {p} ({what})")
        return LandmarkParser(path, segmenter=seg)
    raise ValueError(f"unknown parser backend {backend!r}; use auto, bisenet, parsenet, landmarks or none")


__all__ = [
    "PART_CLASSES", "NUM_PART_CLASSES", "LANDMARK_ABSENT", "CELEBA_ABSENT", "FaceParser", "get_parser",
    "rasterise_landmarks", "split_person", "SelfieSegmenter", "template_prior", "celeba_lut",
    "BISENET_LABELS", "PARSENET_LABELS",
]
