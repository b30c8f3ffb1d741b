"""Face identity embeddings (MobileFaceNet, 128-d): the identity-preservation metric and an identity loss.

* :class:`IdentityEmbedder` runs ``<weights_dir>/identity/MobileFaceNet.onnx`` with onnxruntime on CPU: the
  metric (cosine between a restored face and its ground truth), no torch graph needed.
* :class:`MobileFaceNet` is the same network in torch, loading ``mobilefacenet.pt``, so training can
  back-propagate an identity loss (:func:`load_torch_mobilefacenet`, :func:`align_ffhq_to_arcface`).

Both take faces aligned to the standard ArcFace 112x112 5-point template. Preprocessing (checked on the
300 labelled pairs of ``faces/identity_pairs/master.csv``, see docs/model.md): RGB, ``(x - 127.5) / 128``.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from restoration.alignment import FFHQ_TEMPLATE_512
from restoration.errors import WeightsMissing

#: The standard ArcFace (InsightFace) 112x112 5-point template: eyes, nose tip, mouth corners.
ARCFACE_TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                                 [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float32)

ID_SIZE = 112
EMBED_DIM = 128
#: input normalisation (x - MEAN) / STD on RGB in [0, 255]
PIX_MEAN = 127.5
PIX_STD = 128.0
#: an aligned 512 face is first area-downsampled by this factor (anti-aliasing), then warped
_PRE_SHRINK = 4


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (Umeyama, no reflection) mapping src points onto dst: 2 x 3."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1
    r = u @ e @ vt
    scale = float(np.trace(np.diag(sig) @ e) / s0.var(0).sum())
    t = mu_d - scale * r @ mu_s
    return np.hstack([scale * r, t[:, None]]).astype(np.float32)


def _ffhq_to_arcface_matrix(face_size: int = 512, shrink: int = _PRE_SHRINK) -> np.ndarray:
    """2x3 matrix from the pre-shrunk aligned face (face_size / shrink px) to the ArcFace 112 crop."""
    src = FFHQ_TEMPLATE_512 * (face_size / 512.0) / shrink
    return similarity_matrix(src, ARCFACE_TEMPLATE_112)


def _check_weights(weights_dir: Path | str, name: str) -> Path:
    path = Path(weights_dir) / "identity" / name
    if not path.is_file():
        raise WeightsMissing(f"identity model needs {path}")
    return path


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """Cosine similarity of two embeddings (or row-wise for N x D arrays)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12
    out = num / den
    return float(out) if np.ndim(out) == 0 else out


