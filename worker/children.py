"""The GPU worker's children: who started, who died before becoming healthy, and how long to back off.

Celery's prefork pool replaces a dead child at once. A child that dies at start-up every time (a full
disk, a driver fault, the OOM killer) then turns into a respawn loop that reloads the model dozens of
times a minute and restores nothing, visible only in the log. This module keeps a small book in an
anonymous shared memory map that the parent creates before the pool forks (no file: it works when every
disk is full), one slot per living child:

* a child registers itself first thing after the fork (``on_child_start``): slots of children that died
  before they became **healthy** (``HEALTHY_AFTER_S`` alive) count as early deaths;
* after ``k`` early deaths in a row the new child sleeps ``min(BACKOFF_MAX_S, BACKOFF_BASE_S·2^(k-1))``
  before it loads the model, so a loop slows down to one start a minute instead of one a second;
* the parent's exporter reads the book at scrape time (``BookCollector``):
  ``portrait_worker_child_starts_total``, ``portrait_worker_child_early_deaths_total``,
  ``portrait_worker_child_backoff_seconds`` and ``portrait_worker_children_without_metrics`` (children
  that could not reserve their metric files, worker/metrics.py), for the alert rules of
  ``infra/alerts.yml``.

Single writer per slot; the counters are updated by one child at a time in practice (children start one
after another), and a lost increment under a race would only make a figure one lower.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import struct
import threading
import time
from collections.abc import Iterator

log = logging.getLogger("portrait.worker")

HEALTHY_AFTER_S = 20.0
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 60.0
SLOTS = 64
# header: starts, early deaths, early deaths in a row, current backoff (s)
_HEADER = struct.Struct("<qqqd")
# a slot: pid (0 = free), start time (epoch s), healthy, metrics reserved
_SLOT = struct.Struct("<qdqq")


class ChildBook:
    """The shared table; create it in the parent, before the pool forks."""

    def __init__(self) -> None:
        self._m = mmap.mmap(-1, _HEADER.size + SLOTS * _SLOT.size)  # anonymous, MAP_SHARED

    # --- header
    def _header(self) -> list:
        return list(_HEADER.unpack_from(self._m, 0))

    def _set_header(self, values: list) -> None:
        _HEADER.pack_into(self._m, 0, *values)

    @property
    def starts(self) -> int:
        return self._header()[0]

    @property
    def early_deaths(self) -> int:
        return self._header()[1]

    @property
    def in_a_row(self) -> int:
        return self._header()[2]

    @property
    def backoff_s(self) -> float:
        return self._header()[3]

    @property
    def without_metrics(self) -> int:
        return sum(1 for _, pid, _, _, reserved in self._slots() if pid and _alive(pid) and not reserved)

    # --- slots
    def _slots(self) -> Iterator[tuple[int, int, float, int, int]]:
        for i in range(SLOTS):
            pid, started, healthy, reserved = _SLOT.unpack_from(self._m, _HEADER.size + i * _SLOT.size)
            yield i, pid, started, healthy, reserved

    def _set_slot(self, i: int, pid: int, started: float, healthy: int, reserved: int) -> None:
        _SLOT.pack_into(self._m, _HEADER.size + i * _SLOT.size, pid, started, healthy, reserved)

    def register(self, pid: int) -> tuple[int, float, list[int]]:
        """Record a new child: (its slot, the back-off it must sleep, the pids of children that died)."""
        starts, early, in_a_row, _ = self._header()
        dead = []
        for i, other, _started, healthy, _ in self._slots():
            if other and other != pid and not _alive(other):
                dead.append(other)
                if not healthy:
                    early += 1
                    in_a_row += 1
                self._set_slot(i, 0, 0.0, 0, 0)
        backoff = 0.0 if in_a_row == 0 else min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (in_a_row - 1))
        slot = next((i for i, other, *_ in self._slots() if other in (0, pid)), SLOTS - 1)
        self._set_slot(slot, pid, time.time(), 0, 1)
        self._set_header([starts + 1, early, in_a_row, backoff])
        return slot, backoff, dead

    def healthy(self, slot: int, pid: int) -> None:
        """The child in ``slot`` lived long enough: the run of early deaths is over."""
        _, other, started, _, reserved = next(s for s in self._slots() if s[0] == slot)
        if other != pid:
            return
        self._set_slot(slot, pid, started, 1, reserved)
        h = self._header()
        h[2], h[3] = 0, 0.0
        self._set_header(h)

    def without_metric_files(self, slot: int, pid: int) -> None:
        """The child in ``slot`` runs without its metric files (samples dropped, jobs go on)."""
        _, other, started, healthy, _ = next(s for s in self._slots() if s[0] == slot)
        if other == pid:
            self._set_slot(slot, pid, started, healthy, 0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: created when the worker module is imported, in the parent (``portrait worker gpu``), before forks
BOOK = ChildBook()


def on_child_start(sleep: bool = True) -> int:
    """Register this child, clean up after dead ones, back off after early deaths; returns the slot."""
    pid = os.getpid()
    slot, backoff, dead = BOOK.register(pid)
    for other in dead:
        _drop_dead_samples(other)
    if backoff:
        log.error("worker child %d: %d children in a row died before they were healthy (%d early deaths in "
                  "all); backing off %.0f s before loading the model", pid, BOOK.in_a_row, BOOK.early_deaths,
                  backoff)
        if sleep:
            time.sleep(backoff)
    timer = threading.Timer(HEALTHY_AFTER_S, BOOK.healthy, (slot, pid))
    timer.daemon = True
    timer.start()
    return slot


def _drop_dead_samples(pid: int) -> None:
    """A child that died without its shutdown signal (SIGKILL, SIGBUS) leaves live gauges behind."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        with contextlib.suppress(OSError):
            multiprocess.mark_process_dead(pid)


class BookCollector:
    """``portrait_worker_child_*`` from the book, for the parent's exporter (read at scrape time)."""

    def collect(self):  # noqa: ANN201 - prometheus_client's Collector protocol
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        yield CounterMetricFamily("portrait_worker_child_starts", "Worker children started (model loads).",
                                  value=BOOK.starts)
        yield CounterMetricFamily("portrait_worker_child_early_deaths",
                                  f"Worker children that died within {HEALTHY_AFTER_S:.0f} s of their start.",
                                  value=BOOK.early_deaths)
        yield GaugeMetricFamily("portrait_worker_child_backoff_seconds",
                                "Back-off the last child slept before loading the model (0 = healthy).",
                                value=BOOK.backoff_s)
        yield GaugeMetricFamily("portrait_worker_children_without_metrics",
                                "Living children that could not reserve their metric files (full disk): their "
                                "samples are dropped, their jobs go on.", value=BOOK.without_metrics)
