"""The GPU worker's layout measured: photos/s through the worker's code path with k children.

    .venv/bin/python benchmarks/layout.py [--children 1,2] [--photos one,one1080,solvay] [--count 4]
                                          [--solvay-count N] [--device auto] [--json out/layout.json]

For each k it forks k children the way ``portrait worker gpu`` does (the parent never touches CUDA):
each child takes its place in the layout (``worker.restorer.place``: its device and threads, from
worker/layout.py; WORKER_CHILD_THREADS = cores ÷ k unless set), builds its pipeline with
``worker.restorer.get_restorer()`` from the settings (DEVICE, MODEL_PATH, PRECISION, ...), restores each
photo once to warm up, and then all children restore photos pulled from one shared queue with a job's
options (``RestoreOptions``, ×2 upscale) until ``--count`` photos per child are done. Printed per photo
kind and k: photos/s and faces/s with the ratio to k = 1 in the same run, each child's resident memory
and, on CUDA, its GPU memory (``torch.cuda.max_memory_reserved``) and the GPU's busy share sampled with
``nvidia-smi`` while the children ran.

Not in it: what the task does around the pipeline (S3 get and put, the Postgres claim and record, the
heartbeat); ``benchmarks/api_submit.py`` measures the service around it. Photos are read from FACES_DIR.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from restoration.paths import default_faces_dir

FACES_DIR = default_faces_dir()
SELFIE = FACES_DIR / "wild" / "whole" / "gpen_selfie_2020-12-17_185036.jpg"
PHOTOS = {
    "one": SELFIE,  # 2160 x 2160, one face
    "one1080": SELFIE,  # the same, cut to 16:9 and resized to 1920 x 1080 (a 1080p photo), JPEG q92
    "solvay": FACES_DIR / "wild" / "whole" / "gpen_Solvay_conference_1927.png",  # 1328 x 568, 29 faces
}


def photo_bytes(name: str) -> bytes:
    """The encoded photo of ``name`` (:data:`PHOTOS`)."""
    data = PHOTOS[name].read_bytes()
    if name != "one1080":
        return data
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
        ch = round(w * 9 / 16)
        top = (h - ch) // 2
        out = io.BytesIO()
        im.convert("RGB").crop((0, top, w, top + ch)).resize((1920, 1080), Image.LANCZOS).save(
            out, "JPEG", quality=92)
    return out.getvalue()


#: WORKER_CHILD_THREADS as the user set it (None: the layout's share of the cores for each child count)
_USER_THREADS = os.environ.get("WORKER_CHILD_THREADS")


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def _child(slot: int, data: bytes, count: int, ready: Any, go: Any, results: Any) -> None:
    """One prefork child: place itself, load the pipeline from the settings, restore ``count`` photos."""
    import torch

    from restoration.options import RestoreOptions
    from worker import restorer

    device = restorer.place(slot)
    r = restorer.get_restorer()
    options = RestoreOptions.model_validate({"upscale": 2})
    faces = len(r.restore_bytes(data, options).faces)  # warm-up: first calls of a shape are slower
    ready.put(slot)
    go.wait()
    t0 = time.perf_counter()
    stages: dict[str, float] = {}
    for _ in range(count):
        for k, v in r.restore_bytes(data, options).timings.items():
            stages[k] = stages.get(k, 0.0) + v / count
    busy = time.perf_counter() - t0
    gpu_mib = _gpu_mib_of(os.getpid()) if r.device.type == "cuda" else None
    if gpu_mib is None and r.device.type == "cuda":  # no nvidia-smi: torch's pool (without the CUDA context)
        gpu_mib = torch.cuda.max_memory_reserved(r.device) / 2**20
    results.put({"slot": slot, "device": device, "threads": torch.get_num_threads(), "faces": faces,
                 "photos": count, "busy_s": busy, "stages_ms": stages, "rss_mib": _rss_mib(), "gpu_mib": gpu_mib})


def _gpu_mib_of(pid: int) -> float | None:
    """GPU memory of process ``pid`` as the driver counts it (its CUDA context included), from nvidia-smi."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 2 and fields[0] == str(pid) and fields[1].isdigit():
            return float(fields[1])
    return None


