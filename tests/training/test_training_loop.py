"""The training loop on CPU with the tiny config: it learns, it resumes exactly, checkpoints load."""

from __future__ import annotations

from pathlib import Path

import torch
from conftest import WEIGHTS_DIR

from devstack import wait_until
from restoration.generator import Generator, load_generator
from restoration.training import losses as L
from restoration.training.checkpoint import SHARD_BYTES, load_checkpoint, restore_models, save_checkpoint
from restoration.training.config import RunConfig, generator_config, load_config, preset_from_config
from restoration.training.data import PairDataset, StepSampler, read_pack
from restoration.training.loop import Budget, Placement, Trainer, load_resume, train

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "restoration" / "training" / "configs" / "tiny.yaml"
#: training/LOG.md's table, empty: what scripts/log_chunk.py appends its rows to
LOG_TABLE = ("| date | chunk | stage (config) | iterations | images seen | CPU min | GPU min "
             "| val PSNR / SSIM / id cos / NIQE | notes |\n|---|---|---|---|---|---|---|---|---|\n")


def _cfg(pack: Path, train: dict | None = None, **sections: dict) -> RunConfig:
    return load_config(TINY, {"data": {"pack": str(pack), "batch_size": 8, "workers": 0, "val_faces": 2},
                              "train": {"log_every": 5, "val_every": 0, **(train or {})}, **sections})


def _weights(ckpt: Path, name: str = "G") -> dict[str, torch.Tensor]:
    _, t = load_checkpoint(ckpt)
    return {k: v for k, v in t.items() if k.startswith(name + "/")}


def _fixed_batch_loss(cfg: RunConfig, pack: Path, state: dict[str, torch.Tensor] | None) -> float:
    torch.manual_seed(0)
    g = Generator(generator_config(cfg))
    if state is not None:
        g.load_state_dict({k.split("/", 1)[1]: v.float() for k, v in state.items()})
    ds = PairDataset(read_pack(pack, "train"), 64, preset_from_config(cfg.data.preset), seed=99)
    keys = next(iter(StepSampler(len(ds), 16, seed=99)))
    items = [ds[k] for k in keys]
    lq, gt, mask = (torch.stack([s[k] for s in items]) for k in ("lq", "gt", "mask"))
    with torch.no_grad():
        fake = g(lq, mask, noise_mode="fixed")
        return float(L.l1(fake, gt) + 0.5 * L.ms_ssim_loss(fake, gt))


#: a task a few dozen CPU steps can learn (denoising); the full "mixed" task needs GPU hours
NOISE = {"steps": [{"p": 1.0, "options": [["gaussian_noise", 15, 30]]}]}


def test_tiny_training_reduces_loss(mini_pack: Path, tmp_path: Path) -> None:
    """The tiny generator's start is far from the target, so a few steps show whether the loop optimises."""
    cfg = _cfg(mini_pack, {"max_iters": 30}, optim={"lr_g": 0.01})
    cfg.data.preset = NOISE
    train(cfg, tmp_path / "run")
    before = _fixed_batch_loss(cfg, mini_pack, None)
    after = _fixed_batch_loss(cfg, mini_pack, _weights(tmp_path / "run" / "ckpt"))
    assert after < 0.92 * before, (before, after)
    g, version = load_generator(tmp_path / "run" / "g_ema.safetensors")
    assert version == "tiny-it30" and g.config.size == 64


def test_resume_is_exact(mini_pack: Path, tmp_path: Path) -> None:
    """6 steps straight == 3 steps + resume + 3 steps, with the adversarial, R1 and FM terms on."""
    cfg = _cfg(mini_pack, loss={"adv": 0.1, "fm": 0.5, "r1_every": 2, "adv_start": 1})
    train(cfg, tmp_path / "straight", max_iters=6)
    train(cfg, tmp_path / "half", max_iters=3)
    train(cfg, tmp_path / "resumed", resume=tmp_path / "half" / "ckpt", max_iters=6)
    for name in ("G", "G_ema", "D"):
        a, b = _weights(tmp_path / "straight" / "ckpt", name), _weights(tmp_path / "resumed" / "ckpt", name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), k
    log = (tmp_path / "resumed" / "ckpt" / "log.jsonl").read_text().splitlines()
    assert len(log) >= 2  # the carried log continues


