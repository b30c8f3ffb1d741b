"""Face detection: facexlib's RetinaFace, boxes plus the five landmarks alignment needs.

The ResNet-50 RetinaFace is used when its weights are present (more recall on small, blurred faces);
otherwise the 1.8 MB mobilenet0.25, which finds all 29 faces of the Solvay 1927 photo. Large photos are
detected on a downscaled copy: RetinaFace's anchors reach 512 px faces, so detail beyond ~1600 px only
costs time, and boxes/landmarks are scaled back to full resolution. Faces larger than ``refine_above`` px
there are detected again on a crop where they are ``refine_size`` px: mobilenet0.25's landmarks drift tens
of px on large faces (and its boxes come out too small beyond its 512 px anchors).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from restoration.errors import WeightsMissing

_MODELS = {
    # model name -> (file name, URL facexlib downloads it from)
    "retinaface_resnet50": (
        "detection_Resnet50_Final.pth",
        "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth",
    ),
    "retinaface_mobile0.25": (
        "detection_mobilenet0.25_Final.pth",
        "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_mobilenet0.25_Final.pth",
    ),
}


@dataclass
class Face:
    """One detected face, in the coordinates of the full-resolution input photo."""

    box: np.ndarray  # (4,) x1, y1, x2, y2
    landmarks: np.ndarray  # (5, 2): left eye, right eye, nose, left mouth corner, right mouth corner
    score: float

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


def pick_model(weights_dir: Path) -> str:
    """ResNet-50 when its file is there, else mobilenet0.25 (which may still need downloading)."""
    resnet_file = Path(weights_dir) / "facexlib" / _MODELS["retinaface_resnet50"][0]
    return "retinaface_resnet50" if resnet_file.is_file() else "retinaface_mobile0.25"


def load_retinaface(
    weights_dir: Path, device: torch.device, model_name: str | None = None
) -> torch.nn.Module:
    """Load RetinaFace from ``<weights_dir>/facexlib``; download it there if missing, else WeightsMissing."""
    from facexlib.detection import init_detection_model

    model_name = model_name or pick_model(weights_dir)
    file_name, url = _MODELS[model_name]
    root = Path(weights_dir) / "facexlib"
    path = root / file_name
    try:
        # facexlib looks the file up by name in save_dir and downloads it only when absent
        with contextlib.redirect_stdout(io.StringIO()):
            model = init_detection_model(model_name, half=False, device=device, model_rootpath=str(root))
    except Exception as e:  # offline, read-only weights folder, HTTP error …
        if path.is_file():
            raise
        raise WeightsMissing(
            f"face detector weights {file_name} are missing from {root} and could not be downloaded "
            f"({type(e).__name__}: {e}); fetch {url} into {root}/"
        ) from e
    return model


class FaceDetector:
    """RetinaFace with the options the service exposes: threshold, min size, max faces, centre only."""

    #: faces larger than this (box side, detection-image px) get their landmarks refined on a crop
    refine_above = 400
    #: face size (box side, px) the refinement crop is resized to, where mobilenet0.25 localises well
    refine_size = 224
    #: context around the face in the refinement crop, in face sizes on each side
    refine_margin = 0.5

    def __init__(self, weights_dir: Path, device: torch.device | str = "cpu", max_side: int = 1600) -> None:
        self.device = torch.device(device)
        self.model = load_retinaface(Path(weights_dir), self.device)
        self.model_name = self.model.model_name
        self.max_side = max_side

    @torch.inference_mode()
    def detect(
        self,
        rgb: np.ndarray,
        *,
        threshold: float = 0.9,
        min_face_size: int = 16,
        max_faces: int | None = None,
        only_center: bool = False,
    ) -> list[Face]:
        """Faces of an RGB uint8 photo, largest first (or only the one nearest the centre)."""
        h, w = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = rgb if scale == 1.0 else cv2.resize(
            rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
        # facexlib's RetinaFace expects BGR (its mean is 104, 117, 123)
        bgr = np.ascontiguousarray(small[..., ::-1])
        dets = self.model.detect_faces(bgr, conf_threshold=threshold, use_origin_size=True)
        faces: list[Face] = []
        sx, sy = w / small.shape[1], h / small.shape[0]
        for d in dets:
            box = np.array([d[0] * sx, d[1] * sy, d[2] * sx, d[3] * sy], np.float32)
            lm = np.asarray(d[5:15], np.float32).reshape(5, 2) * np.array([sx, sy], np.float32)
            face = Face(box=box, landmarks=lm, score=float(d[4]))
            if min(box[2] - box[0], box[3] - box[1]) >= min_face_size:
                if max(d[2] - d[0], d[3] - d[1]) > self.refine_above:
                    face = self._refine(rgb, face, threshold)
                faces.append(face)
        if only_center and faces:
            centre = np.array([w / 2, h / 2])
            faces = [min(faces, key=lambda f: float(np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - centre)))]
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces[:max_faces] if max_faces else faces

    def _refine(self, rgb: np.ndarray, face: Face, threshold: float) -> Face:
        """Re-detect one large face on a crop where it is ``refine_size`` px and take that detection.

        mobilenet0.25 places the landmarks of faces of ~600+ px tens of px off, and under-sizes the box
        of faces beyond its 512 px anchors, so a second round runs when the refined box differs much in
        size. The face is kept unchanged when the crop gives no detection over its centre.
        """
        for _ in range(2):
            refined = self._redetect(rgb, face, threshold)
            if refined is None:
                return face
            ratio = _side(refined.box) / _side(face.box)
            face = refined
            if 0.8 < ratio < 1.25:
                break
        return face

    def _redetect(self, rgb: np.ndarray, face: Face, threshold: float) -> Face | None:
        h, w = rgb.shape[:2]
        x1, y1, x2, y2 = face.box
        side = _side(face.box)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        half = side * (0.5 + self.refine_margin)
        x0, y0 = max(0, int(np.floor(cx - half))), max(0, int(np.floor(cy - half)))
        x3, y3 = min(w, int(np.ceil(cx + half))), min(h, int(np.ceil(cy + half)))
        r = min(1.0, self.refine_size / side)
        cw, ch = max(1, round((x3 - x0) * r)), max(1, round((y3 - y0) * r))
        crop = cv2.resize(rgb[y0:y3, x0:x3], (cw, ch), interpolation=cv2.INTER_AREA)
        scale = np.array([(x3 - x0) / cw, (y3 - y0) / ch], np.float32)
        offset = np.array([x0, y0], np.float32)
        dets = self.model.detect_faces(
            np.ascontiguousarray(crop[..., ::-1]), conf_threshold=threshold, use_origin_size=True
        )
        best, best_iou = None, 0.2
        for d in dets:
            # crop pixel c <-> photo pixel p: p = (c + 0.5) * scale - 0.5 + offset
            box = ((np.asarray(d[:4], np.float32).reshape(2, 2) + 0.5) * scale - 0.5 + offset).reshape(4)
            iou = box_iou(box, face.box)
            if box[0] <= cx <= box[2] and box[1] <= cy <= box[3] and iou > best_iou:
                lm = (np.asarray(d[5:15], np.float32).reshape(5, 2) + 0.5) * scale - 0.5 + offset
                best, best_iou = Face(box=box, landmarks=lm, score=float(d[4])), iou
        return best


def _side(box: np.ndarray) -> float:
    return float(max(box[2] - box[0], box[3] - box[1]))


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
