"""A full disk under PROMETHEUS_MULTIPROC_DIR costs metric samples, never the process (no SIGBUS)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_reserved_files_are_the_ones_prometheus_client_writes() -> None:
    from prometheus_client.metrics import MetricWrapperBase

    from portrait import metrics
    from portrait.metrics_files import FILE_PREFIXES

    kinds = {m._type if m._type != "gauge" else f"gauge_{m._multiprocess_mode}"
             for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}
    assert kinds == set(FILE_PREFIXES)


@pytest.fixture
def full_tmpfs(tmp_path: Path):
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    (mnt / "samples").mkdir()
    try:
        with open(mnt / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
    except OSError:
        pass
    try:
        yield mnt / "samples"
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_process_on_a_full_disk_keeps_running_without_samples(full_tmpfs: Path) -> None:
    """Importing the metrics and recording samples, as the API does, with the directory on a full disk:
    prometheus-client alone dies of SIGBUS here (exit -7); reserved first, the process lives."""
    code = ("import portrait.metrics as m; from portrait.metrics_files import samples_on; "
            "m.JOBS.labels('succeeded', '').inc(); m.IN_FLIGHT.inc(); m.JOB_SECONDS.observe(1.0); "
            "print('alive', samples_on())")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(full_tmpfs)}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert r.stdout.strip() == "alive False"
    assert "WITHOUT metric samples" in r.stderr and "no space left" in r.stderr
    bare = subprocess.run([sys.executable, "-c", "from prometheus_client import Counter; Counter('x', 'x').inc()"],
                          env=env, capture_output=True, timeout=60)
    assert bare.returncode == -7, "without the reservation the same write is a SIGBUS"
