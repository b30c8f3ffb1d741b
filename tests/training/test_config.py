"""A training config with a typo must stop the run at start, not silently switch a loss off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from restoration.training.config import load_config, preset_from_config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "restoration" / "training" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_is_valid(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.loss.l1 >= 0 and cfg.data.size > 0


def test_the_committed_run_resumes_with_a_valid_config() -> None:
    saved = json.loads((ROOT / "training" / "resume" / "state.json").read_text())["config"]
    loaded = load_config(None, saved).to_dict()
    # every saved value survives as it is; options added since take their defaults
    for section, value in saved.items():
        if isinstance(value, dict):
            assert {k: loaded[section][k] for k in value} == value, section
        else:
            assert loaded[section] == value, section


@pytest.mark.parametrize("bad, where", [
    ({"loss": {"advv": 0.1}}, "advv"),                      # a typo in a loss weight
    ({"train": {"adv": 0.1}}, "adv"),                       # a key in the wrong section
    ({"optim": {"lr_g": "fast"}}, "lr_g"),                  # a value of the wrong type
    ({"loss": {"r1_every": 0}}, "r1_every"),                # out of range
    ({"train": {"precision": "fp8"}}, "precision"),
    ({"data": {"val_mask": "degarded"}}, "val_mask"),       # once read as "no mask"
    ({"checkpoints": {"fp16": True}}, "checkpoints"),       # an unknown section
])
def test_typos_and_bad_values_fail_with_the_key_named(tmp_path: Path, bad: dict, where: str) -> None:
    with pytest.raises(ValidationError, match=where):
        load_config(None, bad)
    yml = tmp_path / "c.yaml"
    yml.write_text(json.dumps(bad))  # JSON is YAML
    with pytest.raises(ValidationError, match=where):
        load_config(yml)


def test_an_inline_preset_with_an_unknown_key_fails() -> None:
    with pytest.raises(ValueError, match="stepz"):
        preset_from_config({"stepz": []})
