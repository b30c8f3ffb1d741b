"""The GPU worker's layout (worker/layout.py): how many children ``portrait worker gpu`` starts, the
device and threads each one takes, from the settings and what the host has."""

from __future__ import annotations

import pytest

from portrait import cli
from portrait.settings import Settings
from worker import layout


def _settings(**kw: object) -> Settings:
    return Settings.model_construct(**{"device": "auto", "gpu_worker_children": 0, "worker_child_threads": 0,
                                       **kw})


@pytest.mark.parametrize(("gpus", "cores", "children", "threads"), [
    (0, 2, 1, 2),    # CPU: one child, the pipeline's threads use every core
    (1, 16, 8, 2),   # an H200 box: the cores fed to one GPU, two threads a child
    (8, 64, 32, 2),  # eight GPUs share the cores: four children each
    (4, 4, 4, 1),    # fewer cores than 2 a GPU: still one child per GPU
])
def test_auto_layout_shares_the_cores_between_children(gpus: int, cores: int, children: int, threads: int) -> None:
    got = layout.plan(_settings(), gpus, cores)
    assert (got.children, got.threads_per_child) == (children, threads)


def test_settings_and_the_command_line_override_the_auto_layout() -> None:
    assert layout.plan(_settings(gpu_worker_children=3), 2, 16).children == 6  # per GPU
    assert layout.plan(_settings(gpu_worker_children=3), 0, 16).children == 3
    assert layout.plan(_settings(), 1, 16, children=4) == layout.Layout(4, 1, 4)  # -c 4
    assert layout.plan(_settings(worker_child_threads=1), 1, 16).threads_per_child == 1


def test_children_take_the_gpus_in_turn_unless_one_is_named() -> None:
    assert [layout.child_device("cuda", slot, 2) for slot in range(4)] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert layout.child_device("auto", 3, 4) == "cuda:3"
    assert layout.child_device("cuda:1", 0, 2) == "cuda:1"  # pinned
    assert layout.child_device("cuda", 5, 1) == "cuda"
    assert layout.child_device("cpu", 1, 0) == "cpu"


def test_portrait_worker_gpu_starts_the_layouts_children(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("portrait.settings.get_settings", lambda: _settings())
    monkeypatch.setattr(layout, "visible_gpus", lambda device: 2)
    monkeypatch.setattr(layout, "host_cores", lambda: 16)
    argv = cli.celery_argv(cli.parse_args(["worker", "gpu"]))
    assert argv[argv.index("-c") + 1] == "8"
    argv = cli.celery_argv(cli.parse_args(["worker", "gpu", "-c", "3"]))
    assert argv[argv.index("-c") + 1] == "3"
    assert cli.gpu_layout(_settings(), 3).threads_per_child == 5


def test_a_child_takes_its_threads_and_device(monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2
    import torch

    before = torch.get_num_threads(), cv2.getNumThreads()
    monkeypatch.setattr(layout, "visible_gpus", lambda device: 2)
    try:
        assert layout.place_child(_settings(device="cuda", worker_child_threads=1), 3) == "cuda:1"
        assert (torch.get_num_threads(), cv2.getNumThreads()) == (1, 1)
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])
