"""Where third-party weights and face images live when nobody says: ``$WEIGHTS_DIR`` / ``$FACES_DIR``.

They are never part of the project (licences, size): a checkout reads them from ``../shared`` beside it,
and a deployment points the variables elsewhere. The service's own settings (``portrait/settings.py``)
pass the folder explicitly; scripts, training and benchmarks, which run without the service, use these.
"""

from __future__ import annotations

import os
from pathlib import Path

_SHARED = Path(__file__).resolve().parents[2] / "shared"


def default_weights_dir() -> Path:
    """``$WEIGHTS_DIR``, else ``../shared/weights`` beside the checkout."""
    return Path(os.environ.get("WEIGHTS_DIR", _SHARED / "weights"))


def default_faces_dir() -> Path:
    """``$FACES_DIR``, else ``../shared/faces`` beside the checkout."""
    return Path(os.environ.get("FACES_DIR", _SHARED / "faces"))


__all__ = ["default_weights_dir", "default_faces_dir"]
