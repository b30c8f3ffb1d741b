"""The GPU worker's layout: how many prefork children it runs, and on which device and threads each one.

A child restores one photo at a time (prefetch 1, ``acks_late``), and most of a photo's time is host
work the GPU waits for: MediaPipe parsing (CPU only), Python between the stages, detection's
pre/post-processing, PNG decode and encode, S3 and Postgres. With one child per GPU the device is idle
most of the time (docs/operations.md, "Capacity"). So a GPU worker runs **several children per GPU**,
each with its own pipeline on its GPU, and the host's cores are shared out between them: while one
child parses, another's faces are on the GPU. Every job guarantee stays what it is with one child
(a child is the unit of a lease, a heartbeat, a failure and a message), which is why this layout was
chosen over one GPU process fed by CPU processes that batch faces across jobs (argued, with the
figures, in docs/operations.md).

* ``GPU_WORKER_CHILDREN`` children per GPU; 0 = auto: the host's cores ÷ 2 ÷ visible GPUs on CUDA (two
  threads a child: MediaPipe's interpreters and OpenCV), one child on the CPU (the pipeline's own
  threads use every core there).
* child *k* (its slot in worker/children.py's book, so a replacement takes the place of the child it
  replaces) runs on ``cuda:(k mod GPUs)`` when ``DEVICE`` names no index; ``cuda:N`` pins every child.
* ``WORKER_CHILD_THREADS`` intra-op threads per child (torch, OpenCV); 0 = the host's cores ÷ children.

The parent never initialises CUDA: ``portrait worker gpu`` counts the GPUs before it becomes Celery
(``os.execv``), and each child picks its device after the fork.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from portrait.settings import Settings

#: threads a child gets in the auto layout on CUDA (MediaPipe's interpreters run two)
THREADS_PER_GPU_CHILD = 2


def host_cores() -> int:
    """Cores this process may run on (the affinity mask, so a container's CPU set counts, not the host's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def visible_gpus(device: str) -> int:
    """CUDA devices the workers will see for ``DEVICE`` (0 on the CPU, or without torch or CUDA)."""
    if device == "cpu":
        return 0
    try:
        import torch
    except ImportError:
        return 0
    # NVML's count: unlike torch.cuda.is_available() it does not initialise CUDA in a process that forks
    return torch.cuda.device_count()


@dataclass(frozen=True)
class Layout:
    """How a GPU worker's children are spread: ``children`` in all, over ``gpus`` devices (0 = CPU)."""

    children: int
    gpus: int
    threads_per_child: int


def plan(settings: Settings, gpus: int, cores: int, children: int | None = None) -> Layout:
    """The layout for ``gpus`` visible GPUs and ``cores`` host cores; ``children`` overrides the count
    (``portrait worker gpu -c N``)."""
    if children is None:
        per_gpu = settings.gpu_worker_children
        if per_gpu <= 0:
            per_gpu = max(1, cores // THREADS_PER_GPU_CHILD // gpus) if gpus else 1
        children = per_gpu * max(1, gpus)
    threads = settings.worker_child_threads or max(1, cores // children)
    return Layout(children=children, gpus=gpus, threads_per_child=threads)


def child_device(device: str, slot: int, gpus: int) -> str:
    """The device of the child in ``slot``: the GPUs in turn when ``device`` names no index."""
    if gpus > 1 and device in ("auto", "cuda"):
        return f"cuda:{slot % gpus}"
    return device


def place_child(settings: Settings, slot: int) -> str:
    """In a new child, after the fork: set its intra-op threads (``WORKER_CHILD_THREADS``, which
    ``portrait worker gpu`` sets from its layout) and return the device its pipeline loads on."""
    import cv2
    import torch

    threads = settings.worker_child_threads or host_cores()
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    return child_device(settings.device, slot, visible_gpus(settings.device))
