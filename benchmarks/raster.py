"""Benchmark of csmlab.dr on CPU: rasterize + interpolate + antialias, against Mesa llvmpipe.

Usage:  python benchmarks/raster.py [--repeat N] [--threads T] [--backend numba|torch] [--no-llvmpipe]
        [--no-compile-time]

For each case (an icosphere of 642 verts / 1280 faces at 128x128 and one of 2562 verts /
5120 faces at 256x256, a batch of 8 random rotations in front of an orthographic camera,
clip pos = [x s, y s, -0.1 z, 1]; and the symmetric autoencoder's depth grid: a 64 x 64
vertex grid mesh, 7938 faces, batch 16 at 64x64) it prints the time per batch (median of
--repeat runs) of

- forward: rasterize + interpolate (3 colour channels) + antialias,
- forward + backward of the same, with gradients wrt the positions and colours, in two
  variants: the renderer's own forward + backward, with the upstream gradient ``w`` (a fixed
  random image) handed to ``torch.autograd.backward(out, w)``; and the same through the loss
  ``(out * w).sum().backward()``, which adds the loss's multiply, sum and their backward
  (image-sized work of the benchmark's, not the renderer's; llvmpipe's side has no loss).
  Both give the same gradients; the llvmpipe ratio is printed for both, labelled;

as the process's CPU time (``time.process_time``, all threads; steady on a shared
machine) and as wall-clock time,

and the peak memory of the timed section, measured as the growth of the process's
peak resident set size (``resource.getrusage().ru_maxrss``) while the case runs in
its own subprocess (so earlier cases do not hide it).

When moderngl can open a standalone EGL context on Mesa's llvmpipe (CPU OpenGL),
the same meshes are rendered there too, in the same process, timed in rounds that
alternate with ours (triangle id + depth, depth test, readback of both buffers, one
image at a time), and ``ours_fwd_bwd / llvmpipe`` is printed. moderngl is an
optional benchmark dependency (``pip install -e ".[bench]"``, which ``make install`` runs; it needs Mesa's libEGL):
without it that part is skipped with a message.

``--backend numba`` (default) times the compiled kernels that ``csmlab.dr`` uses for CPU
tensors, ``--backend torch`` the PyTorch twin (``CSMLAB_DR_NUMBA=0``). For numba it
also prints the kernels' compile time (first call in a fresh process with an empty
``NUMBA_CACHE_DIR``) and the load time once cached (first call in a second fresh process).
Timings on a shared machine are noisy: the load average is printed; compare ratios
measured in one process rather than times of different runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import csmlab.dr as dr  # noqa: E402

CASES = [dict(mesh="sphere", size=3, res=128, batch=8), dict(mesh="sphere", size=4, res=256, batch=8),
         dict(mesh="grid", size=64, res=64, batch=16)]
SCALE = 0.8


def icosphere(subdiv: int):
    from csmlab.geometry import icosphere as geometry_icosphere

    mesh = geometry_icosphere(subdiv)
    return mesh.verts.float(), mesh.faces.to(torch.int32)


def depth_grid(n: int):
    """An n x n vertex grid over [-1, 1]^2 with a smooth depth bump (the autoencoder's depth map)."""
    lin = torch.linspace(-1.0, 1.0, n)
    y, x = torch.meshgrid(lin, lin, indexing="ij")
    z = 0.4 * torch.exp(-2.0 * (x * x + y * y))
    verts = torch.stack([x, y, z], -1).reshape(-1, 3)
    i = torch.arange(n * n).reshape(n, n)[:-1, :-1].reshape(-1)
    faces = torch.cat([torch.stack([i, i + 1, i + n], 1), torch.stack([i + 1, i + n + 1, i + n], 1)])
    return verts, faces.to(torch.int32)


def case_mesh(mesh: str, size: int):
    return icosphere(size) if mesh == "sphere" else depth_grid(size)


def random_rotations(n: int, seed: int = 0, max_angle: float | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 4, generator=g)
    if max_angle is not None:  # small rotations: the grid stays facing the camera
        q[:, 0] = 1.0 / math.tan(max_angle / 2) * q[:, 1:].norm(dim=1)
    q = q / q.norm(dim=1, keepdim=True)
    w, x, y, z = q.unbind(1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], 1).view(n, 3, 3)


