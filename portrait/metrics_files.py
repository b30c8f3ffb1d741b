"""Reserving a process's Prometheus sample files, so that a full disk never kills it.

In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``: the GPU worker's prefork children, several API
processes) prometheus-client memory-maps one file per process and metric type, after growing it with
``truncate`` — a sparse file. On a full disk (a small tmpfs as TMPDIR) the first sample written to such a
page faults with **SIGBUS**: every new worker child died 0.1–1.4 s after loading the model, in a respawn
loop that restored nothing (issue 19). So a process reserves its files first with ``posix_fallocate``,
large enough that they never grow in practice; without room it runs without samples (``samples_on()`` is
False and the recording functions skip) instead of crashing.

portrait/metrics.py reserves before it defines a metric — a label-less metric writes its file when it is
created — and, without room, makes this process's values in-memory. A forked child (the GPU worker's)
reserves again for its own pid (worker/celery_app.py) and, without room, records nothing. A module of
its own because it must not import prometheus-client: the worker sets the directory before that import.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os

log = logging.getLogger("portrait.metrics")
ENV = "PROMETHEUS_MULTIPROC_DIR"
#: bytes reserved per sample file and process (prometheus-client starts at 64 KiB; ours hold < 30 KiB)
RESERVE_BYTES = 256 << 10
#: False in a process that could not reserve its files: metrics are then not recorded there
_samples = {"on": True}


#: the files a process writes, one per metric type and gauge mode (``<prefix>_<pid>.db``): the metrics of
#: portrait/metrics.py, which imports this module first (a test keeps the two in step)
FILE_PREFIXES = ("counter", "gauge_livemax", "gauge_livesum", "histogram")


def reserve_sample_files() -> bool:
    """Allocate this process's sample files now (call it first in a new process or child), so that a full
    disk is found here and not by a SIGBUS on the first sample. False, and nothing recorded by this
    process from then on, when there is no room."""
    directory = os.environ.get(ENV)
    if not directory:
        return True
    made: list[str] = []
    try:
        for prefix in FILE_PREFIXES:
            path = os.path.join(directory, f"{prefix}_{os.getpid()}.db")
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            made.append(path)
            try:
                if os.fstat(fd).st_size < RESERVE_BYTES:
                    os.posix_fallocate(fd, 0, RESERVE_BYTES)
            finally:
                os.close(fd)
    except OSError as e:
        for path in made:
            with contextlib.suppress(OSError):
                os.unlink(path)
        _samples["on"] = False
        why = "no space left" if e.errno in (errno.ENOSPC, errno.EDQUOT) else str(e)
        log.error("process %d runs WITHOUT metric samples: cannot reserve its files in %s (%s); its work "
                  "goes on", os.getpid(), directory, why)
        return False
    _samples["on"] = True
    return True


def samples_on() -> bool:
    """Whether this process records metric samples (False after a failed reservation)."""
    return _samples["on"]



