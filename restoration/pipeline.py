"""The restoration pipeline: decode → detect → align → parse → generate → paste → encode.

:class:`Restorer` loads every model once and restores photos one at a time (:meth:`Restorer.restore_bytes`)
or several at once (:meth:`Restorer.restore_many`), in which case the faces of all photos share the
parser and generator batches: a crowd photo and three selfies cost the GPU a handful of batches rather
than one small call per face. The parser sees up to :data:`PARSE_WINDOW` faces per call (all faces of a
photo, usually), the generator ``max_batch`` (by default :data:`AUTO_BATCH` for the device).

Two implementations of the pixel stages (decode, align, masks, colour match, background, paste,
encode): OpenCV/numpy on the host (restoration/alignment.py, paste.py, background.py, image_io.py) and
torch on the pipeline's device (restoration/device_stages.py), so that on CUDA a photo stays on the GPU
between decode and encode. ``stages`` picks: ``auto`` = torch on CUDA, numpy on the CPU.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from restoration import device_stages, fidelity, image_io
from restoration.alignment import FACE_SIZE, FFHQ_TEMPLATE_512, AlignedFaces, align_faces
from restoration.background import enhance_background, resolve_method
from restoration.classical import CLASSICAL_VERSION, ClassicalFaceRestorer
from restoration.detection import Face, FaceDetector
from restoration.errors import RestorationError, WeightsMissing
from restoration.fidelity import AUTO
from restoration.generator import generator_mask, to_model, to_pixels
from restoration.image_io import DecodedImage, ImageLimits
from restoration.options import MASK_SOURCES, RestoreOptions
from restoration.paste import match_color, part_masks, paste_faces, template_mask
from restoration.precision import resolve_precision

log = logging.getLogger(__name__)

SHIPPED_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: the ``model_path`` (``MODEL_PATH``, ``--model``) that picks the classical stand-in over the shipped weights
CLASSICAL_MODEL = "classical"
STAGES = ("decode", "detect", "align", "parse", "generate", "identity", "paste", "background", "encode")
#: which implementation of the pixel stages runs: ``auto`` = ``torch`` on CUDA devices, else ``numpy``
STAGE_PATHS = ("auto", "numpy", "torch")
#: faces per parser call: every face of a photo in one batch (the parsers chunk internally), bounded so a
#: 177-face crowd does not hold all its restored crops at once
PARSE_WINDOW = 64
#: faces per generator batch by device type when ``max_batch`` is not given. On CPUs a face's cost
#: *grows* with the batch (activations of 512-px faces outgrow the caches): 136-142 ms a face at batch 1,
#: 161-202 at 2, 187-198 at 4, 233-262 at 8 (AMD EPYC, 2 cores, fp32; ``benchmarks/stages.py``: the
#: per-sample weights of the modulated convs become a grouped conv that oneDNN runs slowly); GPUs want
#: batches (``benchmarks/stages.py --device cuda``).
AUTO_BATCH = {"cpu": 1, "cuda": 16}
#: faces per identity-embedder call (112-px inputs: batching pays on every device)
IDENTITY_BATCH = 16


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` = the first CUDA device when there is one, else the CPU; a device that is absent is refused
    with a ValueError saying so (rather than a driver traceback from deep inside model loading)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from e
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {device!r} asked for, but CUDA is not available here; use cpu or auto")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device {device!r} asked for, but only {count} CUDA device(s) are visible")
    return dev


def shipped_model() -> Path | None:
    """The project's default generator weights (restoration/weights/*.safetensors), if any ship."""
    found = sorted(SHIPPED_WEIGHTS_DIR.glob("*.safetensors")) if SHIPPED_WEIGHTS_DIR.is_dir() else []
    return found[0] if found else None


