"""Non-learned face "generators" with the learned generator's call signature.

:class:`ClassicalFaceRestorer` is what the service runs until trained weights ship: an edge-preserving
denoise (a bilateral filter, which smooths JPEG blocks and sensor noise but keeps eyes and lips sharp)
followed by an unsharp mask. It restores nothing a blur destroyed; its ``model_version`` says so, and every
report carries it. :class:`IdentityGenerator` returns its input, so tests can check that detection,
alignment and paste alone leave a photo intact.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn

from restoration.generator import from_model, to_model

CLASSICAL_VERSION = "classical-v1 (not a learned model)"


class ClassicalFaceRestorer(nn.Module):
    """Bilateral denoise + unsharp mask on N×3×512×512 tensors in [-1, 1]; ``mask`` is ignored.

    OpenCV on the CPU, face by face (a few ms each): a learned generator replaces it, so it is kept
    simple rather than fast on GPUs.
    """

    model_version = CLASSICAL_VERSION

    def __init__(
        self, diameter: int = 7, sigma_color: float = 16.0, sharpen: float = 0.8, sigma: float = 2.5
    ) -> None:
        super().__init__()
        self.diameter, self.sigma_color, self.sharpen, self.sigma = diameter, sigma_color, sharpen, sigma

    def restore_uint8(self, face: np.ndarray) -> np.ndarray:
        """One RGB uint8 face: edges (eyes, lips) survive the bilateral; flat skin loses noise and blocks."""
        smooth = cv2.bilateralFilter(face, self.diameter, self.sigma_color, self.diameter / 2)
        blurred = cv2.GaussianBlur(smooth, (0, 0), self.sigma)
        return cv2.addWeighted(smooth, 1.0 + self.sharpen, blurred, -self.sharpen, 0)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        out = np.stack([self.restore_uint8(np.ascontiguousarray(f)) for f in from_model(x)])
        return to_model(out).to(device=x.device, dtype=x.dtype)


class IdentityGenerator(nn.Module):
    """Returns its input: with it, any change to a photo comes from the pipeline, not the model."""

    model_version = "identity (test stand-in, not a model)"

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return x