def test_compact_checkpoint_continues_across_sessions(mini_pack: Path, tmp_path: Path) -> None:
    """The committed form (G-EMA + D, fp16, no optimiser) resumes at its iteration with G = G-EMA, and is
    much smaller than the carried checkpoint."""
    from restoration.training.checkpoint import compact_checkpoint

    cfg = _cfg(mini_pack, loss={"adv": 0.1, "adv_start": 0}, checkpoint={"fp16": True})
    train(cfg, tmp_path / "s1", max_iters=4)
    compact_checkpoint(tmp_path / "s1" / "ckpt", tmp_path / "resume")
    state, tensors = load_checkpoint(tmp_path / "resume")
    assert state["iteration"] == 4 and not state["opt_param_groups"]
    assert {k.split("/")[0] for k in tensors} == {"G_ema", "D"}
    size = sum(f.stat().st_size for f in (tmp_path / "resume").glob("shard-*"))
    full = sum(f.stat().st_size for f in (tmp_path / "s1" / "ckpt").glob("shard-*"))
    assert size < 0.5 * full

    r = train(cfg, tmp_path / "s2", resume=tmp_path / "resume", max_iters=5)
    assert r["iter"] == 5  # one more step, not five from scratch
    log = (tmp_path / "s2" / "ckpt" / "log.jsonl").read_text().splitlines()
    assert len(log) > len((tmp_path / "s1" / "ckpt" / "log.jsonl").read_text().splitlines())
    g = Generator(generator_config(cfg))
    restore_models({"G": g}, None, state, tensors)  # no G in the compact form: it comes from G-EMA
    assert all(torch.equal(v.half(), tensors[f"G_ema/{k}"]) for k, v in g.state_dict().items())


def test_fp16_checkpoint_is_sharded_and_loads(tmp_path: Path) -> None:
    """Every file must come back from a GPU session (≤ 16 MiB each): 4 × 4.5 MB fp16 weights + 2 × 18 MB
    bf16 Adam moments = 54 MB -> at least 4 shards of ≤ 15 MiB."""
    big = torch.nn.Sequential(*(torch.nn.Linear(1500, 1500) for _ in range(4)))
    opt = torch.optim.Adam(big.parameters())
    big(torch.randn(2, 1500)).sum().backward()
    opt.step()
    save_checkpoint(tmp_path / "ck", {"iteration": 1}, {"M": big}, {"opt_M": opt}, fp16=True)
    shards = sorted((tmp_path / "ck").glob("shard-*.safetensors"))
    assert len(shards) >= 4 and all(p.stat().st_size <= SHARD_BYTES + 2**16 for p in shards)
    state, tensors = load_checkpoint(tmp_path / "ck")
    assert state["iteration"] == 1 and tensors["M/0.weight"].dtype == torch.float16
    assert tensors["opt_M/0/exp_avg_sq"].dtype == torch.bfloat16
    fresh = torch.nn.Sequential(*(torch.nn.Linear(1500, 1500) for _ in range(4)))
    fresh_opt = torch.optim.Adam(fresh.parameters())
    assert restore_models({"M": fresh}, {"opt_M": fresh_opt}, state, tensors)
    assert torch.allclose(fresh[0].weight, big[0].weight, atol=1e-3)


def test_time_budget_stops_and_saves(mini_pack: Path, tmp_path: Path) -> None:
    import restoration.training.loop as T

    cfg = _cfg(mini_pack, {"max_iters": 10**6})
    T.T_START = __import__("time").monotonic()
    r = train(cfg, tmp_path / "budget", max_minutes=0.25)
    state, _ = load_checkpoint(tmp_path / "budget" / "ckpt")
    assert 0 < state["iteration"] == r["iter"] < 10**6
    assert __import__("time").monotonic() - T.T_START < 15