@dataclass
class RestoreResult:
    """One restored photo: the encoded file, its pixels, and a JSON-able report."""

    data: bytes
    format: str
    width: int
    height: int
    faces: list[dict[str, Any]]
    timings: dict[str, float]
    model_version: str
    upscale: int = 1
    image: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 3), np.uint8), repr=False)
    #: aligned input and restored crops (RGB uint8 512×512), only when asked for (``keep_crops``)
    input_crops: list[np.ndarray] | None = field(default=None, repr=False)
    restored_crops: list[np.ndarray] | None = field(default=None, repr=False)
    #: where faces were pasted (H×W uint8, 255 = face), only with ``keep_crops``
    paste_mask: np.ndarray | None = field(default=None, repr=False)
    #: the decoded input (RGB uint8, upright), only with ``keep_input``: callers that show it need not
    #: decode the file a second time
    input_image: np.ndarray | None = field(default=None, repr=False)

    def to_report(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "upscale": self.upscale,
            "model_version": self.model_version,
            "num_faces": len(self.faces),
            "faces": self.faces,
            "timings_ms": self.timings,
        }


@dataclass
class _Photo:
    """One photo on its way through the stages."""

    decoded: DecodedImage
    options: RestoreOptions
    scale: int
    timings: dict[str, float]
    faces: list[Face] = field(default_factory=list)
    aligned: AlignedFaces | None = None
    #: the torch path's copies on the device: the decoded photo (H×W×3 uint8) and the aligned crops
    pixels: torch.Tensor | None = None
    crops: torch.Tensor | None = None
    #: N×512×512×3 restored, colour-matched, fidelity-blended; N×512×512 soft paste masks (numpy arrays,
    #: or device tensors on the torch path)
    final: Any = None
    masks: Any = None
    identity: list[float | None] = field(default_factory=list)
    #: the blend weight each face got (its job's ``fidelity``, or what ``auto`` chose)
    fidelity: list[float | None] = field(default_factory=list)
    face_timings: list[dict[str, float]] = field(default_factory=list)


class _Clock:
    """Milliseconds per stage; ``sync`` waits for the device first, so queued GPU work counts where it ran."""

    def __init__(self, timings: dict[str, float], sync: Callable[[], None] | None = None) -> None:
        self.timings = timings
        self.sync = sync

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self.sync is not None:
                self.sync()
            self.timings[stage] = self.timings.get(stage, 0.0) + (time.perf_counter() - t0) * 1000


def _host(x: Any) -> np.ndarray:
    """A device tensor's host copy; numpy arrays pass through."""
    return x.cpu().numpy() if isinstance(x, torch.Tensor) else x


def _round(x: float, nd: int = 2) -> float:
    return float(round(float(x), nd))


