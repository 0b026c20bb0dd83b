"""Run nvdiffrast's own PyTorch samples on ``csmlab.dr`` on CPU, changed only where they name the device.

Usage (from the repository root)::

    python benchmarks/nvdiffrast_samples.py /path/to/nvdiffrast          # a checkout
    python benchmarks/nvdiffrast_samples.py /work/.mirror/NVlabs+nvdiffrast/repo   # a bare git dir
    python benchmarks/nvdiffrast_samples.py SRC --samples cube pose --json out.json

This is a command-line tool, not a timed test (``tests/test_dr_samples.py`` holds our own
fetch-free copies of the samples' call patterns). For each sample it:

1. copies ``samples/torch/<name>.py``, ``util.py`` and ``samples/data/*.npz`` into a temporary
   directory with the same layout (the samples find their data at ``../data``);
2. changes only these strings, and counts each change: ``import nvdiffrast.torch as dr`` ->
   ``import csmlab.dr as dr``; ``'cuda'`` -> ``'cpu'``; ``.cuda()`` -> ``.cpu()``. The contexts
   stay as they are: csmlab.dr's ``RasterizeCudaContext()`` (and nvdiffrast 0.3's
   ``RasterizeGLContext()``) run on CPU where CUDA is absent;
3. runs it in a subprocess (``nice -n 10``, one torch thread, numpy and torch seeded through a
   runner that calls ``runpy``: the sample's code is not touched) with the flags in ``PLANS``;
4. parses the sample's own printed error and prints a table.

Flags, and what the samples have no flag for (run as they are):

- ``triangle.py``: no flags (256x256). Its error is the difference of ``tri.png`` from the
  expected GPU output image in nvdiffrast's docs (``docs/img/tri.png``), where the source has it.
- ``cube.py``: ``--resolution 16 --max-iter 1000`` (the docs' example resolution; 1000 is the
  sample's default). Error: its ``err`` (mean vertex distance from the unit cube's corners).
- ``pose.py``: ``--max-iter 1000 --repeats 3``. Resolution 256 is fixed (no flag). Error: the
  angle between fitted and target pose (``err``) and between the best pose found and the
  target (``err_best``) at the last logged iteration of each repeat, in degrees.
- ``envphong.py``: ``--max-iter 100`` (default 5000). Resolution 1024 is fixed (no flag); it logs
  every 100 iterations, so 100 is the fewest that logs a second line. Error: its
  ``phong_rgb_rmse``, ``phong_exp_rel_err`` and ``img_rmse`` (a mean of squared errors).
- ``earth.py``: ``--mip --max-iter 20`` (default 10000). Resolutions 512 and a 2048 reference
  are fixed (no flag). Error: its texture RMSE and PSNR (averaged over the last 10 iterations).
  ``earth.npz`` is not in every mirror (git reports it missing, or it is an LFS pointer); then a
  generated one of the same layout is used: a cube-sphere whose six faces map to the tiles of a
  4x3 atlas of 512x512 maps (the layout the sample's texture mask and ``max_mip_level=9`` assume),
  with a procedural texture.

``--quick`` divides every iteration count by 10 (a smoke run). nvdiffrast's docs and README
state no numeric result for any sample, so the table's GPU column says so, except triangle's
reference image. Wall times on a shared machine are inflated by its load (printed with them).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLES = ("triangle", "cube", "pose", "envphong", "earth")
GPU_FIGURE_NONE = "not stated (docs/README give no number)"

# sample -> (flags, iteration count those flags give)
PLANS = {
    "triangle": ([], 0),
    "cube": (["--resolution", "16", "--max-iter", "1000"], 1000),
    "pose": (["--max-iter", "1000", "--repeats", "3"], 1000),
    "envphong": (["--max-iter", "100"], 100),
    "earth": (["--mip", "--max-iter", "20"], 20),
}

# The only edits made to a sample: (pattern, replacement).
EDITS = (
    (r"import nvdiffrast\.torch as dr", "import csmlab.dr as dr"),
    (r"'cuda'", "'cpu'"),
    (r'"cuda"', '"cpu"'),
    (r"\.cuda\(\)", ".cpu()"),
)

RUNNER = '''"""Seed numpy and torch, use one thread, then run a sample as __main__ (its code untouched)."""
import os, runpy, sys
import numpy as np
import torch
torch.set_num_threads(1)
np.random.seed(int(os.environ.get("SAMPLE_SEED", "0")))
torch.manual_seed(int(os.environ.get("SAMPLE_SEED", "0")))
path = os.path.abspath(sys.argv[1])
sys.path.insert(0, os.path.dirname(path))
sys.argv = [path] + sys.argv[2:]
runpy.run_path(path, run_name="__main__")
'''

# A stand-in for imageio where it is not installed: the samples import it at the top, and
# without --outdir they only call imsave (triangle.py). Written with PIL.
IMAGEIO_SHIM = '''"""Minimal imageio stand-in (imsave via PIL) for running nvdiffrast's samples."""
import numpy as np
from PIL import Image

