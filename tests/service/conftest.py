"""Fixtures for service tests: one real stack per test session, a fresh API client per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Api, Stack, WebhookReceiver, jpeg_bytes, running_stack
from PIL import Image

from restoration.paths import default_faces_dir

ROOT = Path(__file__).resolve().parents[2]
FACES_DIR = default_faces_dir()
PORTRAIT = FACES_DIR / "hq" / "london_neutral"
SOLVAY = FACES_DIR / "wild" / "whole" / "gpen_Solvay_conference_1927.png"


@pytest.fixture(scope="package")  # torn down (env restored, workers stopped) before other test folders run
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack")) as s:
        yield s


@pytest.fixture
def api(stack: Stack) -> Iterator[Api]:
    a = Api(stack)
    yield a
    a.http.close()


@pytest.fixture(scope="session")
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.close()


@pytest.fixture(scope="session")
def portrait_jpeg() -> bytes:
    """A real studio portrait (London set), downscaled to 480 px to keep CPU jobs quick."""
    path = sorted(PORTRAIT.glob("*.jpg"))[0] if PORTRAIT.is_dir() else None
    if path is None:
        pytest.skip(f"no portraits under {PORTRAIT} (set FACES_DIR)")
    with Image.open(path) as im:
        return jpeg_bytes(im.resize((480, 480), Image.LANCZOS))


@pytest.fixture(scope="session")
def small_faces() -> list[bytes]:
    """200 distinct small portraits (112 px, JPEG) so that a 200-item batch runs quickly on CPU."""
    paths = sorted(PORTRAIT.glob("*.jpg")) + sorted((FACES_DIR / "hq" / "london_smiling").glob("*.jpg"))
    if len(paths) < 1:
        pytest.skip(f"no portraits under {PORTRAIT} (set FACES_DIR)")
    out = []
    for i in range(200):
        with Image.open(paths[i % len(paths)]) as im:
            out.append(jpeg_bytes(im.resize((112, 112), Image.LANCZOS), quality=88 + i // len(paths)))
    return out


@pytest.fixture(scope="session")
def solvay_png() -> bytes:
    if not SOLVAY.is_file():
        pytest.skip(f"{SOLVAY} missing (set FACES_DIR)")
    return SOLVAY.read_bytes()