class IdentityEmbedder:
    """128-d L2-normalised identity embeddings with the ONNX MobileFaceNet on CPU."""

    def __init__(self, weights_dir: Path | str, device: str = "cpu", num_threads: int = 0) -> None:
        import onnxruntime as ort

        path = _check_weights(weights_dir, "MobileFaceNet.onnx")
        data = path.with_name("MobileFaceNet.onnx.data")
        if not data.is_file():
            raise WeightsMissing(f"identity model needs {data} beside {path.name}")
        opts = ort.SessionOptions()
        if num_threads:
            opts.intra_op_num_threads = num_threads
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        self._input = self.session.get_inputs()[0].name
        self._batch_fixed = self.session.get_inputs()[0].shape[0] == 1

    @staticmethod
    def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
        return cosine(a, b)

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """uint8 N x 112 x 112 x 3 RGB ArcFace-aligned crops -> N x 128 L2-normalised."""
        crops = np.asarray(crops)
        if crops.ndim == 3:
            crops = crops[None]
        x = (crops.astype(np.float32) - PIX_MEAN) / PIX_STD
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        if self._batch_fixed:
            out = np.concatenate([self.session.run(None, {self._input: x[i:i + 1]})[0]
                                  for i in range(len(x))])
        else:
            out = self.session.run(None, {self._input: x})[0]
        return out / (np.linalg.norm(out, axis=1, keepdims=True) + 1e-12)

    def embed(self, img_rgb: np.ndarray, landmarks5: np.ndarray) -> np.ndarray:
        """One face of a photo, given its 5 landmarks (eyes, nose, mouth corners; x, y) -> 128 unit vector."""
        m = similarity_matrix(np.asarray(landmarks5, dtype=np.float32).reshape(5, 2), ARCFACE_TEMPLATE_112)
        scale = math.sqrt(abs(np.linalg.det(m[:, :2])))
        img = img_rgb
        if scale < 0.5:  # shrinking a lot: anti-alias first, like the aligned path
            f = max(1, int(1 / scale / 1.5))
            img = cv2.resize(img_rgb, None, fx=1 / f, fy=1 / f, interpolation=cv2.INTER_AREA)
            m = m.copy()
            m[:, :2] *= img_rgb.shape[1] / img.shape[1]
        crop = cv2.warpAffine(img, m, (ID_SIZE, ID_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)
        return self.embed_crops(crop[None])[0]

    def embed_aligned(self, faces: np.ndarray) -> np.ndarray:
        """uint8 N x S x S x 3 RGB FFHQ-aligned faces (S = 512 usually) -> N x 128 L2-normalised."""
        faces = np.asarray(faces)
        if faces.ndim == 3:
            faces = faces[None]
        size = faces.shape[1]
        m = _ffhq_to_arcface_matrix(size)
        crops = []
        for f in faces:
            small = cv2.resize(f, (size // _PRE_SHRINK, size // _PRE_SHRINK), interpolation=cv2.INTER_AREA)
            crops.append(cv2.warpAffine(small, m, (ID_SIZE, ID_SIZE), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REFLECT))
        return self.embed_crops(np.stack(crops))


# --- the torch network (architecture inferred from mobilefacenet.pt's 307 state-dict keys) ----------

class _ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class _DepthwiseSeparable(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.depthwise(x)))
        return F.relu(self.bn2(self.pointwise(x)))


class _GDConv(nn.Module):
    """Global depthwise conv: 7x7 -> 1x1, replaces global pooling (MobileFaceNet's key idea)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(ch, ch, 7, groups=ch, bias=False)
        self.bn = nn.BatchNorm2d(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.depthwise(x))


class _InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            _ConvBNReLU(cin, hidden, k=1),
            _ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileFaceNet(nn.Module):
    """MobileFaceNet (MobileNetV2 bottlenecks + global depthwise conv): N x 3 x 112 x 112 -> N x 128.

    Input normalised like :class:`IdentityEmbedder` (RGB, (x - 127.5) / 128). Output is NOT normalised.
    Once :meth:`freeze` is called (``load_torch_mobilefacenet`` does), ``.train()`` keeps it in eval mode, so
    a loss module that holds it cannot switch its BatchNorms to batch statistics by accident.
    """

    _frozen = False

    #: (expansion, out channels, repeats, first stride), inferred from the checkpoint's shapes
    SETTING = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = _ConvBNReLU(3, 64, stride=2)
        self.dw_conv = _DepthwiseSeparable(64, 64)
        blocks: list[nn.Module] = []
        cin = 64
        for t, c, n, s in self.SETTING:
            for i in range(n):
                blocks.append(_InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        self.features = nn.Sequential(*blocks)
        self.conv2 = _ConvBNReLU(cin, 512, k=1)
        self.gdconv = _GDConv(512)
        self.conv3 = nn.Conv2d(512, EMBED_DIM, 1)
        self.bn = nn.BatchNorm2d(EMBED_DIM)

    def freeze(self) -> MobileFaceNet:
        self._frozen = True
        self.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> MobileFaceNet:
        return super().train(mode and not self._frozen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.dw_conv(self.conv1(x)))
        x = self.conv3(self.gdconv(self.conv2(x)))
        return self.bn(x).flatten(1)


def load_torch_mobilefacenet(weights_dir: Path | str, device: str | torch.device = "cpu") -> MobileFaceNet:
    """The frozen, eval-mode torch MobileFaceNet (BatchNorm uses its running statistics)."""
    path = _check_weights(weights_dir, "mobilefacenet.pt")
    net = MobileFaceNet()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return net.freeze().to(device)


def align_ffhq_to_arcface(faces: torch.Tensor) -> torch.Tensor:
    """Differentiable version of :meth:`IdentityEmbedder.embed_aligned`'s crop.

    ``faces``: N x 3 x S x S FFHQ-aligned, RGB in [-1, 1] (the generator's range) -> N x 3 x 112 x 112
    normalised for :class:`MobileFaceNet`.
    """
    size = faces.shape[-1]
    small = F.interpolate(faces, size=(size // _PRE_SHRINK,) * 2, mode="area")
    s = size // _PRE_SHRINK
    m = torch.from_numpy(_ffhq_to_arcface_matrix(size)).double()
    # affine_grid wants output-normalised -> input-normalised coordinates (align_corners=False)
    full = torch.cat([m, torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)])
    inv = torch.linalg.inv(full)[:2]
    h = ID_SIZE / 2
    out_n = torch.tensor([[h, 0, h - 0.5], [0, h, h - 0.5], [0, 0, 1]], dtype=torch.float64)  # norm -> px
    in_n = torch.tensor([[2 / s, 0, 1 / s - 1], [0, 2 / s, 1 / s - 1], [0, 0, 1]], dtype=torch.float64)
    theta = (in_n @ torch.cat([inv, torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)]) @ out_n)[:2]
    theta = theta.to(faces.dtype).to(faces.device).expand(faces.shape[0], 2, 3)
    grid = F.affine_grid(theta, [faces.shape[0], 3, ID_SIZE, ID_SIZE], align_corners=False)
    crop = F.grid_sample(small, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    # [-1, 1] -> (x*255 - 127.5) / 128  ==  (x * 127.5) / 128
    return crop * (127.5 / PIX_STD)


__all__ = [
    "IdentityEmbedder", "MobileFaceNet", "load_torch_mobilefacenet", "align_ffhq_to_arcface", "cosine",
    "similarity_matrix", "ARCFACE_TEMPLATE_112", "EMBED_DIM",
]
