"""One restoration pipeline per worker child, built from settings the first time it is needed, on the
device the child's place in the layout gives it (worker/layout.py)."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import TYPE_CHECKING

from portrait.settings import get_settings

if TYPE_CHECKING:  # the pipeline (torch, OpenCV) is imported when first needed, after the fork
    from restoration.pipeline import Restorer

log = logging.getLogger("portrait.worker")
#: this child's device, set by :func:`place` after the fork (None: not placed yet)
_device: str | None = None


def place(slot: int) -> str:
    """Give this child its threads and device from its slot (before the pipeline loads); returns the device."""
    from worker.layout import place_child

    global _device
    _device = place_child(get_settings(), slot)
    return _device


@lru_cache(maxsize=1)
def get_restorer() -> Restorer:
    from restoration.image_io import ImageLimits
    from restoration.pipeline import Restorer
    from worker import metrics

    s = get_settings()
    limits = ImageLimits(max_pixels=s.max_image_pixels, max_side=s.max_image_side, min_side=s.min_image_side)
    r = Restorer(weights_dir=s.weights_dir, device=_device or place(0), model_path=s.model_path,
                 max_batch=s.max_batch_faces, limits=limits, precision=s.precision,
                 mask_source=s.mask_source)
    log.info("restoration pipeline ready: model %s on %s in %s, masks from %s", r.model_version, r.device,
             r.precision, r.mask_source)
    metrics.model_loaded(r.model_version)
    return r
