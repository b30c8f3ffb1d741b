"""Per-request restoration options, validated once and shared by the CLI, the API and the worker.

Pure pydantic (no torch), so the API can validate a job's options without the ML stack. The CLI's
flags are generated from the model (:func:`add_option_arguments`): a field's name, default, bounds
and description are written here only. The choices of the two pipeline settings that are not a job's
(mask source, precision) live here too, so the worker's settings and the CLI's flags name them once.
"""

from __future__ import annotations

import argparse
import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from restoration.formats import OUTPUT_FORMATS

OutputChoice = Literal[("auto", *OUTPUT_FORMATS)]  # type: ignore[valid-type]  # "auto" or a format


class RestoreOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fidelity: Annotated[float, Field(ge=0.0, le=1.0)] | Literal["auto"] = Field(
        "auto",
        description="auto = chosen per face: a mildly degraded face stays close to the input, a heavy one is "
                    "restored further while it stays the same person; or a number: 0 = keep the input face, "
                    "1 = the fully restored face, in between a pixel blend of the two in the aligned crop.",
    )
    upscale: Literal[1, 2, 4] = Field(2, description="Output scale of the whole photo: 1, 2 or 4.")
    aligned: bool = Field(False, description="Input is already a 512x512 aligned face: no detection, no paste.")
    only_center_face: bool = Field(False, description="Restore only the face closest to the centre.")
    max_faces: int | None = Field(None, ge=1, le=1000, description="Restore at most this many faces (largest first).")
    detection_threshold: float = Field(0.9, gt=0.0, lt=1.0, description="RetinaFace score threshold.")
    min_face_size: int = Field(16, ge=4, le=4096,
                               description="Ignore faces whose box is smaller than this, in pixels.")
    output_format: OutputChoice = Field(
        "auto", description="auto keeps the input's format family (JPEG stays JPEG, alpha forces PNG)."
    )
    quality: int = Field(95, ge=1, le=100, description="JPEG/WebP quality.")

    @field_validator("fidelity", mode="before")
    @classmethod
    def _auto_or_unit_number(cls, v: object) -> object:
        """One message for every wrong fidelity (pydantic's union would report its branches' tags)."""
        ok = v == "auto" or (isinstance(v, int | float) and not isinstance(v, bool) and 0.0 <= v <= 1.0)
        if not ok:
            raise ValueError(f'expected "auto" or a number from 0 to 1, got {v!r}')
        return v

    @field_validator("upscale", "max_faces", "min_face_size", "quality", mode="before")
    @classmethod
    def _no_bools(cls, v: object) -> object:
        """JSON ``true`` is not the number 1 (pydantic's lax mode would take it as such)."""
        if isinstance(v, bool):
            raise ValueError("expected a number, not true/false")
        return v


#: Where a mask-conditioned generator's face-part mask comes from: a setting of the worker
#: (``MASK_SOURCE``) and the CLI (``--mask-source``), not of a job (restoration/pipeline.py's ``Restorer``).
MaskSource = Literal["input", "restored", "none"]
MASK_SOURCES: tuple[str, ...] = typing.get_args(MaskSource)
#: What the generator computes in, likewise a worker and CLI setting; restoration/precision.py resolves it.
Precision = Literal["auto", "bf16", "fp32"]
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
#: Shorter CLI spellings kept beside the generated ``--field-name`` flags.
CLI_ALIASES = {"detection_threshold": ("--threshold",), "output_format": ("--format",)}


def add_option_arguments(parser: argparse.ArgumentParser, fields: tuple[str, ...] | None = None) -> None:
    """One ``--field-name`` flag per RestoreOptions field (or only ``fields``), with the model's default
    and description; booleans are switches, Literals are choices. Values are validated by the model
    itself (:func:`options_from_args`), so the CLI and the API accept exactly the same options."""
    for name, info in RestoreOptions.model_fields.items():
        if fields is not None and name not in fields:
            continue
        flags = ("--" + name.replace("_", "-"), *CLI_ALIASES.get(name, ()))
        help_text = f"{info.description} (default {info.default})"
        kind = info.annotation
        if kind is bool:
            parser.add_argument(*flags, dest=name, action="store_true", help=info.description)
            continue
        choices = None
        if typing.get_origin(kind) is Literal:
            choices = list(typing.get_args(kind))
            kind = type(choices[0])
        elif typing.get_origin(kind) is not None:  # Optional[int] -> int; a number or "auto" -> either
            kinds = [a for a in typing.get_args(kind) if a is not type(None)]
            words = [w for a in kinds if typing.get_origin(a) is Literal for w in typing.get_args(a)]
            number = next(typing.get_args(a)[0] if typing.get_origin(a) is Annotated else a
                          for a in kinds if typing.get_origin(a) is not Literal)
            kind = _word_or(number, tuple(words)) if words else number
        parser.add_argument(*flags, dest=name, type=kind, choices=choices, default=info.default, help=help_text)


def _word_or(number: type, words: tuple[str, ...]) -> Any:
    """An argparse ``type`` taking one of ``words`` as written, else a ``number``."""
    def parse(text: str) -> Any:
        if text in words:
            return text
        try:
            return number(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {' or '.join(words)} or a number, got {text!r}") from None
    parse.__name__ = f"{' or '.join(words)} or {number.__name__}"
    return parse


def options_from_args(args: argparse.Namespace, **fixed: Any) -> RestoreOptions:
    """The RestoreOptions of parsed CLI flags (those :func:`add_option_arguments` added), with ``fixed``
    values on top. Raises pydantic's ValidationError (a ValueError) on out-of-range values."""
    given = {n: getattr(args, n) for n in RestoreOptions.model_fields if hasattr(args, n)}
    return RestoreOptions(**{**given, **fixed})
