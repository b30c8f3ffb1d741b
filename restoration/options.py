"""Per-request restoration options, validated once and shared by the CLI, the API and the worker.

Pure pydantic (no torch), so the API can validate a job's options without the ML stack.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class RestoreOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fidelity: float = Field(
        0.5, ge=0.0, le=1.0,
        description="0 = stay faithful to the input face, 1 = fully restored face (CodeFormer's w, inverted).",
    )
    upscale: Literal[1, 2, 4] = Field(2, description="Output scale of the whole photo: 1, 2 or 4.")
    aligned: bool = Field(False, description="Input is already a 512x512 aligned face: no detection, no paste.")
    only_center_face: bool = Field(False, description="Restore only the face closest to the centre.")
    max_faces: int | None = Field(None, ge=1, le=1000, description="Restore at most this many faces (largest first).")
    detection_threshold: float = Field(0.9, gt=0.0, lt=1.0, description="RetinaFace score threshold.")
    min_face_size: int = Field(16, ge=4, le=4096,
                               description="Ignore faces whose box is smaller than this, in pixels.")
    output_format: Literal["auto", "png", "jpeg", "webp"] = Field(
        "auto", description="auto keeps the input's format family (JPEG stays JPEG, alpha forces PNG)."
    )
    quality: int = Field(95, ge=1, le=100, description="JPEG/WebP quality.")

    @field_validator("upscale", "max_faces", "min_face_size", "quality", mode="before")
    @classmethod
    def _no_bools(cls, v: object) -> object:
        """JSON ``true`` is not the number 1 (pydantic's lax mode would take it as such)."""
        if isinstance(v, bool):
            raise ValueError("expected a number, not true/false")
        return v
