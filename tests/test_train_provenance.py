"""A resumed run is the same run: provenance in the checkpoint, --restart, and no temp left by a kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from csmlab.train import ResumeMismatch, data_fingerprint, load_checkpoint, run_name, save_checkpoint, train
from tests.test_train import _problem

CFG = {"lr": 0.05, "seed": 0, "w": {"cycle": 1.0, "mask": 2.0}}
DATA = {"x": torch.arange(12.0).reshape(3, 4)}


def _run(ckpt, n_iters, cfg=CFG, data=DATA, **kw):
    model, opt, loss_fn, batch_fn = _problem(seed=123)  # a fresh process would start from another RNG state
    prov = {"cfg": cfg, "data": data_fingerprint(data)}
    return model, train(model, opt, loss_fn, batch_fn, n_iters, checkpoint_path=ckpt, checkpoint_every=4,
                        progress=False, provenance=prov, **kw)


def test_a_resumed_run_reproduces_the_uninterrupted_loss_curve_exactly(tmp_path):
    model_full, full = _run(tmp_path / "full.pt", 20)
    _run(tmp_path / "part.pt", 9)
    model_resumed, resumed = _run(tmp_path / "part.pt", 20)
    assert resumed.steps("total") == list(range(20))
    for name in ("total", "fit", "l2", "weight_norm"):
        assert resumed[name] == full[name]  # bit for bit, not approximately
    assert torch.equal(model_resumed.weight, model_full.weight)


def test_a_different_config_refuses_to_resume_and_names_the_keys(tmp_path):
    ckpt = tmp_path / "run.pt"
    _run(ckpt, 8)
    other = {**CFG, "lr": 0.1, "w": {"cycle": 0, "mask": 2.0}, "extra": 1}
    with pytest.raises(ResumeMismatch, match=r"3 key\(s\): cfg\.extra \(only in the new run\); cfg\.lr: 0\.05 in the "
                                             r"checkpoint, 0\.1 now; cfg\.w\.cycle: 1\.0 in the checkpoint, 0 now"):
        _run(ckpt, 16, cfg=other)
    assert load_checkpoint(ckpt)["iteration"] == 8  # the refused run wrote nothing


def test_different_data_refuses_to_resume(tmp_path):
    ckpt = tmp_path / "run.pt"
    _run(ckpt, 8)
    with pytest.raises(ResumeMismatch, match=r"data\.sha256"):
        _run(ckpt, 16, data={"x": DATA["x"] + 1})


def test_a_checkpoint_without_provenance_refuses(tmp_path):
    ckpt = tmp_path / "old.pt"
    model, opt, loss_fn, batch_fn = _problem()
    train(model, opt, loss_fn, batch_fn, 4, checkpoint_path=ckpt, progress=False)  # no provenance given
    with pytest.raises(ResumeMismatch, match="records no config/data provenance"):
        _run(ckpt, 8)


def test_restart_starts_over(tmp_path):
    ckpt = tmp_path / "run.pt"
    _run(ckpt, 8)
    other = {**CFG, "lr": 0.1}
    _, fresh = _run(tmp_path / "fresh.pt", 12, cfg=other)
    _, restarted = _run(ckpt, 12, cfg=other, restart=True)
    assert restarted.steps("total") == list(range(12))
    assert restarted["total"] == fresh["total"]
    state = load_checkpoint(ckpt)
    assert state["iteration"] == 12 and state["provenance"]["cfg"]["lr"] == 0.1


def test_run_names_hold_the_seed_and_the_overrides():
    assert run_name("csm_smoke", 1, {"seed": 1, "w_cycle": 0}) == "csm_smoke_seed1_w_cycle=0"
    assert run_name("csm_smoke", 0, {}) == "csm_smoke_seed0"
    assert run_name("x", 0, {"a": [1, 2], "b": "p/q"}) == "x_seed0_a=-1-2-_b=p-q"
    long = run_name("x", 0, {f"k{i}": i for i in range(40)})
    assert len(long) <= 120 and long != run_name("x", 0, {f"k{i}": i + 1 for i in range(40)})


_KILLED_WRITER = textwrap.dedent("""
    import sys, time, torch
    from csmlab.train import save_checkpoint
    real_save = torch.save

    def slow_save(obj, f):
        f.write(b"x" * 100000)   # part of the checkpoint is on disk under the temp name ...
        f.flush()
        print("writing", flush=True)
        time.sleep(60)           # ... when the process is killed

    torch.save = slow_save
    save_checkpoint(sys.argv[1], {"iteration": 99})
""")


def test_a_kill_9_inside_a_checkpoint_write_leaves_no_temp_file_after_the_next_start(tmp_path):
    ckpt = tmp_path / "run.pt"
    _run(ckpt, 4)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(ckpt)], stdout=subprocess.PIPE, text=True,
                             env=env)
    try:
        assert child.stdout.readline().strip() == "writing"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    temps = [p.name for p in tmp_path.iterdir() if p.name != "run.pt"]
    assert len(temps) == 1 and temps[0].startswith(".run.pt.") and temps[0].endswith(".csmlab-tmp"), temps
    assert load_checkpoint(ckpt)["iteration"] == 4  # the final name still holds the last good checkpoint
    _, hist = _run(ckpt, 8)  # the next start
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]
    assert hist.steps("total") == list(range(8))


def test_a_live_writers_temp_file_is_not_swept(tmp_path):
    from csmlab.io import sweep_stale_temps, temp_path

    mine = temp_path(tmp_path / "a.pt")
    mine.write_bytes(b"in progress")
    time.sleep(0.01)
    assert sweep_stale_temps(tmp_path) == [] and mine.exists()
    save_checkpoint(tmp_path / "b.pt", {"x": 1})
    assert mine.exists()
