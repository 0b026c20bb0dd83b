"""``python -m csmlab.methods.csm --scale full`` end to end on the CUB fixture (official layouts, tiny overrides).

The full recipe's data path: CUB read lazily through a DataLoader with a worker, CMR's SfM
mean bird as the template, checkpoints, and a run killed mid-way that resumes to the same result.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fixtures_real import CMR_S, build_cub_data_root

from csmlab.data.real.cub import SFM_TO_CANONICAL
from csmlab.methods.csm.template import hull_template, sfm_template

ROOT = Path(__file__).resolve().parents[1]
TINY = ["device=cpu", "resolution=32", "iters=16", "batch_size=2", "n_hypotheses=2", "unet_base=4", "cam_base=4",
        "unet_depth=2", "cam_down=2", "uv_grid=[8,16]", "pose_warmup_iters=2", "n_pairs=10", "loader_workers=1",
        "eval_every=0", "camera_encoder=convs", "encoder_weights=null",   # no download: a small encoder from scratch
        "val_split=train"]      # the fixture's val split has one image; transfer needs two


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return build_cub_data_root(tmp_path_factory.mktemp("data"))


def _command(out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "csmlab.methods.csm", "--scale", "full", "--no-progress", "--threads", "1",
           "--out", str(out), "--workdir", str(out / "work")]
    for item in TINY:
        cmd += ["--set", item]
    return cmd


def _env(data_root: Path) -> dict:
    return {**os.environ, "CSMLAB_DATA": str(data_root), "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}


def test_the_sfm_template_is_a_sphere_pushed_onto_the_mean_shapes_hull(data_root):
    t = sfm_template(data_root, subdiv=2)
    S = (SFM_TO_CANONICAL @ torch.as_tensor(CMR_S)).T.float()
    from scipy.spatial import ConvexHull

    eq = torch.as_tensor(ConvexHull(S.double().numpy()).equations)
    signed = t.template.verts.double() @ eq[:, :3].T + eq[:, 3]               # <= 0 inside each face plane
    assert signed.max() < 1e-5, "every vertex lies inside or on the hull"
    assert signed.max(1).values.abs().max() < 1e-5, "and on it: each vertex touches one face plane"
    mirrored = t.template.verts * torch.tensor([-1.0, 1.0, 1.0])
    assert (t.template.verts[t.vertex_flip] - mirrored).abs().max() < 1e-4      # the mean bird is symmetric
    assert t.template_uv.shape == (t.template.num_verts, 2)
    with pytest.raises(ValueError, match="points must be"):
        hull_template(torch.zeros(3, 3))


def test_full_scale_runs_on_cub_and_resumes_after_a_kill(data_root, tmp_path):
    env = _env(data_root)
    straight = tmp_path / "straight"
    done = subprocess.run(_command(straight), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "data: 2 train / 2 held-out images" in done.stdout

    killed = tmp_path / "killed"
    def checkpoints():   # the run's work folder is named after its seed and overrides (csmlab.train.run_name)
        return sorted((killed / "work").glob("*/train.pt"))

    proc = subprocess.Popen(_command(killed), env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 300
    while not checkpoints() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before a checkpoint was seen: nothing to kill"
    os.killpg(proc.pid, signal.SIGKILL)          # the run and its loader worker, mid-way
    proc.wait()
    assert len(checkpoints()) == 1, "no checkpoint was written before the kill"
    checkpoint = checkpoints()[0]
    reached = int(torch.load(checkpoint, weights_only=False)["iteration"])
    assert 0 < reached < 16, f"the kill came too late to test a resume (checkpoint at iteration {reached})"
    assert not (killed / "csm_full.json").exists()

    resumed = subprocess.run(_command(killed), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = json.loads((straight / "csm_full.json").read_text())
    b = json.loads((killed / "csm_full.json").read_text())
    assert b["metrics"]["iters"] == 16
    for key in ("transfer_pck", "transfer_apk", "mask_iou", "camera_error_deg"):
        assert b["metrics"][key] == pytest.approx(a["metrics"][key], abs=1e-5), key
    assert b["final_losses"] == pytest.approx(a["final_losses"], rel=1e-5, nan_ok=True)
    assert b["cfg"]["template"] == "cub_sfm" and b["cfg"]["loader_workers"] == 1
    assert str(tmp_path) not in b["command"], "the stored command holds no machine-local path"


def test_the_stored_command_has_no_machine_local_paths(tmp_path, monkeypatch):
    from csmlab.methods.csm.__main__ import stored_command

    monkeypatch.chdir(tmp_path)
    cmd = stored_command(["--scale", "medium", "--out", "/elsewhere/run42", f"--workdir={tmp_path / 'work'}",
                          "--set", "eval_every=1000"])
    assert cmd == "python -m csmlab.methods.csm --scale medium --out <out> --workdir=work --set eval_every=1000"