def test_the_budget_stops_early_enough_to_save(monkeypatch) -> None:
    """A step starts only with room for two more steps, two saves (2 s until one is timed) and 3 s to spare."""
    import time

    import restoration.training.loop as T

    monkeypatch.setattr(T, "T_START", time.monotonic())
    budget = Budget(max_iters=100, max_minutes=10 / 60, ckpt_minutes=100)  # 10 s from "process start"
    assert budget.go_on(0) and not budget.go_on(100)
    budget.step_took(1.0)  # 2 · 1 + 2 · 2 + 3 = 9 s ≤ 10 s
    assert budget.go_on(1)
    budget.step_took(10.0)  # running mean 0.9 · 1 + 0.1 · 10 = 1.9 s: 3.8 + 4 + 3 > 10 s
    assert not budget.go_on(2)
    assert Budget(max_iters=100, max_minutes=None, ckpt_minutes=100).go_on(99)  # no deadline


def test_the_budget_stops_at_a_signal_and_gives_the_handler_back() -> None:
    import os
    import signal

    hits: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda *_: hits.append(1))
    try:
        budget = Budget(max_iters=100, max_minutes=None, ckpt_minutes=100)
        with budget.catching_signals():
            assert budget.go_on(0)
            os.kill(os.getpid(), signal.SIGTERM)
            assert not budget.go_on(0)
        assert hits == []  # the budget took it, not the caller
        os.kill(os.getpid(), signal.SIGTERM)
        assert hits == [1]  # and the caller's handler is back
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_load_resume_continues_a_run_and_init_takes_the_weights_only(mini_pack: Path, tmp_path: Path) -> None:
    """``--resume``: weights, Adam moments, iteration, training time and the log go on; ``--init``: the
    weights alone, at iteration 0, with a new log."""
    cfg = _cfg(mini_pack)
    train(cfg, tmp_path / "s1", max_iters=3)
    ckpt = tmp_path / "s1" / "ckpt"
    cpu = Placement(torch.device("cpu"))
    resumed = Trainer(cfg, tmp_path / "resumed", cpu, WEIGHTS_DIR)
    it, seconds = load_resume(resumed, resume=ckpt)
    assert it == 3 and seconds > 0 and resumed.opts["opt_G"].state
    assert (tmp_path / "resumed" / "ckpt" / "log.jsonl").read_text() == (ckpt / "log.jsonl").read_text()
    started = Trainer(cfg, tmp_path / "stage2", cpu, WEIGHTS_DIR)
    assert load_resume(started, init=ckpt) == (0, 0.0)
    assert not started.opts["opt_G"].state and not (tmp_path / "stage2" / "ckpt").exists()
    saved = _weights(ckpt)
    for trainer in (resumed, started):
        assert all(torch.equal(v, saved[f"G/{k}"]) for k, v in trainer.models["G"].state_dict().items())


def test_the_committed_checkpoint_resumes(tmp_path: Path) -> None:
    """training/resume (compact: G-EMA + D in fp16, no optimiser), written by earlier code, loads into
    today's models at its iteration, G from G-EMA and Adam from zero, and its log goes on."""
    import json

    src = ROOT / "training" / "resume"
    state = json.loads((src / "state.json").read_text())
    cfg = load_config(None, state["config"])
    cfg.train.val_every = 0  # no validator: it would read the run's pack
    trainer = Trainer(cfg, tmp_path / "run", Placement(torch.device("cpu")), WEIGHTS_DIR)
    assert load_resume(trainer, resume=src) == (state["iteration"], state["train_seconds"])
    ema = _weights(src, "G_ema")
    for m in (trainer.models["G"], trainer.g_ema):
        assert all(torch.equal(v.half(), ema[f"G_ema/{k}"]) for k, v in m.state_dict().items())
    assert not trainer.opts["opt_G"].state
    assert (tmp_path / "run" / "ckpt" / "log.jsonl").read_bytes() == (src / "log.jsonl").read_bytes()


