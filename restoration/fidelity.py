"""The ``fidelity`` option's ``auto`` rule: how far each face is restored, chosen per face.

``fidelity`` blends the restored face with the input face in the aligned crop (1 = the restored face,
0 = the input). A fixed value treats a slightly soft portrait like a ruined one. ``auto`` (the default)
keeps a mildly degraded face close to its input and restores a heavy one further, but only as far as
it keeps the person:

1. **How degraded is the input?** NIQE of the aligned input crop (no reference; higher = less natural).
   The blend runs from :data:`FLOOR` at the training faces' median NIQE under the mild ``gfpgan``
   degradation (:data:`MILD_NIQE`) to 1 at their median under ``heavy`` (:data:`HEAVY_NIQE`), linearly,
   clipped. Both anchors are measured on the training split by ``scripts/calibrate_fidelity.py``: no
   identity network and no validation face chooses them.
2. **Is it still the person?** Where the pipeline has its identity embedder (MobileFaceNet), a face
   whose blend moved further from the input than two photos of one person typically are from each
   other (cosine < :data:`SAME_PERSON_COS`, the same-person mean of MobileFaceNet on
   ``faces/identity_pairs``, ``../shared/README.md``) falls back to :data:`FLOOR`.

This module owns the rule and its constants, so the service (restoration/pipeline.py) and the
evaluation that draws its curve (scripts/evaluate.py ``--fidelity auto``) apply the same one. The
independent identity judge (dlib, restoration/judge.py) never chooses anything here.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from restoration.metrics import niqe

AUTO = "auto"
#: The blend of the mildest faces: half the input, half the restoration.
FLOOR = 0.5
#: Median NIQE of training-split inputs under the ``gfpgan`` and ``heavy`` presets (512 crops), from
#: ``.venv/bin/python scripts/calibrate_fidelity.py`` (docs/TRAINING.md).
MILD_NIQE = 11.5
HEAVY_NIQE = 15.0
#: MobileFaceNet cosine of two photos of the same person, on average (../shared/README.md).
SAME_PERSON_COS = 0.75


def blend(restored: np.ndarray, inputs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The ``fidelity`` blend of uint8 N×H×W×3 faces on the host: cv2.addWeighted(restored, w, input, 1 − w)
    per face (``weights``: N floats; faces at 1 stay as they are). restoration/device_stages.py ``mix`` is
    its torch twin."""
    out = restored.copy()
    for k in np.flatnonzero(weights < 1.0):
        out[k] = cv2.addWeighted(restored[k], float(weights[k]), inputs[k], 1.0 - float(weights[k]), 0)
    return out


def input_niqe(crop: np.ndarray, weights_dir: Path | str | None = None) -> float:
    """NIQE of a uint8 512×512×3 aligned input crop: the degradation estimate of step 1."""
    return niqe(crop, weights_dir)


def fidelity_for(niqe_value: float) -> float:
    """Step 1: the blend weight of the restored face for an input of this NIQE, in [FLOOR, 1]; FLOOR for
    an input NIQE cannot measure (NaN: a flat crop)."""
    if not np.isfinite(niqe_value):
        return FLOOR
    t = (niqe_value - MILD_NIQE) / (HEAVY_NIQE - MILD_NIQE)
    return FLOOR + (1.0 - FLOOR) * float(np.clip(t, 0.0, 1.0))


def keeps_person(cosine: float | None) -> bool:
    """Step 2: whether a blend whose MobileFaceNet cosine to the input is ``cosine`` keeps the person
    (no embedder, no verdict: True)."""
    return cosine is None or cosine >= SAME_PERSON_COS