def imsave(fn, img):
    Image.fromarray(np.asarray(img)).save(fn)

def get_writer(*args, **kwargs):
    raise RuntimeError("imageio stand-in: no video writer; run the samples without --outdir")
'''


# ----------------------------------------------------------------------------- source

class Source:
    """A checkout of nvdiffrast (or its samples/ folder's parent), or a bare git dir."""

    def __init__(self, path: str):
        self.path = Path(path)
        self.git = (self.path / "HEAD").is_file() and (self.path / "objects").is_dir()
        if not self.git and not (self.path / "samples" / "torch").is_dir():
            raise ValueError(f"source must be an nvdiffrast checkout (with samples/torch/) or a bare git "
                             f"dir, got {str(self.path)!r}")

    def read(self, rel: str) -> bytes | None:
        """The file's bytes, or None when absent (or stored as a Git LFS pointer)."""
        if self.git:
            res = subprocess.run(["git", "--git-dir", str(self.path), "show", f"HEAD:{rel}"],
                                 capture_output=True)
            data = res.stdout if res.returncode == 0 else None
        else:
            file = self.path / rel
            data = file.read_bytes() if file.is_file() else None
        if not data or data.startswith(b"version https://git-lfs"):
            return None
        return data


def patch(text: str) -> tuple[str, dict]:
    """Apply ``EDITS``; returns the new text and how many times each edit applied."""
    counts = {}
    for pattern, repl in EDITS:
        text, n = re.subn(pattern, repl, text)
        if n:
            counts[repl] = n
    return text, counts


# ----------------------------------------------------------------------------- generated earth

def generated_earth(n: int = 16, tile: int = 512, seed: int = 0):
    """(pos_idx, pos, uv_idx, uv, tex) in earth.npz's layout: a cube-sphere, faces on a 4x3 atlas."""
    rng = np.random.default_rng(seed)
    # Cube face -> (tile row, tile column) in a horizontal cross; the texture mask of earth.py
    # covers the middle row of tiles and the second column of tiles.
    faces = [((1, 0), lambda a, b: (-np.ones_like(a), b, a)), ((1, 1), lambda a, b: (a, b, np.ones_like(a))),
             ((1, 2), lambda a, b: (np.ones_like(a), b, -a)), ((1, 3), lambda a, b: (-a, b, -np.ones_like(a))),
             ((0, 1), lambda a, b: (a, -np.ones_like(a), b)), ((2, 1), lambda a, b: (a, np.ones_like(a), -b))]
    grid = np.linspace(-1.0, 1.0, n + 1)
    a, b = np.meshgrid(grid, grid, indexing="xy")
    pos, uv, tris = [], [], []
    for k, ((row, col), to_xyz) in enumerate(faces):
        xyz = np.stack(to_xyz(a.ravel(), b.ravel()), 1)
        pos.append(xyz / np.linalg.norm(xyz, axis=1, keepdims=True))
        uv.append(np.stack([(col + (a.ravel() + 1) / 2) / 4, (row + (b.ravel() + 1) / 2) / 3], 1))
        idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1) + k * (n + 1) ** 2
        quad = np.stack([idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]], -1).reshape(-1, 4)
        tris += [quad[:, [0, 1, 2]], quad[:, [0, 2, 3]]]
    pos_idx = np.concatenate(tris).astype(np.int32)
    # A procedural texture continuous on the sphere: random low- and high-frequency waves of the
    # direction through each texel, so that mipmapping matters at a distance.
    h, w = 3 * tile, 4 * tile
    tex = np.zeros((h, w, 3), np.float32)
    freqs = rng.normal(size=(12, 3)) * np.repeat([2.0, 6.0, 20.0], 4)[:, None]
    phase, amp = rng.uniform(0, 2 * np.pi, (12, 3)), rng.uniform(0.2, 1.0, (12, 3))
    t = (np.arange(tile) + 0.5) / tile * 2 - 1
    ta, tb = np.meshgrid(t, t, indexing="xy")
    for (row, col), to_xyz in faces:
        d = np.stack(to_xyz(ta, tb), -1)
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        waves = np.sin((d @ freqs.T)[..., :, None] + phase) * amp
        tex[row * tile:(row + 1) * tile, col * tile:(col + 1) * tile] = 0.5 + 0.5 * np.tanh(waves.mean(-2) * 2)
    tex = np.clip(np.rint(tex * 255), 0, 255).astype(np.uint8)
    return pos_idx, np.concatenate(pos).astype(np.float32), pos_idx.copy(), np.concatenate(uv).astype(np.float32), tex


# ----------------------------------------------------------------------------- run and parse

def stage(source: Source, work: Path) -> dict:
    """Copy the samples (patched) and their data into ``work``; returns notes per sample."""
    (work / "samples" / "torch").mkdir(parents=True)
    (work / "samples" / "data").mkdir()
    notes = {}
    for name in (*SAMPLES, "util"):
        text = source.read(f"samples/torch/{name}.py")
        if text is None:
            notes[name] = "missing from source"
            continue
        patched, counts = patch(text.decode())
        (work / "samples" / "torch" / f"{name}.py").write_text(patched)
        notes[name] = ", ".join(f"{k} x{v}" for k, v in counts.items()) or "unchanged"
    for data in ("cube_c", "cube_d", "cube_p", "envphong", "earth"):
        raw = source.read(f"samples/data/{data}.npz")
        if raw is not None:
            (work / "samples" / "data" / f"{data}.npz").write_bytes(raw)
        elif data == "earth":
            np.savez(work / "samples" / "data" / "earth.npz", *generated_earth())
            notes["earth"] += "; earth.npz absent from source: generated (cube-sphere, 1536x2048 atlas)"
    shim = work / "shim"
    shim.mkdir()
    try:
        import imageio  # noqa: F401
    except ImportError:
        (shim / "imageio.py").write_text(IMAGEIO_SHIM)
        notes["imageio"] = "imageio not installed: a PIL stand-in (imsave) is on PYTHONPATH"
    (work / "run_sample.py").write_text(RUNNER)
    return notes


def run_sample(name: str, work: Path, flags: list[str], timeout: float, seed: int, log_dir: Path | None):
    """(output, return code or 'timeout', wall seconds); the output streams to ``<log_dir>/<name>.log``."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", SAMPLE_SEED=str(seed), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(REPO), str(work / "shim"), os.environ.get("PYTHONPATH", "")]))
    cmd = ["nice", "-n", "10", sys.executable, str(work / "run_sample.py"),
           str(work / "samples" / "torch" / f"{name}.py"), *flags]
    log = (log_dir or work) / f"{name}.log"
    start = time.perf_counter()
    with open(log, "w") as out_file:
        try:
            rc = subprocess.run(cmd, cwd=work, env=env, stdout=out_file, stderr=subprocess.STDOUT,
                                timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    wall = time.perf_counter() - start
    out = log.read_text()
    if rc == "timeout":
        out += f"\nTIMEOUT after {timeout:.0f} s"
    return out, rc, wall


def _fields(line: str) -> dict:
    return {k: float(v) for k, v in re.findall(r"(\w+)=([-+0-9.eE]+|nan|inf)", line)}


def parse(name: str, out: str, work: Path, source: Source) -> tuple[int, str]:
    """(last logged iteration, the sample's final error as a short string)."""
    lines = [_fields(s) for s in out.splitlines() if "iter=" in s]
    last_iter = int(lines[-1]["iter"]) if lines else 0
    if name == "triangle":
        return 0, _triangle_error(work, source)
    if not lines:
        return 0, "no log line"
    if name == "cube":
        return last_iter, f"err {lines[-1]['err']:.3g} (iter 0: {lines[0]['err']:.3g})"
    if name == "pose":
        finals = {}
        for f in lines:
            finals[int(f["rep"])] = f
        return last_iter, ("err " + ", ".join(f"{f['err']:.3f}" for f in finals.values()) + " deg; err_best "
                           + ", ".join(f"{f['err_best']:.3f}" for f in finals.values()) + " deg")
    if name == "envphong":
        f = lines[-1]
        return last_iter, (f"phong_rgb_rmse {f['phong_rgb_rmse']:.4f}, exp_rel_err {f['phong_exp_rel_err']:.4f}, "
                           f"img_rmse {f['img_rmse']:.5f} (iter 0: {lines[0]['img_rmse']:.5f})")
    f = lines[-1]
    return last_iter, f"tex rmse {f['loss']:.4f}, psnr {f['psnr']:.2f} dB (iter 0: {lines[0]['psnr']:.2f} dB)"


def _triangle_error(work: Path, source: Source) -> str:
    from io import BytesIO

    from PIL import Image

    made = work / "tri.png"
    if not made.is_file():
        return "no tri.png written"
    ref = source.read("docs/img/tri.png")
    if ref is None:
        return "tri.png written; no reference image in source"
    a = np.asarray(Image.open(made).convert("RGB")).astype(int)
    b = np.asarray(Image.open(BytesIO(ref)).convert("RGB")).astype(int)
    if a.shape != b.shape:
        return f"tri.png {a.shape} vs docs {b.shape}"
    off = np.abs(a - b).max(-1) > 1
    return (f"vs docs/img/tri.png: {off.sum()} of {off.size} px differ by > 1/255 "
            f"({off.mean():.2%}), the others match")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", nargs="?", help="nvdiffrast checkout or bare git dir")
    parser.add_argument("--samples", nargs="+", default=list(SAMPLES), choices=SAMPLES)
    parser.add_argument("--quick", action="store_true", help="iteration counts / 10")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-dir", default=None, help="write each sample's output here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.source is None:  # `make bench` runs every script without arguments
        print("nvdiffrast_samples: SKIPPED, no source given (a checkout of NVlabs/nvdiffrast or its bare git "
              "dir); the full run takes about an hour on one CPU thread")
        return 0
    try:
        source = Source(args.source)
    except ValueError as err:
        parser.error(str(err))
    log_dir = Path(args.log_dir) if args.log_dir else None
    if log_dir:
        log_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="nvdr_samples_"))
    rows = []
    try:
        notes = stage(source, work)
        for key in ("imageio",):
            if key in notes:
                print(f"note: {notes[key]}")
        for name in args.samples:
            flags, iters = PLANS[name]
            if args.quick and iters:
                iters = max(iters // 10, 10)
                flags = [str(iters) if prev == "--max-iter" else f for prev, f in zip([""] + flags, flags)]
            print(f"running {name}.py {' '.join(flags)}  [edits: {notes.get(name)}]", flush=True)
            out, rc, wall = run_sample(name, work, flags, args.timeout, args.seed, log_dir)
            last_iter, err = parse(name, out, work, source)
            if rc != 0:
                tail = out.strip().splitlines()[-1] if out.strip() else ""
                err = f"FAILED (rc {rc}): {tail[:160]}"
            gpu = "docs/img/tri.png (expected output)" if name == "triangle" else GPU_FIGURE_NONE
            rows.append(dict(sample=name, flags=" ".join(flags), iterations=last_iter, cpu_error=err,
                             gpu_figure=gpu, wall_s=round(wall, 1), rc=rc, edits=notes.get(name)))
            print(f"  -> {err}  ({wall:.1f} s)", flush=True)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print("\n| sample | flags | iterations | final error on CPU (csmlab.dr) | GPU figure | wall s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['sample']}.py | {r['flags'] or '(none)'} | {r['iterations']} | {r['cpu_error']} | "
              f"{r['gpu_figure']} | {r['wall_s']} |")
    print(f"\nload average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (wall times inflated by it)")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(rows=rows, loadavg=load), indent=2))
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