class Restorer:
    """Every model loaded once; restores photos with per-request :class:`RestoreOptions`.

    Model selection: ``generator`` (an nn.Module, tests) > ``model_path`` (a .safetensors file, or
    ``"classical"`` for the non-learned stand-in) > the shipped default in ``restoration/weights/`` >
    :class:`ClassicalFaceRestorer`. ``model_version`` says which ran.

    ``mask_source`` (:data:`MASK_SOURCES`): where a mask-conditioned generator's face-part mask comes from —
    ``input``, the parser on the degraded face; ``restored``, two passes: the generator without a mask,
    then the parser on that cleaner face; ``none``, the mask-free path. A badly degraded face parses into
    misplaced parts, which the generator then draws (figures in training/LOG.md, "Mask sources").

    ``stages`` (:data:`STAGE_PATHS`): the pixel stages in OpenCV/numpy or in torch on ``device``
    (restoration/device_stages.py); ``auto`` = torch on CUDA, numpy on the CPU. ``torch`` on the CPU is
    how the tests compare the two.
    """

    def __init__(
        self,
        weights_dir: Path,
        device: str = "auto",
        model_path: Path | None = None,
        max_batch: int | None = None,
        parser_backend: str = "auto",
        background: str = "auto",
        limits: ImageLimits | None = None,
        generator: torch.nn.Module | None = None,
        precision: str = "auto",
        mask_source: str = "input",
        stages: str = "auto",
    ) -> None:
        if mask_source not in MASK_SOURCES:
            raise ValueError(f"mask_source must be one of {', '.join(MASK_SOURCES)}, not {mask_source!r}")
        if stages not in STAGE_PATHS:
            raise ValueError(f"stages must be one of {', '.join(STAGE_PATHS)}, not {stages!r}")
        self.mask_source = mask_source
        self.weights_dir = Path(weights_dir)
        self.device = resolve_device(device)
        #: the pixel stages run in torch on ``device`` (restoration/device_stages.py), else OpenCV/numpy
        self.torch_stages = stages == "torch" or (stages == "auto" and self.device.type == "cuda")
        #: what the generator computes in: bf16 autocast where the hardware has it (``auto``), else fp32
        self.precision = resolve_precision(precision, self.device)
        #: faces per generator batch (``None``/0: :data:`AUTO_BATCH` for the device)
        self.max_batch = max(1, int(max_batch or AUTO_BATCH.get(self.device.type, 8)))
        self.background = resolve_method(background)
        self.limits = limits or ImageLimits()
        self.detector = FaceDetector(self.weights_dir, self.device)
        self.generator, self.model_version = self._load_generator(generator, model_path)
        self.generator.eval().to(self.device)
        self.is_classical = self.model_version == CLASSICAL_VERSION
        cfg = getattr(self.generator, "config", None)
        self.uses_mask = int(getattr(cfg, "mask_ch", 0) or 0) > 0
        self.generator.to(memory_format=torch.channels_last)  # faster convolutions on CUDA and oneDNN alike
        self.parser, self.part_classes = self._load_parser(parser_backend)
        self.embedder = self._load_embedder()
        #: fidelity=auto reads each input's NIQE (restoration/fidelity.py); without BasicSR's NIQE
        #: parameters it restores fully, still falling back where the identity check says so
        self.estimates_degradation = (self.weights_dir / "metrics" / "niqe_pris_params.npz").is_file()
        if not self.estimates_degradation:
            log.warning("no %s: fidelity=auto cannot estimate degradation and starts every face at 1",
                        self.weights_dir / "metrics" / "niqe_pris_params.npz")

    # --- model loading ----------------------------------------------------------------------
    def _load_generator(
        self, generator: torch.nn.Module | None, model_path: Path | None
    ) -> tuple[torch.nn.Module, str]:
        if generator is not None:
            return generator, str(getattr(generator, "model_version", type(generator).__name__))
        if model_path is not None and str(model_path) == CLASSICAL_MODEL:
            return ClassicalFaceRestorer(), CLASSICAL_VERSION
        path = Path(model_path) if model_path is not None else shipped_model()
        if path is None:
            return ClassicalFaceRestorer(), CLASSICAL_VERSION
        if not path.is_file():
            raise WeightsMissing(f"generator weights {path} do not exist")
        from restoration.generator import load_generator

        g, version = load_generator(path, self.device)
        return g, str(version)

    def _load_parser(self, backend: str) -> tuple[Any, list[str]]:
        try:
            from restoration.parsing import PART_CLASSES, get_parser
        except ImportError:
            log.warning("restoration.parsing is not available: faces are pasted through a template mask")
            return None, []
        try:
            parser = get_parser(backend, weights_dir=self.weights_dir, device=str(self.device))
            return parser, list(PART_CLASSES)
        except WeightsMissing as e:
            if backend != "auto":
                raise
            log.warning("no face parser (%s): faces are pasted through a template mask", e)
            return None, []

    def _load_embedder(self) -> Any:
        try:
            from restoration.identity import IdentityEmbedder

            return IdentityEmbedder(self.weights_dir, device=str(self.device), num_threads=torch.get_num_threads())
        except (ImportError, WeightsMissing, FileNotFoundError) as e:
            log.info("identity embedder unavailable (%s): identity_cosine will be None", e)
            return None

    # --- public API -------------------------------------------------------------------------
    def restore_bytes(
        self, data: bytes, options: RestoreOptions, *, keep_crops: bool = False
    ) -> RestoreResult:
        """Restore one encoded photo; raises a :class:`RestorationError` with a stable code on bad input."""
        return self.restore_image(data, options, keep_crops=keep_crops)

    def restore_image(
        self, image: bytes | DecodedImage | np.ndarray, options: RestoreOptions, *, keep_crops: bool = False
    ) -> RestoreResult:
        """Restore a decoded photo, an RGB uint8 array (H×W×3, or H×W gray) or encoded bytes."""
        result = self.restore_many([image], options, keep_crops=keep_crops)[0]
        if isinstance(result, RestorationError):
            raise result
        return result

    @torch.inference_mode()
    def restore_many(
        self,
        inputs: Sequence[bytes | DecodedImage | np.ndarray],
        options: RestoreOptions,
        *,
        keep_crops: bool = False,
        keep_input: bool = False,
    ) -> list[RestoreResult | RestorationError]:
        """Restore several photos, batching all their faces together; bad inputs come back as errors."""
        jobs: list[_Photo | RestorationError] = []
        for item in inputs:
            try:
                jobs.append(self._prepare(item, options))
            except RestorationError as e:
                jobs.append(e)
        ready = [j for j in jobs if isinstance(j, _Photo)]
        self._restore_faces(ready)
        return [j if isinstance(j, RestorationError) else self._finish(j, keep_crops, keep_input) for j in jobs]

    # --- stages -----------------------------------------------------------------------------
    def _decode(self, item: bytes | DecodedImage | np.ndarray) -> tuple[DecodedImage, torch.Tensor | None]:
        """The decoded photo, and on the torch path its pixels on the device (JPEGs decoded there)."""
        if isinstance(item, DecodedImage):
            d = item
        elif isinstance(item, np.ndarray):
            arr = item if item.ndim == 3 else np.repeat(item[..., None], 3, axis=2)
            if arr.dtype != np.uint8 or arr.shape[2] != 3:
                raise ValueError(f"expected an RGB uint8 array, got {item.dtype} {item.shape}")
            image_io.check_size(arr.shape[1], arr.shape[0], self.limits)
            d = DecodedImage(rgb=np.ascontiguousarray(arr), is_gray=item.ndim == 2, format="PNG")
        elif self.torch_stages:
            return device_stages.decode(bytes(item), self.limits, self.device)
        else:
            d = image_io.decode(bytes(item), self.limits)
        return d, device_stages.upload(d.rgb, self.device) if self.torch_stages else None

    def _effective_scale(self, d: DecodedImage, requested: int) -> int:
        """The requested upscale, lowered until the output fits ``limits.max_output_pixels``."""
        scale = int(requested)
        while scale > 1 and d.width * d.height * scale * scale > self.limits.max_output_pixels:
            scale //= 2
        return scale

    def _prepare(self, item: bytes | DecodedImage | np.ndarray, options: RestoreOptions) -> _Photo:
        timings: dict[str, float] = {}
        clock = _Clock(timings, self._sync)
        with clock("decode"):
            decoded, pixels = self._decode(item)
        job = _Photo(decoded, options, self._effective_scale(decoded, options.upscale), timings, pixels=pixels)
        if options.aligned:
            with clock("align"):
                crop = decoded.rgb
                if crop.shape[:2] != (FACE_SIZE, FACE_SIZE):
                    shrink = crop.shape[0] > FACE_SIZE
                    crop = cv2.resize(crop, (FACE_SIZE, FACE_SIZE),
                                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4)
                sx, sy = FACE_SIZE / decoded.width, FACE_SIZE / decoded.height
                fwd = np.array([[[sx, 0, 0], [0, sy, 0]]], np.float64)
                inv = np.array([[[1 / sx, 0, 0], [0, 1 / sy, 0]]], np.float64)
                job.aligned = AlignedFaces(crops=crop[None], affines=fwd, inverse_affines=inv)
                if self.torch_stages:
                    job.crops = device_stages.upload(crop[None], self.device)
                lm = FFHQ_TEMPLATE_512 / np.array([sx, sy], np.float32)
                box = np.array([0, 0, decoded.width, decoded.height], np.float32)
                job.faces = [Face(box=box, landmarks=lm, score=float("nan"))]
            return job
        with clock("detect"):
            job.faces = self.detector.detect(
                decoded.rgb,
                threshold=options.detection_threshold,
                min_face_size=options.min_face_size,
                max_faces=options.max_faces,
                only_center=options.only_center_face,
            )
        with clock("align"):
            if job.faces:
                landmarks = np.stack([f.landmarks for f in job.faces])
                if job.pixels is not None:
                    job.aligned, job.crops = device_stages.align_faces(job.pixels, landmarks)
                else:
                    job.aligned = align_faces(decoded.rgb, landmarks)
        return job

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        if self.precision == "fp32" or self.is_classical:
            yield
            return
        dtype = torch.bfloat16
        if self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            dtype = torch.float16
        with torch.autocast(self.device.type, dtype=dtype):
            yield

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _parse(self, crops: np.ndarray, on_device: torch.Tensor | None = None,
               person: np.ndarray | None = None) -> np.ndarray | None:
        """Part maps of uint8 N×512×512×3 faces; a parser that takes device tensors (BiSeNet, ParseNet) gets
        ``on_device``, the same faces already on the pipeline's device, when there is such a copy; the
        landmark parser gets ``person``, the faces' silhouettes (:meth:`_silhouettes`)."""
        if self.parser is None:
            return None
        if on_device is not None and getattr(self.parser, "takes_tensors", False):
            return self.parser.parse(on_device)
        if person is not None:
            return self.parser.parse(crops, person=person)
        return self.parser.parse(crops)

    def _silhouettes(self, crops: np.ndarray) -> np.ndarray | None:
        """The input faces' person masks for the window's one parse, whichever face it parses (a
        restored face has its input's outline); None for parsers without a segmenter."""
        silhouettes = getattr(self.parser, "silhouettes", None)
        return None if silhouettes is None else silhouettes(crops)

    @torch.inference_mode()
    def _generate(self, crops: np.ndarray | torch.Tensor, labels: np.ndarray | None) -> torch.Tensor:
        """One generator batch: uint8 N×512×512×3 faces (host or device) -> the restored faces, uint8
        N×512×512×3 on the device."""
        src = crops if isinstance(crops, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(crops))
        x = to_model(src.to(self.device))
        mask = generator_mask(labels).to(self.device) if self.uses_mask and labels is not None else None
        x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            y = self.generator(x, mask).float()
        out = to_pixels(y)
        self._sync()
        return out

    def _generate_batches(self, crops: np.ndarray | torch.Tensor, labels: np.ndarray | None) -> torch.Tensor:
        """:meth:`_generate` ``max_batch`` faces at a time."""
        step = self.max_batch
        return torch.cat([self._generate(crops[s:s + step], None if labels is None else labels[s:s + step])
                          for s in range(0, len(crops), step)])

    def _restore_faces(self, jobs: list[_Photo]) -> None:
        """Parse, generate, colour-match and blend the faces of all jobs in shared batches."""
        refs = [(j, i) for j in jobs if j.aligned is not None for i in range(len(j.aligned.crops))]
        for j in jobs:
            n = 0 if j.aligned is None else len(j.aligned.crops)
            if self.torch_stages:
                j.final = torch.empty((n, FACE_SIZE, FACE_SIZE, 3), dtype=torch.uint8, device=self.device)
                j.masks = torch.empty((n, FACE_SIZE, FACE_SIZE), dtype=torch.float32, device=self.device)
            else:
                j.final = np.empty((n, FACE_SIZE, FACE_SIZE, 3), np.uint8)
                j.masks = np.empty((n, FACE_SIZE, FACE_SIZE), np.float32)
            j.identity = [None] * n
            j.fidelity = [None] * n
            j.face_timings = [{} for _ in range(n)]
            for stage in ("parse", "generate", "identity", "paste"):
                j.timings.setdefault(stage, 0.0)
        for start in range(0, len(refs), PARSE_WINDOW):
            self._restore_window(refs[start:start + PARSE_WINDOW])

    def _masks(self, labels: np.ndarray | None, count: int) -> np.ndarray | torch.Tensor:
        """Soft paste masks of the restored faces' part maps (the template without a parser)."""
        if self.torch_stages:
            if labels is None:
                return device_stages.upload(template_mask(), self.device).expand(count, -1, -1)
            return device_stages.part_masks(device_stages.upload(labels, self.device), self.part_classes)
        if labels is None:
            return np.broadcast_to(template_mask(), (count, FACE_SIZE, FACE_SIZE))
        return part_masks(labels, self.part_classes)

    def _restore_window(self, refs: list[tuple[_Photo, int]]) -> None:
        """Up to PARSE_WINDOW faces: one parser call each way over all of them (a photo's faces together),
        the generator ``max_batch`` at a time, the identity embedder IDENTITY_BATCH."""
        n = len(refs)
        crops = np.stack([j.aligned.crops[i] for j, i in refs])
        dev_crops = torch.stack([j.crops[i] for j, i in refs]) if self.torch_stages else None
        gen_in = crops if dev_crops is None else dev_crops
        t0 = time.perf_counter()
        gen_s, labels_in = 0.0, None
        source = self.mask_source if self.uses_mask and self.parser is not None else "none"
        person = self._silhouettes(crops)
        if source == "input":
            labels_in = self._parse(crops, dev_crops, person)
        elif source == "restored":
            tg = time.perf_counter()
            first = self._generate_batches(gen_in, None)
            gen_s += time.perf_counter() - tg
            labels_in = self._parse(first.cpu().numpy(), first, person)
        tg = time.perf_counter()
        restored = self._generate_batches(gen_in, labels_in)
        gen_s += time.perf_counter() - tg
        host = restored.cpu().numpy()
        # the paste mask: the part map the generator drew to when it had one (a second parse of the
        # restored faces cost ~17 ms a face and moved the composite's PSNR by under 0.01 dB, docs/pipeline.md)
        labels_out = labels_in if labels_in is not None else self._parse(
            host, restored if dev_crops is not None else None, person)
        masks = self._masks(labels_out, n)
        self._sync()
        per_parse, per_gen = (time.perf_counter() - t0 - gen_s) * 1000 / n, gen_s * 1000 / n
        auto = np.array([j.options.fidelity == AUTO for j, _ in refs])
        w, fid_ms = self._fidelities(refs, crops)  # fid_ms: each auto face's NIQE, counted in its paste
        tp = time.perf_counter()
        if dev_crops is not None:  # colour match and fidelity of the whole window at once
            matched = device_stages.match_color(restored, dev_crops, masks)
            faces = self._blend(matched, dev_crops, w)
            finals = faces.cpu().numpy() if self.embedder is not None else None
            self._sync()
            paste_ms = list((time.perf_counter() - tp) * 1000 / n + fid_ms)
        else:
            matched, finals, paste_ms = np.empty_like(host), np.empty_like(host), []
            for k in range(n):
                tp = time.perf_counter()
                matched[k] = match_color(host[k], crops[k], masks[k])
                finals[k] = self._blend(matched[k:k + 1], crops[k:k + 1], w[k:k + 1])[0]
                paste_ms.append((time.perf_counter() - tp) * 1000 + fid_ms[k])
            faces = finals
        for k, (j, i) in enumerate(refs):
            j.final[i], j.masks[i] = faces[k], masks[k]
            j.fidelity[i] = _round(w[k], 3)
            ft = j.face_timings[i]
            ft.update(parse=per_parse, generate=per_gen, paste=paste_ms[k])
            j.timings["paste"] += paste_ms[k]
            j.timings["parse"] += per_parse
            j.timings["generate"] += per_gen
        if self.embedder is None or finals is None:
            return
        cos, emb_in = np.empty(n, np.float32), [None] * n
        for s in range(0, n, IDENTITY_BATCH):
            t4 = time.perf_counter()
            e = min(n, s + IDENTITY_BATCH)
            # inputs and outputs in one call: one forward pass where the model takes a batch
            emb = np.asarray(self.embedder.embed_aligned(np.concatenate([crops[s:e], finals[s:e]])))
            cos[s:e] = np.sum(emb[:e - s] * emb[e - s:], axis=1)
            emb_in[s:e] = list(emb[:e - s])
            per_id = (time.perf_counter() - t4) * 1000 / (e - s)
            for j, i in refs[s:e]:
                j.face_timings[i]["identity"] = per_id
                j.timings["identity"] += per_id
        # fidelity=auto, step 2 (restoration/fidelity.py): a blend that left the person falls back to FLOOR
        redo = [k for k in range(n) if auto[k] and w[k] > fidelity.FLOOR and not fidelity.keeps_person(cos[k])]
        for s in range(0, len(redo), IDENTITY_BATCH):
            t4 = time.perf_counter()
            ks = redo[s:s + IDENTITY_BATCH]
            w[ks] = fidelity.FLOOR
            again = self._blend(matched[ks], (crops if dev_crops is None else dev_crops)[ks], w[ks])
            host_again = again if isinstance(again, np.ndarray) else again.cpu().numpy()
            emb = np.asarray(self.embedder.embed_aligned(host_again))  # the inputs' are known
            cos[ks] = np.sum(np.stack([emb_in[k] for k in ks]) * emb, axis=1)
            per_id = (time.perf_counter() - t4) * 1000 / len(ks)
            for m, k in enumerate(ks):
                j, i = refs[k]
                j.final[i], j.fidelity[i] = again[m], _round(w[k], 3)
                j.face_timings[i]["identity"] += per_id
                j.timings["identity"] += per_id
        for k, (j, i) in enumerate(refs):
            j.identity[i] = _round(cos[k], 4)

    def _fidelities(self, refs: list[tuple[_Photo, int]], crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each face's blend weight — its job's number, or for ``auto`` step 1 of restoration/fidelity.py
        (from the input crop's NIQE; 1 where the NIQE parameters are missing, see :meth:`__init__`) — and
        the milliseconds each face's estimate took (0 for a given number)."""
        w, ms = np.ones(len(refs), np.float32), np.zeros(len(refs))
        for k, (j, _) in enumerate(refs):
            if j.options.fidelity != AUTO:
                w[k] = float(j.options.fidelity)
            elif self.estimates_degradation:
                t = time.perf_counter()
                w[k] = fidelity.fidelity_for(fidelity.input_niqe(crops[k], self.weights_dir))
                ms[k] = (time.perf_counter() - t) * 1000
        return w, ms

    def _blend(self, restored: Any, inputs: Any, w: np.ndarray) -> Any:
        """cv2.addWeighted(restored, w, input, 1 − w) per face (faces at 1 stay as they are), host or device."""
        if isinstance(restored, torch.Tensor):
            wt = torch.from_numpy(w)
            blend = (wt < 1.0).to(self.device)[:, None, None, None]
            return torch.where(blend, device_stages.mix(restored, inputs, wt), restored)
        return fidelity.blend(restored, inputs, w)

    def _finish(self, job: _Photo, keep_crops: bool, keep_input: bool) -> RestoreResult:
        d, opts, clock = job.decoded, job.options, _Clock(job.timings, self._sync)
        out_w, out_h = d.width * job.scale, d.height * job.scale
        on_device = job.pixels is not None
        if opts.aligned:
            with clock("paste"):
                face = _host(job.final[0])
                interp = cv2.INTER_AREA if out_w < FACE_SIZE else cv2.INTER_LANCZOS4
                out = face if (out_w, out_h) == (FACE_SIZE, FACE_SIZE) else cv2.resize(
                    face, (out_w, out_h), interpolation=interp)
                if on_device:
                    out = device_stages.upload(out, self.device)
            job.timings.setdefault("background", 0.0)
        elif on_device:
            with clock("background"):
                canvas = device_stages.enhance_background(job.pixels, job.scale, self.background)
            with clock("paste"):
                out = canvas
                if job.aligned is not None and len(job.final):
                    out = device_stages.paste_faces(canvas, job.final, job.aligned.inverse_affines, job.masks,
                                                    job.scale)
        else:
            with clock("background"):
                canvas = enhance_background(d.rgb, job.scale, self.background)
            with clock("paste"):
                out = canvas
                if job.aligned is not None and len(job.final):
                    out = paste_faces(canvas, job.final, job.aligned.inverse_affines, job.masks, job.scale)
        with clock("encode"):
            fmt = image_io.output_format(opts.output_format, d)
            if d.is_gray:
                out = device_stages.gray(out) if on_device else cv2.cvtColor(
                    cv2.cvtColor(out, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
            alpha = None if d.alpha is None else image_io.resize_alpha(d.alpha, out_w, out_h)
            if d.bit_depth == 16 and fmt == "png":
                out = _host(out)
                pixels = self._to16(d, out, opts.aligned)
                data = image_io.encode(pixels, fmt, quality=opts.quality, alpha=alpha, is_gray=d.is_gray)
            elif on_device:
                data = device_stages.encode(out, fmt, quality=opts.quality, alpha=alpha, is_gray=d.is_gray)
            else:
                data = image_io.encode(out, fmt, quality=opts.quality, alpha=alpha, is_gray=d.is_gray)
            out = _host(out)
        for stage in STAGES:
            job.timings.setdefault(stage, 0.0)
        job.timings["total"] = sum(job.timings[s] for s in STAGES)
        masks = _host(job.masks)
        faces = [self._face_report(job, i, masks) for i in range(len(job.faces))]
        crops_in = crops_out = where = None
        if keep_crops and job.aligned is not None:
            final = _host(job.final)
            crops_in, crops_out = list(job.aligned.crops), list(final)
            if not opts.aligned:
                white = np.full_like(final, 255)
                black = np.zeros((out_h, out_w, 3), np.uint8)
                where = paste_faces(black, white, job.aligned.inverse_affines, masks, job.scale)[..., 0]
        return RestoreResult(
            data=data, format=fmt, width=out_w, height=out_h, faces=faces,
            timings={k: _round(v) for k, v in job.timings.items()}, model_version=self.model_version,
            upscale=job.scale, image=out, input_crops=crops_in, restored_crops=crops_out, paste_mask=where,
            input_image=d.rgb if keep_input else None,
        )
    @staticmethod
    def _to16(d: DecodedImage, out8: np.ndarray, aligned: bool) -> np.ndarray:
        """16-bit output: the 16-bit original resized, plus what the pipeline changed (×257).

        Regions the pipeline left alone keep their full 16-bit precision instead of being quantised.
        """
        if d.rgb16 is None or aligned:
            return out8.astype(np.uint16) * 257
        h, w = out8.shape[:2]
        base16, base8 = d.rgb16, d.rgb
        if (w, h) != (d.width, d.height):
            base16 = cv2.resize(base16, (w, h), interpolation=cv2.INTER_LANCZOS4)
            base8 = cv2.resize(base8, (w, h), interpolation=cv2.INTER_LANCZOS4)
        if d.is_gray:
            base16 = np.repeat(cv2.cvtColor(base16, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
            base8 = np.repeat(cv2.cvtColor(base8, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
        delta = (out8.astype(np.int32) - base8.astype(np.int32)) * 257
        return np.clip(base16.astype(np.int32) + delta, 0, 65535).astype(np.uint16)

    def _face_report(self, job: _Photo, i: int, masks: np.ndarray) -> dict[str, Any]:
        f = job.faces[i]
        return {
            "index": i,
            "box": [_round(v, 1) for v in f.box],
            "landmarks": [[_round(x, 1), _round(y, 1)] for x, y in f.landmarks],
            "score": None if np.isnan(f.score) else _round(f.score, 4),
            "mask_coverage": _round(masks[i].mean(), 4),
            "identity_cosine": job.identity[i],
            "fidelity": job.fidelity[i],
            "timings_ms": {k: _round(v) for k, v in job.face_timings[i].items()},
        }
