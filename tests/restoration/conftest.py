"""Shared fixtures: third-party data paths from the environment, and Restorers loaded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from restoration_testutil import FACES_DIR, SOLVAY, WEIGHTS_DIR


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    if not (WEIGHTS_DIR / "facexlib" / "detection_mobilenet0.25_Final.pth").is_file():
        pytest.skip(f"detector weights not found under {WEIGHTS_DIR} (set WEIGHTS_DIR)")
    return WEIGHTS_DIR


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    if not SOLVAY.is_file():
        pytest.skip(f"face photos not found under {FACES_DIR} (set FACES_DIR)")
    return FACES_DIR


@pytest.fixture(scope="session")
def identity_restorer(weights_dir: Path):
    """Identity generator, no background filtering: any pixel change comes from detect/align/paste."""
    from restoration.classical import IdentityGenerator
    from restoration.pipeline import Restorer

    return Restorer(weights_dir, device="cpu", generator=IdentityGenerator(), background="none")


@pytest.fixture(scope="session")
def restorer(weights_dir: Path):
    """The classical stand-in (``MODEL_PATH=classical``): fast, deterministic, for the pipeline's plumbing."""
    from restoration.pipeline import CLASSICAL_MODEL, Restorer

    return Restorer(weights_dir, device="cpu", model_path=Path(CLASSICAL_MODEL))


@pytest.fixture(scope="session")
def shipped_restorer(weights_dir: Path):
    """What the service runs by default: the shipped learned generator."""
    from restoration.pipeline import Restorer

    return Restorer(weights_dir, device="cpu")
