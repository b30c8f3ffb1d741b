"""The independent identity judge: dlib's ResNet face recogniser, for evaluation only.

Why a second recogniser: MobileFaceNet (``restoration.identity``) is a *training loss*, so its cosine
flatters any model trained against it — the first shipped model raised it while fewer heavy faces stayed
recognisable. dlib's ResNet (``dlib_face_recognition_resnet_model_v1``, 128-d, the ``face_recognition``
library's network; weights CC0, PyPI ``face-recognition-models``) never takes part in training: it must
never be imported by ``restoration/training``, used as a loss, as a checkpoint-selection signal inside the
training loop, or as a data filter (a test keeps the training package free of it).

What it reports per face: the Euclidean distance between the descriptors of a restored face and its ground
truth (dlib's own threshold: < 0.6 = the same person), and so the share of faces still recognised.

Landmarks: dlib's 5-point shape predictor is run once on the *ground truth* (inside the box its HOG
detector finds there, or the template's face box when it finds none), and that shape is used for the
ground truth and every method's output of the same face. All are aligned to the same 512 template, so
the shape fits them all, and no method is judged through landmarks the degradation misplaced.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

#: dlib's published decision threshold for "same person" (face_recognition's ``tolerance``)
SAME_PERSON = 0.6
#: dlib HOG's box on the FFHQ 512 template (it finds (95, 164, 405, 474) or (136, 165, 394, 423)), for faces it misses
TEMPLATE_BOX = (110, 162, 400, 452)


def models_dir() -> Path:
    """The folder of ``face-recognition-models``' files, without importing the package (it needs
    ``pkg_resources``, which current setuptools no longer ships)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("face-recognition-models is not installed (pip install -e '.[ml]')")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class IdentityJudge:
    """dlib ResNet descriptors of 512-aligned faces and distances to their ground truths."""

    def __init__(self) -> None:
        import dlib

        d = models_dir()
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(d / "shape_predictor_5_face_landmarks.dat"))
        self._net = dlib.face_recognition_model_v1(str(d / "dlib_face_recognition_resnet_model_v1.dat"))

    def shape_of(self, face: np.ndarray) -> object:
        """dlib's 5-point shape of one clean RGB uint8 aligned face."""
        face = np.ascontiguousarray(face)
        dets = self._detector(face, 0)
        if dets:
            box = max(dets, key=lambda r: r.area())
        else:
            h = face.shape[0] / 512
            box = self._dlib.rectangle(*(round(v * h) for v in TEMPLATE_BOX))
        return self._shape(face, box)

    def descriptor(self, face: np.ndarray, shape: object) -> np.ndarray:
        """128-d descriptor of an RGB uint8 aligned face, at the landmarks ``shape``."""
        return np.asarray(self._net.compute_face_descriptor(np.ascontiguousarray(face), shape), np.float32)

    def reference(self, truths: np.ndarray) -> list[tuple[object, np.ndarray]]:
        """Each ground truth's shape and descriptor (N×S×S×3 uint8), computed once for every method."""
        out = []
        for truth in truths:
            shape = self.shape_of(truth)
            out.append((shape, self.descriptor(truth, shape)))
        return out

    def distances(self, faces: np.ndarray, truths: np.ndarray | list[tuple[object, np.ndarray]]) -> np.ndarray:
        """Per face: distance between ``faces[i]`` and its ground truth (faces N×S×S×3 uint8; truths the
        same, or their :meth:`reference`)."""
        ref = self.reference(truths) if isinstance(truths, np.ndarray) else truths
        return np.asarray([float(np.linalg.norm(self.descriptor(face, shape) - desc))
                           for face, (shape, desc) in zip(faces, ref, strict=True)])


def recognised(distances: np.ndarray, threshold: float = SAME_PERSON) -> float:
    """Share of faces the judge still takes for the same person."""
    return float(np.mean(np.asarray(distances) < threshold)) if len(distances) else float("nan")