def test_chunk_command_resumes_from_the_committed_state_and_logs_a_row(mini_pack: Path, tmp_path: Path) -> None:
    """`make train`'s script twice: the second chunk goes on from the first one's compact checkpoint (as a
    new session would, with no out/ folder), and each appends its row to the log."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    log_md = tmp_path / "LOG.md"
    log_md.write_text("# log\n\n" + LOG_TABLE + "\n## more\n")
    resume = tmp_path / "resume"
    for iters in (4, 8):
        env = dict(os.environ, CONFIG="restoration/training/configs/tiny.yaml", PACK=str(mini_pack),
                   OUT=str(tmp_path / "out"), RESUME_DIR=str(resume), LOG_MD=str(log_md), ITERS=str(iters),
                   MINUTES="5", PYTHON=sys.executable)
        r = subprocess.run(["bash", "scripts/train_chunk.sh"], cwd=root, env=env, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        assert json.loads((resume / "state.json").read_text())["iteration"] == iters
        shutil.rmtree(tmp_path / "out")  # the next session has only what was committed
    rows = [x for x in log_md.read_text().splitlines() if x.startswith("| 20")]
    assert len(rows) == 2
    assert "| 1 |" in rows[0] and "0 → 4" in rows[0] and "| 2 |" in rows[1] and "4 → 8" in rows[1]
    assert (resume / "samples.jpg").is_file() and not any(resume.glob("*.tmp"))


def test_a_chunk_killed_midway_saves_where_it_stopped(mini_pack: Path, tmp_path: Path) -> None:
    """`kill` of the chunk's process group (what Ctrl-C, `timeout` or a closing session do) mid-run: the
    trainer finishes its step and saves, the data-loading worker does not die under it, and the chunk
    still writes its compact checkpoint and its LOG row. No periodic save happens in this run, so the
    checkpoint can only come from the signal."""
    import json
    import os
    import signal
    import subprocess
    import sys

    import yaml

    cfg = yaml.safe_load(TINY.read_text())
    cfg["data"].update(workers=1, val_faces=2)
    cfg["train"].update(max_iters=10**6, log_every=2, val_every=0, ckpt_minutes=100)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    log_md = tmp_path / "LOG.md"
    log_md.write_text(LOG_TABLE)
    out, resume = tmp_path / "out", tmp_path / "resume"
    env = dict(os.environ, CONFIG=str(tmp_path / "cfg.yaml"), PACK=str(mini_pack), OUT=str(out),
               RESUME_DIR=str(resume), LOG_MD=str(log_md), MINUTES="5", PYTHON=sys.executable)
    p = subprocess.Popen(["bash", "scripts/train_chunk.sh"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        def training() -> bool:
            assert p.poll() is None, "the chunk ended before it trained"
            return (log := out / "ckpt" / "log.jsonl").is_file() and '"iter": 4' in log.read_text()

        wait_until(training, 120, what="the chunk to train 4 iterations")
        os.killpg(p.pid, signal.SIGTERM)
        text, _ = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert "Traceback" not in text, text[-3000:]
    iteration = json.loads((resume / "state.json").read_text())["iteration"]
    assert iteration >= 4, text[-2000:]
    assert f"0 → {iteration}" in log_md.read_text()


def test_validation_can_score_the_masks_the_service_parses(mini_pack: Path) -> None:
    """``data.val_mask: degraded`` conditions validation on the landmark parser's masks of the degraded
    faces (what a served face gets), ``none`` on no mask, ``clean`` on the faces' own."""
    from restoration.generator import from_model, generator_mask
    from restoration.training.validation import Validator, _parse_degraded

    def val(source: str) -> Validator:
        cfg = load_config(TINY, {"data": {"pack": str(mini_pack), "val_faces": 2, "val_mask": source}})
        return Validator(cfg, torch.device("cpu"), WEIGHTS_DIR)

    clean, parsed, none = val("clean"), val("degraded"), val("none")
    assert none.mask.abs().sum() == 0 and clean.mask.abs().sum() > 0
    expected = torch.stack([generator_mask(lab)[0] for lab in _parse_degraded(from_model(parsed.lq), WEIGHTS_DIR)])
    assert parsed.mask.abs().sum() > 0 and torch.equal(parsed.mask, expected)
