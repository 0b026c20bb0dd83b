"""benchmarks/nvdiffrast_samples.py's pieces, on a stand-in checkout (nothing fetched, nothing run)."""

import importlib.util
from pathlib import Path

import numpy as np

_SPEC = importlib.util.spec_from_file_location(
    "nvdiffrast_samples", Path(__file__).resolve().parents[1] / "benchmarks" / "nvdiffrast_samples.py")
tool = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(tool)
GENERATED_EARTH = tool.generated_earth

SNIPPET = """import nvdiffrast.torch as dr
x = torch.ones(3, device='cuda')
y = torch.from_numpy(a).cuda()
glctx = dr.RasterizeGLContext()
note = 'cuda is fast'
"""


def test_patch_changes_only_the_import_and_device_strings():
    out, counts = tool.patch(SNIPPET)
    assert out.splitlines() == ["import csmlab.dr as dr", "x = torch.ones(3, device='cpu')",
                                "y = torch.from_numpy(a).cpu()", "glctx = dr.RasterizeGLContext()",
                                "note = 'cuda is fast'"]
    assert counts == {"import csmlab.dr as dr": 1, "'cpu'": 1, ".cpu()": 1}


def test_source_skips_lfs_pointers_and_stages_a_generated_earth(tmp_path, monkeypatch):
    src = tmp_path / "nvdiffrast"
    (src / "samples" / "torch").mkdir(parents=True)
    (src / "samples" / "data").mkdir()
    for name in (*tool.SAMPLES, "util"):
        (src / "samples" / "torch" / f"{name}.py").write_text(SNIPPET)
    (src / "samples" / "data" / "earth.npz").write_text("version https://git-lfs.github.com/spec/v1\noid x\n")
    source = tool.Source(str(src))
    assert source.read("samples/data/earth.npz") is None and source.read("samples/torch/cube.py")
    monkeypatch.setattr(tool, "generated_earth", lambda: GENERATED_EARTH(n=2, tile=8))
    work = tmp_path / "work"
    work.mkdir()
    notes = tool.stage(source, work / "w")
    assert "generated" in notes["earth"]
    assert "import csmlab.dr as dr" in (work / "w" / "samples" / "torch" / "cube.py").read_text()
    with np.load(work / "w" / "samples" / "data" / "earth.npz") as f:
        assert [v.shape[-1] for v in f.values()] == [3, 3, 3, 2, 3]


def test_generated_earth_has_the_layout_earth_py_assumes():
    pos_idx, pos, uv_idx, uv, tex = GENERATED_EARTH(n=3, tile=8)
    assert tex.shape == (24, 32, 3) and tex.dtype == np.uint8 and tex.std() > 0
    assert pos_idx.dtype == np.int32 and pos_idx.max() < len(pos) and uv_idx.max() < len(uv)
    assert np.allclose(np.linalg.norm(pos, axis=1), 1.0, atol=1e-6)
    # Every triangle lies in one tile of the 4 x 3 atlas, and only tiles of the cross are used.
    tiles = np.floor(uv[uv_idx].mean(1) * [4, 3]).astype(int)
    assert {tuple(t) for t in tiles} == {(0, 1), (1, 1), (2, 1), (3, 1), (1, 0), (1, 2)}


def test_parse_reads_each_samples_last_log_line(tmp_path):
    source = tool.Source.__new__(tool.Source)
    cube = "iter=0,err=0.5\niter=10,err=0.25\n"
    assert tool.parse("cube", cube, tmp_path, source) == (10, "err 0.25 (iter 0: 0.5)")
    pose = "rep=0,iter=0,err=90.0,err_best=1\nrep=0,iter=100,err=1.5,err_best=1\nrep=1,iter=100,err=0.1,err_best=0\n"
    assert tool.parse("pose", pose, tmp_path, source) == (100, "err 1.500, 0.100 deg; err_best 1.000, 0.000 deg")
    earth = "iter=0,loss=0.3,psnr=10.0\niter=10,loss=0.2,psnr=14.0\n"
    assert tool.parse("earth", earth, tmp_path, source)[1].startswith("tex rmse 0.2000, psnr 14.00 dB")
