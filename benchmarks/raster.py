"""Benchmark of csmlab.dr's PyTorch twin: rasterize + interpolate + antialias on icospheres.

Usage:  python benchmarks/raster.py [--repeat N] [--threads T] [--no-llvmpipe]

For each case (an icosphere of 642 verts / 1280 faces at 128x128 and one of 2562 verts /
5120 faces at 256x256, a batch of 8 random rotations in front of an orthographic camera,
clip pos = [x s, y s, -0.1 z, 1]) it prints the time per batch (best of --repeat runs) of

- forward: rasterize + interpolate (3 colour channels) + antialias,
- forward + backward of the same, with gradients wrt the positions and colours,

as the process's CPU time (``time.process_time``, all threads; steady on a shared
machine) and as wall-clock time,

and the peak memory of the timed section, measured as the growth of the process's
peak resident set size (``resource.getrusage().ru_maxrss``) while the case runs in
its own subprocess (so earlier cases do not hide it).

When moderngl can open a standalone EGL context on Mesa's llvmpipe (CPU OpenGL),
the same meshes are rendered there too (triangle id + depth, depth test, readback of
both buffers, 8 images) and ``ours_fwd_bwd / llvmpipe`` is printed. moderngl is an
optional benchmark dependency: without it that part is skipped with a message.
Timings on a shared machine are noisy; repeat, and compare runs made side by side.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import csmlab.dr as dr  # noqa: E402

CASES = [dict(subdiv=3, res=128), dict(subdiv=4, res=256)]
BATCH = 8
SCALE = 0.8


def icosphere(subdiv: int):
    from csmlab.geometry import icosphere as geometry_icosphere

    mesh = geometry_icosphere(subdiv)
    return mesh.verts.float(), mesh.faces.to(torch.int32)


def random_rotations(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 4, generator=g)
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


def antialias_available() -> bool:
    try:
        from csmlab.dr.antialias_twin import antialias_torch  # noqa: F401
    except ImportError:
        return False
    return True


def _timed(fn, repeat: int) -> tuple[float, float]:
    """(best CPU ms, best wall ms) over ``repeat`` runs. CPU time is ``time.process_time``:
    all threads of this process, so llvmpipe's worker threads count too; on a busy shared
    machine it is steadier than wall-clock time, which also counts waiting for a core. The
    minimum (as ``timeit`` reports) is the run least disturbed by other processes."""
    fn()  # warm-up
    cpu, wall = [], []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return min(cpu) * 1e3, min(wall) * 1e3


def run_twin_case(subdiv: int, res: int, repeat: int) -> dict:
    verts, faces = icosphere(subdiv)
    pos0 = clip_positions(verts, random_rotations(BATCH))
    colors0 = torch.rand(BATCH, verts.shape[0], 3, generator=torch.Generator().manual_seed(1))
    ctx = dr.RasterizeCudaContext(device="cpu")
    use_aa = antialias_available()

    def forward(pos, colors, stages=3):
        rast, rast_db = dr.rasterize(ctx, pos, faces, (res, res))
        if stages == 1:
            return rast[..., :3]
        color, _ = dr.interpolate(colors, rast, faces)
        if use_aa and stages == 3:
            color = dr.antialias(color, rast, pos, faces)
        return color

    def fwd():
        with torch.no_grad():
            forward(pos0, colors0)

    weights = torch.rand(BATCH, res, res, 3)

    def fwd_bwd(stages=3):
        pos = pos0.clone().requires_grad_()
        colors = colors0.clone().requires_grad_()
        (forward(pos, colors, stages) * weights).sum().backward()

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t_fwd = _timed(fwd, repeat)
    t_fb = _timed(fwd_bwd, repeat)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Breakdown of fwd+bwd CPU time: rasterize alone, then with interpolate.
    t_r = _timed(lambda: fwd_bwd(1), repeat)[0]
    t_ri = _timed(lambda: fwd_bwd(2), repeat)[0]
    return dict(fwd_ms=t_fwd[0], fwd_bwd_ms=t_fb[0], fwd_wall_ms=t_fwd[1], fwd_bwd_wall_ms=t_fb[1],
                peak_mib=(rss1 - rss0) / 1024, antialias=use_aa, verts=verts.shape[0], faces=faces.shape[0],
                rasterize_fwd_bwd_ms=t_r, rasterize_interpolate_fwd_bwd_ms=t_ri)


def run_llvmpipe_case(subdiv: int, res: int, repeat: int) -> dict | str:
    """Triangle-id + depth render of the same 8 views on Mesa llvmpipe, with readback."""
    try:
        import moderngl
        import numpy as np
    except ImportError:
        return "moderngl is not installed (optional: pip install moderngl)"
    try:
        gl = moderngl.create_context(standalone=True, backend="egl")
    except Exception as err:  # no EGL / no Mesa
        return f"moderngl could not open a standalone EGL context ({type(err).__name__}: {err})"
    renderer = gl.info.get("GL_RENDERER", "?")
    prog = gl.program(
        vertex_shader="#version 330\nin vec4 in_pos;\nvoid main() { gl_Position = in_pos; }\n",
        fragment_shader="#version 330\nout float tri_id;\n"
                        "void main() { tri_id = float(gl_PrimitiveID + 1); }\n")
    verts, faces = icosphere(subdiv)
    pos = clip_positions(verts, random_rotations(BATCH)).numpy().astype(np.float32)
    ibo = gl.buffer(faces.numpy().astype(np.int32).tobytes())
    vbo = gl.buffer(reserve=pos[0].nbytes)
    vao = gl.vertex_array(prog, [(vbo, "4f", "in_pos")], index_buffer=ibo, index_element_size=4)
    fbo = gl.framebuffer(color_attachments=[gl.renderbuffer((res, res), 1, dtype="f4")],
                         depth_attachment=gl.depth_renderbuffer((res, res)))
    gl.enable(moderngl.DEPTH_TEST)

    def render_batch():
        for b in range(BATCH):
            vbo.write(pos[b].tobytes())
            fbo.use()
            fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            vao.render(moderngl.TRIANGLES)
            ids = np.frombuffer(fbo.read(components=1, dtype="f4"), np.float32)
            depth = np.frombuffer(fbo.read(attachment=-1, dtype="f4"), np.float32)
        return ids, depth

    ids, _ = render_batch()
    coverage = float((ids > 0).mean())
    t = _timed(render_batch, repeat)
    gl.release()
    return dict(ms=t[0], wall_ms=t[1], renderer=renderer, coverage=coverage)


def _in_subprocess(kind: str, case: dict, repeat: int, threads: int | None):
    cmd = [sys.executable, __file__, "--one", json.dumps(dict(kind=kind, repeat=repeat, **case))]
    env = dict(os.environ)
    if threads:
        cmd += ["--threads", str(threads)]
        env["LP_NUM_THREADS"] = str(threads)      # llvmpipe's rasterizer threads, for a fair match
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return f"failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads and llvmpipe's LP_NUM_THREADS (default: each one's own). "
                         "On a machine shared with other busy processes use 1: PyTorch's thread pool "
                         "slows down badly when its threads have to wait for a core.")
    ap.add_argument("--no-llvmpipe", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        job = json.loads(args.one)
        runner = run_twin_case if job.pop("kind") == "twin" else run_llvmpipe_case
        print(json.dumps(runner(**job)))
        return

    print(f"torch {torch.__version__}, {torch.get_num_threads()} torch threads "
          f"(llvmpipe: {os.environ.get('LP_NUM_THREADS', args.threads or 'default')}), batch {BATCH}, "
          f"best of {args.repeat} runs, process CPU time (wall-clock in brackets); "
          f"peak memory = growth of ru_maxrss in a fresh subprocess")
    if not antialias_available():
        print("antialias not available: timing rasterize + interpolate only")
    for case in CASES:
        twin = _in_subprocess("twin", case, args.repeat, args.threads)
        if isinstance(twin, str):
            print(f"icosphere({case['subdiv']}) @ {case['res']}^2: twin {twin}")
            continue
        what = "rasterize+interpolate" + ("+antialias" if twin["antialias"] else "")
        print(f"icosphere({case['subdiv']}) {twin['verts']} verts/{twin['faces']} faces @ {case['res']}^2, "
              f"{what}: fwd {twin['fwd_ms']:.1f} ms, fwd+bwd {twin['fwd_bwd_ms']:.1f} ms CPU "
              f"(wall {twin['fwd_wall_ms']:.1f} / {twin['fwd_bwd_wall_ms']:.1f} ms), "
              f"peak +{twin['peak_mib']:.0f} MiB")
        print(f"    fwd+bwd CPU breakdown: rasterize {twin['rasterize_fwd_bwd_ms']:.1f} ms, "
              f"+ interpolate {twin['rasterize_interpolate_fwd_bwd_ms']:.1f} ms"
              + (f", + antialias {twin['fwd_bwd_ms']:.1f} ms" if twin["antialias"] else ""))
        if args.no_llvmpipe:
            continue
        gl = _in_subprocess("llvmpipe", case, args.repeat, args.threads)
        if isinstance(gl, str):
            print(f"    llvmpipe: skipped, {gl}")
            continue
        ratio = twin["fwd_bwd_ms"] / gl["ms"] if gl["ms"] > 0 else math.inf
        print(f"    llvmpipe ({gl['renderer']}): id+depth render + readback {gl['ms']:.1f} ms CPU "
              f"(wall {gl['wall_ms']:.1f} ms, coverage {gl['coverage']:.2f}); "
              f"ours_fwd_bwd / llvmpipe = {ratio:.2f} (CPU time)")


if __name__ == "__main__":
    main()
