"""The face restoration generator: a U-shaped StyleGAN2-style encoder-decoder conditioned on part masks.

Why this shape (GFPGAN-like, sized for ~300 training faces and CPU inference):

* **Encoder** - residual down-sampling blocks from the input size to ``min_res``. Input = degraded face
  (3 ch in [-1, 1]) concatenated with the one-hot face-part mask (``NUM_PART_CLASSES`` ch; zeros when no
  mask, the path used by mask-dropout training). It yields one feature map per scale plus a latent code.
* **Mapping** - a small MLP turns the latent code into ``w``; each modulated convolution has its own affine
  from ``w`` (StyleGAN2's per-layer styles), so global attributes (pose, lighting, age) come from the code.
* **Decoder** - StyleGAN2 blocks: modulated 3x3 convolutions with demodulation, per-pixel noise injection,
  bilinear up-sampling and toRGB skips. Its input is the encoder's deepest feature (no constant).
* **Style maps at every scale** (GFPGAN's channel-split SFT): from the encoder feature at that scale plus the
  mask resized to it, two convolutions predict a spatial scale and shift that modulate half of the decoder's
  channels after its first convolution, so local structure (where the eyes are, how the lips bend) flows
  from the input while the other half keeps the generative prior. They start as identity (zero-initialised).
* **Output** = the decoder's image, in [-1, 1] scale (not clamped), not input + residual: in a CPU pilot
  (training/LOG.md) the residual form kept the input's noise and JPEG blocks and gained 3x less PSNR per
  step. ``GeneratorConfig.residual`` keeps the option (old checkpoints store it).

Checkpoints are safetensors with the config and model version in the metadata (:func:`save_generator`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from restoration.parsing import NUM_PART_CLASSES

CHECKPOINT_FORMAT = "restoration.generator/1"
INIT_RGB_GAIN = 0.1  # toRGB weights start at a tenth: a small, smooth first output (near input if residual)


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture hyper-parameters; stored in every checkpoint so loading needs nothing else."""

    size: int = 512            # input/output side (power of two)
    min_res: int = 8           # deepest encoder/decoder resolution
    ch_base: int = 16          # channels at size / 2 (the finest feature scale); doubled per halving ...
    ch_max: int = 128          # ... up to this
    style_dim: int = 128       # width of w and of the mapping MLP
    n_mlp: int = 2             # mapping MLP depth
    mask_ch: int = NUM_PART_CLASSES
    residual: bool = False     # True: output = input + predicted
    noise: bool = True         # per-pixel noise injection
    channels: dict[int, int] = field(default_factory=dict)  # optional explicit {res: ch} override
    #: Gaussian σ, in pixels at size / 2, that softens the part mask before it conditions anything. The
    #: landmark parser's parts are polygons with hard edges, and on heavy inputs a generator trained on them
    #: redraws the face oval's edge as a ring (docs/TRAINING.md); 0 = the mask as given (every model up
    #: to it7072). No parameters: switching it keeps the weights.
    mask_blur: float = 0.0

    def ch(self, res: int) -> int:
        if res in self.channels:
            return int(self.channels[res])
        return min(self.ch_max, self.ch_base * (self.size // 2) // res)

    @property
    def resolutions(self) -> list[int]:
        """Feature scales, coarse to fine: [min_res, ..., size // 2] (full size is sub-pixel)."""
        n = int(math.log2(self.size // 2 // self.min_res))
        return [self.min_res * 2**i for i in range(n + 1)]

    def __post_init__(self) -> None:
        if self.size & (self.size - 1) or self.min_res & (self.min_res - 1) or self.min_res >= self.size // 2:
            raise ValueError(f"size ({self.size}) and min_res ({self.min_res}) must be powers of two, "
                             "min_res < size / 2")
        object.__setattr__(self, "channels", {int(k): int(v) for k, v in self.channels.items()})

    @classmethod
    def tiny(cls, size: int = 512) -> GeneratorConfig:
        """Unit tests and the smoke-training config: a 512 forward+backward in well under a second on CPU."""
        return cls(size=size, min_res=8, ch_base=4, ch_max=32, style_dim=32, n_mlp=1)

    @classmethod
    def small(cls, size: int = 512) -> GeneratorConfig:
        """CPU inference: a few M parameters."""
        return cls(size=size, min_res=8, ch_base=16, ch_max=128, style_dim=128, n_mlp=2)

    @classmethod
    def base(cls, size: int = 512) -> GeneratorConfig:
        """GPU training: fp16 weights under ~24 MB."""
        return cls(size=size, min_res=8, ch_base=32, ch_max=256, style_dim=256, n_mlp=4)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GeneratorConfig:
        d = json.loads(text)
        d["channels"] = {int(k): v for k, v in d.get("channels", {}).items()}
        return cls(**d)


# --- building blocks --------------------------------------------------------------------------------

class EqualLinear(nn.Module):
    """Linear layer with StyleGAN's equalised learning rate (weights scaled at run time)."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class EqualConv2d(nn.Module):
    """Conv with equalised learning rate: N(0, 1) weights scaled at run time by gain / sqrt(fan_in).

    Plain-initialised convs next to StyleGAN's equalised layers train at a very different effective rate
    under Adam (lr 2e-3 blew the encoder up within ~150 steps); ``gain`` = sqrt(2) after a leaky ReLU keeps
    activations at unit scale without an extra pass over the feature map.
    """

    def __init__(self, in_ch: int, out_ch: int, k: int, bias: bool = True, gain: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, k, k))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = gain / math.sqrt(in_ch * k * k)
        self.pad = k // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.pad)


class ModulatedConv(nn.Module):
    """StyleGAN2 modulated convolution with demodulation.

    Training uses the non-fused form (scale the input, one shared conv, demodulate the output): it is what
    autocast, channels_last and large batches handle best. Inference folds style and demodulation into
    per-sample weights (one grouped conv) on CPU and for single faces, which saves two feature-map passes:
    memory bandwidth, not FLOPs, is what limits a 2-core CPU. GPU batches keep the non-fused form.
    """

    def __init__(self, in_ch: int, out_ch: int, k: int, style_dim: int, demodulate: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, k, k))
        self.scale = 1.0 / math.sqrt(in_ch * k * k)
        self.affine = EqualLinear(style_dim, in_ch, bias_init=1.0)
        self.demodulate = demodulate
        self.pad = k // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        s = self.affine(w).float()  # B x in
        weight = self.weight.float() * self.scale
        d = None
        if self.demodulate:
            d = torch.rsqrt(s.square() @ weight.square().sum(dim=(2, 3)).t() + 1e-8)  # B x out
        b, c, h, wd = x.shape
        if self.training or (x.device.type != "cpu" and b > 1):  # GPU batches: one big conv is faster
            x = x * s[:, :, None, None].to(x.dtype)
            x = F.conv2d(x, weight.to(x.dtype), padding=self.pad)
            return x if d is None else x * d[:, :, None, None].to(x.dtype)
        wb = weight[None] * s[:, None, :, None, None]  # B x out x in x k x k
        if d is not None:
            wb = wb * d[:, :, None, None, None]
        wb = wb.reshape(-1, c, *weight.shape[2:]).to(x.dtype)
        out = F.conv2d(x.reshape(1, b * c, h, wd), wb, padding=self.pad, groups=b)
        return out.reshape(b, -1, h, wd)


class NoiseInjection(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        return x if noise is None else x + self.weight.to(x.dtype) * noise.to(x.dtype)


class StyledConv(nn.Module):
    """Modulated 3x3 conv + noise + bias + leaky ReLU (no sqrt(2) gain: the next demodulation cancels it)."""

    def __init__(self, in_ch: int, out_ch: int, style_dim: int, upsample: bool = False,
                 noise: bool = True) -> None:
        super().__init__()
        self.upsample = upsample
        self.conv = ModulatedConv(in_ch, out_ch, 3, style_dim)
        self.noise = NoiseInjection() if noise else None
        self.bias = nn.Parameter(torch.zeros(1, out_ch, 1, 1))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = self.conv(x, w)
        if self.noise is not None:
            x = self.noise(x, noise)
        return F.leaky_relu(x + self.bias.to(x.dtype), 0.2)


class ToRGB(nn.Module):
    """1x1 modulated conv (no demodulation) to ``out_ch`` colour channels, added to the up-sampled skip."""

    def __init__(self, in_ch: int, style_dim: int, out_ch: int = 3) -> None:
        super().__init__()
        self.conv = ModulatedConv(in_ch, out_ch, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, out_ch, 1, 1))
        with torch.no_grad():  # small start (a residual generator begins close to the identity)
            self.conv.weight.mul_(INIT_RGB_GAIN)

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        out = self.conv(x, w) + self.bias.to(x.dtype)
        if skip is not None:
            out = out + F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
        return out


class ResBlockDown(nn.Module):
    """Encoder block: two 3x3 convs with a 2x average-pool between, plus a pooled 1x1 skip."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        g = math.sqrt(2)  # every input here follows a leaky ReLU
        self.conv1 = EqualConv2d(in_ch, in_ch, 3, gain=g)
        self.conv2 = EqualConv2d(in_ch, out_ch, 3, gain=g)
        self.skip = EqualConv2d(in_ch, out_ch, 1, bias=False, gain=g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv1(x), 0.2)
        h = F.leaky_relu(self.conv2(F.avg_pool2d(h, 2)), 0.2)
        return (h + self.skip(F.avg_pool2d(x, 2))) * (1 / math.sqrt(2))


class StyleMap(nn.Module):
    """Spatial scale/shift (SFT) from an encoder feature and the mask at one scale; identity at init."""

    def __init__(self, enc_ch: int, mask_ch: int, out_ch: int) -> None:
        super().__init__()
        hidden = max(8, min(enc_ch, 128))
        self.body = EqualConv2d(enc_ch + mask_ch, hidden, 3)
        self.out = EqualConv2d(hidden, 2 * out_ch, 3, gain=math.sqrt(2))
        nn.init.zeros_(self.out.weight)

    def forward(self, feat: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.leaky_relu(self.body(torch.cat([feat, mask.to(feat.dtype)], 1)), 0.2)
        scale, shift = self.out(h).chunk(2, dim=1)
        return scale, shift


# --- the generator ----------------------------------------------------------------------------------

class Generator(nn.Module):
    """Degraded face (+ part mask) -> restored face, both N x 3 x size x size in [-1, 1].

    Feature scales run from ``min_res`` to ``size / 2``; the full-resolution layer is sub-pixel: the input
    enters through a 2x pixel-unshuffle and the finest decoder features leave through a 2x pixel-shuffle
    toRGB. Nothing wider than 3 channels (plus the mask once) ever touches a full-resolution tensor, which
    is what makes a 512 face affordable on a 2-core CPU.
    """

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        cfg = config or GeneratorConfig()
        self.config = cfg
        res = cfg.resolutions  # coarse -> fine, up to size // 2
        top = res[-1]

        self.enc_in = EqualConv2d(4 * 3 + cfg.mask_ch, cfg.ch(top), 3)
        self.enc_blocks = nn.ModuleList(ResBlockDown(cfg.ch(r), cfg.ch(r // 2)) for r in res[::-1][:-1])
        c_min = cfg.ch(cfg.min_res)
        self.latent_pool = min(4, cfg.min_res)
        self.to_latent = EqualLinear(c_min * self.latent_pool**2, cfg.style_dim)
        mlp: list[nn.Module] = []
        for _ in range(cfg.n_mlp):
            mlp += [EqualLinear(cfg.style_dim, cfg.style_dim, lr_mul=0.01), nn.LeakyReLU(0.2)]
        self.mapping = nn.Sequential(*mlp)

        self.dec_first = StyledConv(c_min, c_min, cfg.style_dim, noise=cfg.noise)
        self.dec_up = nn.ModuleList()
        self.dec_conv = nn.ModuleList()
        self.style_maps = nn.ModuleList()
        self.to_rgb = nn.ModuleList()
        for i, r in enumerate(res):
            c = cfg.ch(r)
            if i > 0:
                prev = cfg.ch(res[i - 1])
                self.dec_up.append(StyledConv(prev, c, cfg.style_dim, upsample=True, noise=cfg.noise))
            self.dec_conv.append(StyledConv(c, c, cfg.style_dim, noise=cfg.noise))
            self.style_maps.append(StyleMap(c, cfg.mask_ch, c - c // 2))
            self.to_rgb.append(ToRGB(c, cfg.style_dim))
        self.to_rgb_full = ToRGB(cfg.ch(top), cfg.style_dim, out_ch=12)  # pixel-shuffled to 3 x size x size

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @staticmethod
    def _noise(ref: torch.Tensor, res: int, mode: str, gen: torch.Generator | None) -> torch.Tensor | None:
        """Per-pixel noise, N x 1 x res x res, like ``ref``'s batch, device and dtype."""
        if mode == "none":
            return None
        shape = (ref.shape[0], 1, res, res)
        if mode == "random":
            return torch.randn(shape, device=ref.device, dtype=ref.dtype)
        return torch.randn(shape, generator=gen, device=ref.device, dtype=torch.float32).to(ref.dtype)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                noise_mode: str | None = None) -> torch.Tensor:
        """``x``: N x 3 x S x S in [-1, 1]; ``mask``: N x C x H x W one-hot (or soft) parts at any H = W
        dividing S (resized by area), or None = zeros (the mask-free path).

        ``noise_mode``: ``random`` (default in train mode), ``fixed`` (default in eval mode: seeded, so the
        same input gives the same output, with the noise statistics seen in training) or ``none``.
        """
        cfg = self.config
        n, _, hh, ww = x.shape
        if (hh, ww) != (cfg.size, cfg.size):
            raise ValueError(f"generator expects {cfg.size}x{cfg.size} input, got {hh}x{ww}")
        top = cfg.resolutions[-1]
        if mask is None:
            m = x.new_zeros((n, cfg.mask_ch, top, top))
        else:
            if mask.shape[1] != cfg.mask_ch:
                raise ValueError(f"mask has {mask.shape[1]} channels, the generator expects {cfg.mask_ch}")
            m = mask.to(device=x.device, dtype=x.dtype)
            if m.shape[-1] != top:
                m = F.interpolate(m, size=(top, top), mode="area")
            if cfg.mask_blur > 0:  # each pixel's class weights still sum to 1, but no part ends in a step
                from restoration.device_stages import gaussian_blur

                m = gaussian_blur(m.float(), cfg.mask_blur).to(m.dtype)
        mode = noise_mode or ("random" if self.training else "fixed")
        if mode not in ("random", "fixed", "none"):
            raise ValueError(f"noise_mode must be random, fixed or none, not {noise_mode!r}")
        if not cfg.noise:
            mode = "none"
        gen = torch.Generator(device=x.device).manual_seed(0) if mode == "fixed" else None

        # encoder: features at every scale, fine -> coarse; masks resized alongside
        f = F.leaky_relu(self.enc_in(torch.cat([F.pixel_unshuffle(x, 2), m], 1)), 0.2)
        feats, masks = {top: f}, {top: m}
        for r, block in zip(cfg.resolutions[::-1][1:], self.enc_blocks, strict=True):
            f = block(f)
            feats[r] = f
            masks[r] = F.avg_pool2d(masks[2 * r], 2)
        code = self.to_latent(F.adaptive_avg_pool2d(f, self.latent_pool).flatten(1).float())
        wlat = self.mapping(code)

        # decoder coarse -> fine, style maps at every scale
        rgb = None
        h = f
        for i, r in enumerate(cfg.resolutions):
            up = self.dec_first if i == 0 else self.dec_up[i - 1]
            h = up(h, wlat, self._noise(h, r, mode, gen))
            scale, shift = self.style_maps[i](feats[r], masks[r])
            keep = h.shape[1] // 2
            h = torch.cat([h[:, :keep], torch.addcmul(h[:, keep:] + shift, h[:, keep:], scale)], 1)
            h = self.dec_conv[i](h, wlat, self._noise(h, r, mode, gen))
            rgb = self.to_rgb[i](h, wlat, rgb)
        detail = F.pixel_shuffle(self.to_rgb_full(h, wlat, None), 2)
        out = F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False) + detail
        return x + out if cfg.residual else out


# --- checkpoints ------------------------------------------------------------------------------------

# ------------------------------------------------------------------ the training / serving contract
# The generator's input and output, written once: the training data, the validator, the evaluation
# script, the pipeline and the classical stand-ins all convert through these, so a face reaches the
# generator as the same tensors whether it is trained on or served (tests/restoration/test_generator.py).

def to_model(rgb: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 RGB, H×W×3 or N×H×W×3 -> float32 N×3×H×W in [-1, 1] (on the input's device)."""
    t = torch.as_tensor(np.ascontiguousarray(rgb) if isinstance(rgb, np.ndarray) else rgb)
    if t.ndim == 3:
        t = t[None]
    return t.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_pixels(x: torch.Tensor) -> torch.Tensor:
    """float N×3×H×W in [-1, 1] -> uint8 RGB N×H×W×3 (clamped, rounded), on the input's device."""
    y = ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return y.permute(0, 2, 3, 1)


def from_model(x: torch.Tensor) -> np.ndarray:
    """float N×3×H×W in [-1, 1] -> uint8 RGB N×H×W×3 (clamped, rounded), on the CPU."""
    return to_pixels(x).cpu().numpy()


def generator_mask(labels: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Part-class ids, S×S or N×S×S -> float32 one-hot N×C×(S/2)×(S/2), area-averaged (soft at part
    edges): the resolution the generator consumes its mask at (its input is pixel-unshuffled by 2)."""
    lab = torch.as_tensor(np.asarray(labels) if isinstance(labels, np.ndarray) else labels).long()
    if lab.ndim == 2:
        lab = lab[None]
    onehot = torch.zeros((lab.shape[0], NUM_PART_CLASSES, *lab.shape[1:]), device=lab.device)
    onehot.scatter_(1, lab.unsqueeze(1), 1.0)
    return F.avg_pool2d(onehot, 2)


def save_generator(g: Generator, path: Path | str, model_version: str, fp16: bool = True) -> None:
    """Write ``g`` as safetensors; the config and ``model_version`` go in the metadata.

    fp16 halves the file (the EMA generator is what ships); loading casts back to float32.
    """
    from safetensors.torch import save_file

    dtype = torch.float16 if fp16 else torch.float32
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in g.state_dict().items()}
    meta = {"format": CHECKPOINT_FORMAT, "config": g.config.to_json(), "model_version": str(model_version),
            "dtype": str(dtype).removeprefix("torch.")}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)


def read_generator_metadata(path: Path | str) -> dict[str, str]:
    """The checkpoint's metadata without loading tensors (cheap: for listing model versions)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_generator(path: Path | str, device: str | torch.device = "cpu") -> tuple[Generator, str]:
    """Load a checkpoint written by :func:`save_generator` -> (eval-mode float32 Generator, model_version)."""
    from safetensors.torch import load_file

    meta = read_generator_metadata(path)
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a generator checkpoint (format={meta.get('format')!r})")
    g = Generator(GeneratorConfig.from_json(meta["config"]))
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    g.load_state_dict(state, strict=True)
    return g.eval().to(device), meta["model_version"]


__all__ = ["GeneratorConfig", "Generator", "save_generator", "load_generator", "read_generator_metadata",
           "to_model", "to_pixels", "from_model", "generator_mask"]