def clip_positions(verts: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Orthographic camera: clip = [x s, y s, -0.1 z, 1] of the rotated vertices."""
    p = torch.einsum("bij,vj->bvi", rot, verts)
    return torch.cat([p[..., :2] * SCALE, -0.1 * p[..., 2:3], torch.ones_like(p[..., :1])], -1).contiguous()


def case_positions(mesh: str, size: int, batch: int):
    verts, faces = case_mesh(mesh, size)
    rot = random_rotations(batch, max_angle=math.radians(30) if mesh == "grid" else None)
    return verts, faces, clip_positions(verts, rot)


def _median_times(fn, repeat: int) -> tuple[float, float]:
    """(median CPU ms, median wall ms) over ``repeat`` runs after one warm-up. CPU time is
    ``time.process_time``: all threads of this process, so llvmpipe's worker threads count
    too; on a busy shared machine it is steadier than wall-clock time, which also counts
    waiting for a core."""
    fn()
    cpu, wall = [], []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return statistics.median(cpu) * 1e3, statistics.median(wall) * 1e3


def ours_functions(mesh: str, size: int, res: int, batch: int):
    """(forward, forward+backward, stage-limited forward+backward) closures on csmlab.dr."""
    verts, faces, pos0 = case_positions(mesh, size, batch)
    colors0 = torch.rand(batch, verts.shape[0], 3, generator=torch.Generator().manual_seed(1))
    ctx = dr.RasterizeCudaContext(device="cpu")
    weights = torch.rand(batch, res, res, 3)

    def forward(pos, colors, stages=3):
        rast, rast_db = dr.rasterize(ctx, pos, faces, (res, res))
        if stages == 1:
            return rast[..., :3]
        color, _ = dr.interpolate(colors, rast, faces)
        return dr.antialias(color, rast, pos, faces) if stages == 3 else color

    def fwd():
        with torch.no_grad():
            forward(pos0, colors0)

    def fwd_bwd(stages=3, loss=False):
        """Forward + backward; the upstream gradient ``weights`` goes straight to the renderer's
        backward, or (``loss``) through ``(out * weights).sum()`` (same gradients, more work)."""
        pos = pos0.clone().requires_grad_()
        colors = colors0.clone().requires_grad_()
        out = forward(pos, colors, stages)
        if loss:
            (out * weights).sum().backward()
        else:
            torch.autograd.backward(out, weights)

    return fwd, fwd_bwd, dict(verts=verts.shape[0], faces=faces.shape[0], backend=ctx.backend)


def llvmpipe_renderer(mesh: str, size: int, res: int, batch: int):
    """A closure rendering triangle id + depth of the same views on Mesa llvmpipe, with readback;
    or a string saying why not."""
    try:
        import moderngl
        import numpy as np
    except ImportError:
        return "moderngl is not installed (optional: pip install -e \".[bench]\" or pip install moderngl)"
    try:
        gl = moderngl.create_context(standalone=True, backend="egl")
    except Exception as err:  # no EGL / no Mesa
        return f"moderngl could not open a standalone EGL context ({type(err).__name__}: {err})"
    prog = gl.program(
        vertex_shader="#version 330\nin vec4 in_pos;\nvoid main() { gl_Position = in_pos; }\n",
        fragment_shader="#version 330\nout float tri_id;\n"
                        "void main() { tri_id = float(gl_PrimitiveID + 1); }\n")
    _, faces, pos = case_positions(mesh, size, batch)
    pos = pos.numpy().astype(np.float32)
    ibo = gl.buffer(faces.numpy().astype(np.int32).tobytes())
    vbo = gl.buffer(reserve=pos[0].nbytes)
    vao = gl.vertex_array(prog, [(vbo, "4f", "in_pos")], index_buffer=ibo, index_element_size=4)
    fbo = gl.framebuffer(color_attachments=[gl.renderbuffer((res, res), 1, dtype="f4")],
                         depth_attachment=gl.depth_renderbuffer((res, res)))
    gl.enable(moderngl.DEPTH_TEST)

    def render_batch():
        for b in range(batch):
            vbo.write(pos[b].tobytes())
            fbo.use()
            fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            vao.render(moderngl.TRIANGLES)
            ids = np.frombuffer(fbo.read(components=1, dtype="f4"), np.float32)
            depth = np.frombuffer(fbo.read(attachment=-1, dtype="f4"), np.float32)
        return ids, depth

    render_batch.renderer = gl.info.get("GL_RENDERER", "?")
    render_batch.coverage = float((render_batch()[0] > 0).mean())
    return render_batch


def run_case(mesh: str, size: int, res: int, batch: int, repeat: int, llvmpipe: bool) -> dict:
    """Ours and llvmpipe in this process, in alternating rounds (so load changes hit both)."""
    fwd, fwd_bwd, info = ours_functions(mesh, size, res, batch)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fwd()
    fwd_bwd()
    fwd_bwd(loss=True)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gl = llvmpipe_renderer(mesh, size, res, batch) if llvmpipe else "not requested"
    rounds = {"fwd": [], "fwd_bwd": [], "fwd_bwd_loss": [], "rasterize": [], "rasterize_interpolate": [],
              "llvmpipe": []}
    for _ in range(repeat):
        rounds["fwd"].append(_median_times(fwd, 1))
        rounds["fwd_bwd"].append(_median_times(fwd_bwd, 1))
        rounds["fwd_bwd_loss"].append(_median_times(lambda: fwd_bwd(loss=True), 1))
        rounds["rasterize"].append(_median_times(lambda: fwd_bwd(1), 1))
        rounds["rasterize_interpolate"].append(_median_times(lambda: fwd_bwd(2), 1))
        if callable(gl):
            rounds["llvmpipe"].append(_median_times(gl, 1))
    med = {k: (statistics.median(c for c, _ in v), statistics.median(w for _, w in v)) for k, v in rounds.items() if v}
    out = dict(info, peak_mib=(rss1 - rss0) / 1024, **{f"{k}_ms": v[0] for k, v in med.items()},
               **{f"{k}_wall_ms": v[1] for k, v in med.items()})
    if callable(gl):
        out.update(renderer=gl.renderer, coverage=gl.coverage,
                   ratios=[a[0] / b[0] for a, b in zip(rounds["fwd_bwd"], rounds["llvmpipe"])],
                   ratios_loss=[a[0] / b[0] for a, b in zip(rounds["fwd_bwd_loss"], rounds["llvmpipe"])])
    else:
        out["llvmpipe_skipped"] = gl
    return out


def first_call_seconds() -> float:
    """Wall time of the first rasterize + interpolate + antialias forward and backward in this process."""
    start = time.perf_counter()
    fwd, fwd_bwd, _ = ours_functions("sphere", 1, 16, 2)
    fwd_bwd()
    return time.perf_counter() - start


def _subprocess(args: list, env: dict):
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return f"failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def compile_and_load_times(env: dict) -> tuple:
    """(compile s, cached load s): first calls in two fresh processes sharing a new empty cache dir."""
    with tempfile.TemporaryDirectory(prefix="csmlab-numba-cache-") as cache:
        env = dict(env, NUMBA_CACHE_DIR=cache)
        return _subprocess(["--first-call"], env), _subprocess(["--first-call"], env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch, numba (NUMBA_NUM_THREADS) and llvmpipe (LP_NUM_THREADS) threads (default 1; "
                         "0: each one's own default)")
    ap.add_argument("--backend", choices=("numba", "torch"), default="numba")
    ap.add_argument("--no-llvmpipe", action="store_true")
    ap.add_argument("--no-compile-time", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--first-call", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.first_call:
        print(json.dumps(first_call_seconds()))
        return
    if args.one:
        if args.threads:
            torch.set_num_threads(args.threads)   # a benchmark process of its own, not library code
        print(json.dumps(run_case(**json.loads(args.one))))
        return

    env = dict(os.environ)
    if args.threads:
        env.update(NUMBA_NUM_THREADS=str(args.threads), LP_NUM_THREADS=str(args.threads))
    if args.backend == "torch":
        env["CSMLAB_DR_NUMBA"] = "0"
    load = os.getloadavg()[0]
    print(f"torch {torch.__version__}, backend {args.backend}, threads {args.threads or 'default'} "
          f"(torch, numba, llvmpipe), median of {args.repeat} alternating rounds, process CPU time "
          f"(wall-clock in brackets); {os.cpu_count()} CPUs, load average {load:.1f} at start")
    if args.backend == "numba" and not args.no_compile_time:
        compiled, loaded = compile_and_load_times(env)
        fmt = lambda t: f"{t:.1f} s" if isinstance(t, float) else t  # noqa: E731
        print(f"numba kernels: first call with an empty cache (compile) {fmt(compiled)}, "
              f"first call in a fresh process once cached (load) {fmt(loaded)}")
    for case in CASES:
        name = (f"icosphere({case['size']})" if case["mesh"] == "sphere" else f"grid {case['size']}x{case['size']}")
        job = dict(case, repeat=args.repeat, llvmpipe=not args.no_llvmpipe)
        r = _subprocess(["--one", json.dumps(job), "--threads", str(args.threads)], env)
        if isinstance(r, str):
            print(f"{name} @ {case['res']}^2: {r}")
            continue
        print(f"{name} {r['verts']} verts/{r['faces']} faces, batch {case['batch']} @ {case['res']}^2 "
              f"[{r['backend']}], rasterize+interpolate+antialias: fwd {r['fwd_ms']:.1f} ms, "
              f"fwd+bwd {r['fwd_bwd_ms']:.1f} ms CPU (wall {r['fwd_wall_ms']:.1f} / {r['fwd_bwd_wall_ms']:.1f} ms), "
              f"peak +{r['peak_mib']:.0f} MiB")
        print(f"    fwd+bwd through the loss (out * w).sum().backward(): {r['fwd_bwd_loss_ms']:.1f} ms CPU "
              f"(wall {r['fwd_bwd_loss_wall_ms']:.1f} ms)")
        print(f"    fwd+bwd CPU breakdown (upstream gradient given): rasterize {r['rasterize_ms']:.1f} ms, "
              f"+ interpolate {r['rasterize_interpolate_ms']:.1f} ms, + antialias {r['fwd_bwd_ms']:.1f} ms")
        if "llvmpipe_skipped" in r:
            print(f"    llvmpipe: skipped, {r['llvmpipe_skipped']}")
            continue
        print(f"    llvmpipe ({r['renderer']}): id+depth render + readback {r['llvmpipe_ms']:.1f} ms CPU "
              f"(wall {r['llvmpipe_wall_ms']:.1f} ms, coverage {r['coverage']:.2f})")
        for label, key, rkey in (("renderer fwd+bwd, upstream gradient given", "fwd_bwd_ms", "ratios"),
                                 ("fwd+bwd through the loss (out * w).sum()", "fwd_bwd_loss_ms", "ratios_loss")):
            ratios = r[rkey]
            print(f"    ours / llvmpipe, {label}: {r[key] / r['llvmpipe_ms']:.2f} (medians), "
                  f"per round median {statistics.median(ratios):.2f} [{min(ratios):.2f}, {max(ratios):.2f}]")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
