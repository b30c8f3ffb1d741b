"""Face detection: facexlib's RetinaFace, boxes plus the five landmarks alignment needs.

The ResNet-50 RetinaFace is used when its weights are present (more recall on small, blurred faces);
otherwise the 1.8 MB mobilenet0.25, which finds all 29 faces of the Solvay 1927 photo. Large photos are
detected on a downscaled copy: RetinaFace's anchors reach 512 px faces, so detail beyond ~1600 px only
costs time, and boxes/landmarks are scaled back to full resolution.
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
                faces.append(face)
        if only_center and faces:
            centre = np.array([w / 2, h / 2])
            faces = [min(faces, key=lambda f: float(np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - centre)))]
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces[:max_faces] if max_faces else faces
