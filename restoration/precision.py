"""Which float precision the generator runs in: ``bf16`` where the hardware makes it fast, else ``fp32``.

Why a rule and not a constant: on an Intel Xeon with AMX-BF16 (or a CPU with AVX512-BF16) bf16 autocast +
channels_last runs faster than fp32 (AMX: the generator's inference 1.44x, the full GAN step at 512 px 1.8x;
an AMD EPYC with AVX512-BF16 ran the GAN step at 256 px 2.4x faster), but on a CPU without them (some of
this project's machines are AMD EPYC with AVX2 only) oneDNN emulates bf16 and a training step of the small
generator at 512 ran ~5x *slower* than fp32 (0.28 vs 1.54 img/s, training/LOG.md). So ``auto`` asks the
hardware: CUDA devices with bf16 support and CPUs whose flags list ``amx_bf16`` or ``avx512_bf16`` get bf16.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from restoration.options import PRECISIONS

if TYPE_CHECKING:
    import torch


@lru_cache(maxsize=1)
def cpu_bf16_native() -> bool:
    """True when this CPU computes bf16 in hardware (AMX-BF16 or AVX512-BF16), read from /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(requested: str, device: torch.device | str) -> str:
    """``auto`` -> ``bf16`` or ``fp32`` for ``device``; ``bf16`` and ``fp32`` are kept as asked."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    if requested != "auto":
        return requested
    import torch  # here, not at import: the CLI reads PRECISIONS for its flags without loading torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_bf16_native() else "fp32"


__all__ = ["cpu_bf16_native", "resolve_precision"]
