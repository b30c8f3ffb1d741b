"""A training run's configuration: the defaults, the YAML on top, and a typed check of the result.

A config is YAML (``restoration/training/configs/``) deep-merged over :data:`DEFAULTS` (the models'
defaults). The merged result is validated by :class:`RunConfig` (pydantic, ``extra="forbid"`` in every
section), so a typo (``loss: {advv: 0.1}``), a key in the wrong section or a value of the wrong type
stops the run at start instead of silently switching a loss off. Sections whose shape belongs to
another module are checked there, also strictly: ``generator`` by GeneratorConfig, ``discriminator``
by DiscriminatorConfig, ``data.mask_policy`` by MaskPolicy, ``data.augment`` by Augment, an inline
``data.preset`` by :func:`preset_from_config`.

:func:`load_config` returns the validated :class:`RunConfig` itself, and that is what the loop, its
helpers, validation and checkpoint export read (attributes, checked by type checkers, not string keys);
assignments are validated too. A checkpoint's ``state.json`` stores the plain form
(:meth:`RunConfig.to_dict`), which :func:`load_config` turns back into a RunConfig on resume.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from restoration.degrade import Option, Preset, Step
from restoration.generator import GeneratorConfig
from restoration.training.discriminator import DiscriminatorConfig


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, validate_assignment=True)


class DataConfig(_Section):
    pack: str = "data/pack"
    size: int = Field(512, gt=0)
    preset: str | dict[str, Any] = "mixed"
    batch_size: int = Field(8, gt=0)
    workers: int = Field(4, ge=0)
    mask_policy: dict[str, float] = Field(default_factory=lambda: {"clean": 1.0})
    augment: dict[str, Any] = Field(default_factory=dict)
    val_faces: int = Field(16, ge=0)
    val_preset: str = "mixed"
    #: the validation faces' mask: their own (``clean``), parsed from the degraded face as the service
    #: does (``degraded``), or none
    val_mask: Literal["clean", "degraded", "none"] = "clean"


class LossConfig(_Section):
    """Weights (0 = term off) and the schedule of the adversarial terms."""

    l1: float = Field(1.0, ge=0)
    ms_ssim: float = Field(0.5, ge=0)
    identity: float = Field(0.0, ge=0)
    id_feat: float = Field(0.0, ge=0)
    vgg: float = Field(0.0, ge=0)
    fm: float = Field(0.0, ge=0)
    adv: float = Field(0.0, ge=0)
    adv_start: int = Field(0, ge=0)
    r1_gamma: float = Field(10.0, ge=0)
    r1_every: int = Field(16, gt=0)
    #: DiffAugment policy applied to every D input, real and fake alike ("" = off): a comma-separated
    #: subset of color, translation, cutout (restoration/training/diffaugment.py)
    diffaug: str = ""

    @field_validator("diffaug")
    @classmethod
    def _known_policy(cls, v: str) -> str:
        from restoration.training.diffaugment import parse_policy

        return ",".join(parse_policy(v))

    def weight(self, term: str) -> float:
        """The weight of the loss term named ``term`` (one of this section's weights; 0 = off)."""
        return float(getattr(self, term))


class OptimConfig(_Section):
    lr_g: float = Field(2e-3, gt=0)
    lr_d: float = Field(2e-3, gt=0)
    betas: tuple[float, float] = (0.0, 0.99)
    ema_halflife_kimg: float = Field(10.0, gt=0)
    ema_rampup: float = Field(0.05, ge=0)
    grad_clip: float = Field(1.0, ge=0)


class TrainConfig(_Section):
    max_iters: int = Field(100_000, gt=0)
    log_every: int = Field(50, gt=0)
    val_every: int = Field(1000, ge=0)
    ckpt_minutes: float = Field(3.0, gt=0)
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    channels_last: bool = True


class CheckpointConfig(_Section):
    fp16: bool = True
    optimizer: bool = True


class RunConfig(_Section):
    seed: int = 0
    model_version: str = "dev"
    data: DataConfig = Field(default_factory=DataConfig)
    generator: dict[str, Any] = Field(default_factory=lambda: {"preset": "small"})
    discriminator: dict[str, Any] = Field(default_factory=lambda: {"ch_base": 16, "ch_max": 128})
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)

    def to_dict(self) -> dict[str, Any]:
        """The plain (JSON) form: what a checkpoint's ``state.json`` stores as ``config``."""
        return self.model_dump(mode="json")


#: Every setting's default, as the plain dict YAML is merged over (derived from the models above).
DEFAULTS: dict[str, Any] = RunConfig().model_dump(mode="json")


def _merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in (b or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: Path | str | None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """DEFAULTS deep-merged with the YAML file and then ``overrides`` (a plain config, e.g. a checkpoint's),
    validated: pydantic's ValidationError names every bad key."""
    cfg = DEFAULTS
    if path:
        cfg = _merge(cfg, yaml.safe_load(Path(path).read_text()) or {})
    return RunConfig.model_validate(_merge(cfg, overrides or {}))


def preset_from_config(p: str | dict[str, Any]) -> str | Preset:
    """``data.preset``: a preset name, or an inline one:
    ``{shuffle: bool, steps: [{p: 0.5, options: [[kind, lo, hi], ...]}, ...]}``."""
    if isinstance(p, str):
        return p
    unknown = set(p) - {"name", "shuffle", "steps"}
    if unknown:
        raise ValueError(f"data.preset: unknown keys {sorted(unknown)}")
    steps = tuple(Step(float(st.get("p", 1.0)), tuple(Option(k, float(lo), float(hi)) for k, lo, hi in st["options"]))
                  for st in p["steps"])
    return Preset(p.get("name", "custom"), steps, bool(p.get("shuffle", False)))


def generator_config(cfg: RunConfig) -> GeneratorConfig:
    """``generator``: a preset name plus overrides of GeneratorConfig fields (unknown fields: TypeError)."""
    g = dict(cfg.generator)
    size = cfg.data.size
    preset = g.pop("preset", None)
    if preset:
        base = getattr(GeneratorConfig, preset)(size)
        return GeneratorConfig(**{**base.__dict__, **g})
    return GeneratorConfig(size=size, **g)


def discriminator_config(cfg: RunConfig) -> DiscriminatorConfig:
    """``discriminator``: DiscriminatorConfig's fields, at the run's ``data.size``."""
    return DiscriminatorConfig(size=cfg.data.size, **cfg.discriminator)