class _GpuSampler(threading.Thread):
    """nvidia-smi's utilization.gpu (the share of time a kernel ran) every 100 ms while the children run;
    no samples without nvidia-smi."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.proc: subprocess.Popen | None = None

    def run(self) -> None:
        cmd = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "100"]
        if shutil.which("stdbuf"):  # line-buffered: samples arrive as they are taken
            cmd = ["stdbuf", "-oL", *cmd]
        try:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError:
            return
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError, IndexError):
                self.samples.append(float(line.split(",")[0]))

    def stop(self) -> list[float]:
        if self.proc is not None:
            self.proc.terminate()
        self.join(timeout=5)
        return list(self.samples)


def _collect(q: Any, procs: list[Any], n: int, deadline: float, what: str) -> list[Any]:
    """``n`` items from ``q``, failing as soon as a child died or the deadline passed (never a hang)."""
    import queue

    got: list[Any] = []
    while len(got) < n:
        try:
            got.append(q.get(timeout=2))
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"a child died while {what} (exit codes {dead})") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: {len(got)} of {n} after the deadline") from None
    return got


def measure(name: str, children: int, count: int, timeout_s: float = 600) -> dict[str, Any]:
    """Photos/s of ``children`` forked children restoring ``count`` copies of photo ``name`` each; a child
    that dies or a run past ``timeout_s`` raises (the children are ended either way)."""
    from portrait.cli import gpu_layout
    from portrait.settings import get_settings

    if _USER_THREADS is None:  # the layout decides, as `portrait worker gpu` does, for each count anew
        os.environ.pop("WORKER_CHILD_THREADS", None)
    get_settings.cache_clear()
    settings = get_settings()
    layout = gpu_layout(settings, children)
    os.environ["WORKER_CHILD_THREADS"] = str(layout.threads_per_child)  # as `portrait worker gpu` does
    get_settings.cache_clear()
    ctx = mp.get_context("fork")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    data = photo_bytes(name)
    procs = [ctx.Process(target=_child, args=(k, data, count, ready, go, results)) for k in range(children)]
    deadline = time.monotonic() + timeout_s
    sampler = _GpuSampler()
    try:
        for p in procs:
            p.start()
        _collect(ready, procs, children, deadline, "loading the pipelines")
        sampler.start()
        t0 = time.perf_counter()
        go.set()
        rows = _collect(results, procs, children, deadline, "restoring")
        wall = time.perf_counter() - t0
    finally:
        busy = sampler.stop() if sampler.is_alive() else []
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    photos = sum(r["photos"] for r in rows)
    return {"photo": name, "children": children, "gpus": layout.gpus,
            "threads_per_child": layout.threads_per_child, "faces_per_photo": rows[0]["faces"],
            "photos": photos, "wall_s": round(wall, 3), "photos_per_s": round(photos / wall, 3),
            "faces_per_s": round(photos * rows[0]["faces"] / wall, 2),
            "rss_mib_per_child": round(statistics.mean(r["rss_mib"] for r in rows)),
            "gpu_mib_per_child": None if rows[0]["gpu_mib"] is None else round(
                statistics.mean(r["gpu_mib"] for r in rows)),
            "gpu_busy_pct": round(statistics.mean(busy), 1) if busy else None,
            "devices": sorted({r["device"] for r in rows}),
            "stages_ms": {k: round(statistics.mean(r["stages_ms"][k] for r in rows), 1) for k in rows[0]["stages_ms"]}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--children", default="1,2", help="comma-separated child counts to compare")
    p.add_argument("--photos", default="one,solvay", help=f"comma-separated: {', '.join(PHOTOS)}")
    p.add_argument("--count", type=int, default=4, help="photos each child restores after its warm-up")
    p.add_argument("--solvay-count", type=int, help="the same for the 29-face photo (default --count)")
    p.add_argument("--device", help="DEVICE for the children (default: the settings', auto)")
    p.add_argument("--json", type=Path, help="also write the rows here (after each one)")
    p.add_argument("--timeout", type=float, default=600, help="seconds one measurement may take")
    args = p.parse_args()
    if args.device:
        os.environ["DEVICE"] = args.device
    rows = []
    print(f"{'photo':10s} {'children':>8s} {'threads':>7s} {'photos/s':>9s} {'faces/s':>8s} {'vs 1':>6s} "
          f"{'RSS MiB':>8s} {'GPU MiB':>8s} {'GPU busy':>8s}")
    for name in args.photos.split(","):
        base = None
        for k in (int(c) for c in args.children.split(",")):
            count = (args.solvay_count or args.count) if name == "solvay" else args.count
            try:
                row = measure(name, k, count, args.timeout)
            except (RuntimeError, TimeoutError) as e:
                print(f"{name:10s} {k:8d} failed: {e}", flush=True)
                rows.append({"photo": name, "children": k, "error": str(e)})
                _write(args.json, rows)
                continue
            base = base or row["photos_per_s"]
            row["ratio_to_one_child"] = round(row["photos_per_s"] / base, 2)
            rows.append(row)
            gpu_mib = "-" if row["gpu_mib_per_child"] is None else row["gpu_mib_per_child"]
            busy = "-" if row["gpu_busy_pct"] is None else f"{row['gpu_busy_pct']}%"
            print(f"{row['photo']:10s} {k:8d} {row['threads_per_child']:7d} {row['photos_per_s']:9.2f} "
                  f"{row['faces_per_s']:8.1f} {row['ratio_to_one_child']:5.2f}x {row['rss_mib_per_child']:8d} "
                  f"{gpu_mib!s:>8s} {busy:>8s}", flush=True)
            _write(args.json, rows)


def _write(path: Path | None, rows: list[dict]) -> None:
    """The rows so far (a run cut short keeps what it measured)."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
