"""Parity and speed of csmlab's PyTorch twin against nvdiffrast (needs CUDA + nvdiffrast).

Usage (from the repository root, on a CUDA machine with nvdiffrast installed)::

    python benchmarks/parity_nvdiffrast.py                  # 256x256, batch 8
    python benchmarks/parity_nvdiffrast.py --res 128 --batch 8 --json out.json
    python benchmarks/parity_nvdiffrast.py --twin-device cpu   # twin on CPU copies

Without CUDA or nvdiffrast it prints why and exits with status 0 (``--require`` makes
that status 1). Otherwise it exits with status 1 when a parity check fails.

The same inputs (random triangle soups, icospheres, a bumpy icosphere with
self-occluding folds, and one range-mode batch) go through ``nvdiffrast.torch`` and the
twin (``csmlab.dr.*_torch``, on the same CUDA tensors by default). Checks:

- triangle ids equal, except at ties: a pixel centre within 1/16 px of an edge of
  either triangle (nvdiffrast's rasterizer snaps vertices to 1/16 px) or a depth tie;
  unexplained mismatches must be 0;
- barycentrics (u, v) within 1e-4 where the ids agree;
- antialiased images within 1e-3: once with both backends fed nvdiffrast's ``rast``
  and colour (isolates antialias), and once end to end (pixels next to an id mismatch
  excluded);
- gradient cosine > 0.99 for loss = sum(antialiased image * random weights), wrt pos,
  for antialias alone and for the full rasterize -> interpolate -> antialias chain;
- texture (nearest/linear x wrap/clamp/zero) within 1e-5, gradient cosines > 0.999;
- mipmapped 2-D and cube-map texture (with uv_da and mip_level_bias) within 1e-4 (LOD
  rounding at level boundaries), gradient cosines > 0.99 for every differentiable input;
- DepthPeeler: per layer, ids equal on >= 99% of pixels, u, v within 1e-4 where they agree.
Timings are medians over ``--repeats`` runs (CUDA-synchronised), in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

TIE_PX = 1.0 / 16.0
DEVICE = "cuda"  # where nvdiffrast runs (a module constant so that a dry run can swap it)


def load_backends(require: bool, compiled: bool = False):
    """(nvdiffrast.torch, twin namespace) or exit with a clear message; ``compiled``: the numba kernels."""
    why = None
    if not torch.cuda.is_available():
        why = "CUDA is not available (torch.cuda.is_available() is False)"
    else:
        try:
            import nvdiffrast.torch as nvdr
        except Exception as err:  # ImportError or a failing plugin build
            why = f"nvdiffrast.torch does not import ({type(err).__name__}: {err})"
    if why:
        print(f"parity_nvdiffrast: SKIPPED, {why}. Needs a CUDA GPU with nvdiffrast "
              "(pip install git+https://github.com/NVlabs/nvdiffrast).")
        sys.exit(1 if require else 0)
    from csmlab.dr.antialias_twin import antialias_torch
    from csmlab.dr.interpolation import interpolate_torch
    from csmlab.dr.raster import rasterize_torch
    from csmlab.dr.texture_twin import texture_torch
    twin = argparse.Namespace(rasterize=rasterize_torch, interpolate=interpolate_torch,
                              antialias=antialias_torch, texture=texture_torch)
    if compiled:  # the numba CPU kernels in place of the twin (texture has no compiled version)
        from csmlab.dr.antialias_compiled import antialias_compiled
        from csmlab.dr.interpolate_compiled import interpolate_compiled
        from csmlab.dr.raster_compiled import rasterize_compiled
        twin = argparse.Namespace(rasterize=rasterize_compiled, interpolate=interpolate_compiled,
                                  antialias=antialias_compiled, texture=texture_torch)
    return nvdr, twin


# ----------------------------------------------------------------------------- scenes

def random_rotations(n, gen):
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, generator=gen, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r, dim1=1, dim2=2)).unsqueeze(1)


def perspective(verts, dist=3.0, fov_deg=40.0, near=1.0, far=10.0):
    """[B,V,3] camera-facing points -> [B,V,4] clip space (camera at z = dist, looking -z)."""
    f = 1.0 / math.tan(math.radians(fov_deg) / 2)
    z = verts[..., 2] - dist
    zc = -(far + near) / (far - near) * z - 2 * far * near / (far - near)
    return torch.stack([verts[..., 0] * f, verts[..., 1] * f, zc, -z], -1)


def sphere_scene(batch, subdiv, gen, bumpy=False):
    from csmlab.geometry.mesh import icosphere
    mesh = icosphere(subdiv)
    v = mesh.verts.double()
    if bumpy:  # radial bumps -> folds that occlude the sphere itself (interior silhouettes)
        k = torch.randn(3, 3, generator=gen, dtype=torch.float64)
        v = v * (1 + 0.25 * torch.sin(3 * v @ k).sum(1, keepdim=True) / 3)
    rot = random_rotations(batch, gen)
    verts = torch.einsum("bij,vj->bvi", rot, v)
    shift = (torch.rand(batch, 1, 3, generator=gen, dtype=torch.float64) - 0.5) * 0.6
    return perspective(verts + shift).float(), mesh.faces.to(torch.int32)


def soup_scene(batch, num_tri, gen):
    centre = torch.rand(batch, num_tri, 1, 2, generator=gen) * 2.2 - 1.1
    size = torch.rand(batch, num_tri, 1, 1, generator=gen) * 0.45 + 0.05
    xy = centre + size * torch.randn(batch, num_tri, 3, 2, generator=gen)
    w = torch.rand(batch, num_tri, 3, 1, generator=gen) * 1.2 + 0.6
    z = torch.rand(batch, num_tri, 3, 1, generator=gen) * 1.8 - 0.9
    pos = torch.cat([xy * w, z * w, w], -1).reshape(batch, 3 * num_tri, 4)
    tri = torch.arange(3 * num_tri, dtype=torch.int32).view(num_tri, 3)
    return pos, tri


# ----------------------------------------------------------------------------- checks

def cosine(a, b):
    a, b = a.flatten().double(), b.flatten().double()
    return (a @ b / (a.norm() * b.norm()).clamp_min(1e-30)).item()


def screen_triangles(pos, tri, ids, b, H, W):
    """Pixel-space x, y [P,3] and z/w [P,3] of triangles ids-1 (ids > 0) of image b."""
    pb = pos[b] if pos.dim() == 3 else pos
    v = pb[tri.long()[(ids - 1).clamp_min(0)]].double()  # [P,3,4]
    x = (v[..., 0] / v[..., 3] + 1) * W / 2 - 0.5
    y = (v[..., 1] / v[..., 3] + 1) * H / 2 - 0.5
    return x, y, v[..., 2] / v[..., 3]


def edge_terms(x, y, px, py):
    """Per edge i (opposite vertex i): signed area term [P,3] and distance (px) to the line."""
    cross, dist = [], []
    for i in range(3):
        j, k = (i + 1) % 3, (i + 2) % 3
        ex, ey = x[:, k] - x[:, j], y[:, k] - y[:, j]
        c = ex * (py - y[:, j]) - ey * (px - x[:, j])
        cross.append(c)
        dist.append(c.abs() / (ex * ex + ey * ey).sqrt().clamp_min(1e-12))
    return torch.stack(cross, 1), torch.stack(dist, 1)


def classify_mismatches(pos, tri, rast_a, rast_b):
    """(mismatches, explained by ties): an id mismatch is a tie when the pixel centre lies
    within TIE_PX of an edge of either triangle, or when the two triangles' depth order
    changes within TIE_PX of the pixel centre (intersecting or coplanar triangles)."""
    B, H, W, _ = rast_a.shape
    ida, idb = rast_a[..., 3].long(), rast_b[..., 3].long()
    bad = (ida != idb).nonzero()
    explained = 0
    offsets = [(0.0, 0.0), (TIE_PX, 0.0), (-TIE_PX, 0.0), (0.0, TIE_PX), (0.0, -TIE_PX)]
    for b in range(B):
        sel = bad[bad[:, 0] == b]
        if not len(sel):
            continue
        py, px = sel[:, 1].double(), sel[:, 2].double()
        tie = torch.zeros(len(sel), dtype=torch.bool, device=sel.device)
        depth_sign = []
        for ids in (ida[b, sel[:, 1], sel[:, 2]], idb[b, sel[:, 1], sel[:, 2]]):
            x, y, zw = screen_triangles(pos, tri, ids, b, H, W)
            _, dist = edge_terms(x, y, px, py)
            tie |= (ids > 0) & (dist.min(1).values < TIE_PX)
            zs = []
            for dx, dy in offsets:  # z/w is affine in screen space: evaluate around the centre
                cross, _ = edge_terms(x, y, px + dx, py + dy)
                lam = cross / cross.sum(1, keepdim=True)
                zs.append(torch.where(ids > 0, (lam * zw).sum(1), torch.full_like(px, float("inf"))))
            depth_sign.append(torch.stack(zs, 1))
        order = torch.sign(depth_sign[0] - depth_sign[1])
        tie |= (order.min(1).values != order.max(1).values) | (order == 0).any(1)
        explained += int(tie.sum())
    return len(bad), explained


def dilate(mask):
    m = mask.float().unsqueeze(1)
    return (torch.nn.functional.max_pool2d(m, 3, 1, 1) > 0).squeeze(1)


def _sync():
    if torch.device(DEVICE).type == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats):
    fn()  # warm-up (and lazy plugin build for nvdiffrast)
    _sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return sorted(times)[len(times) // 2]


def run_case(name, pos, tri, ranges, nvdr, twin, ctx, args, gen, report):
    H = W = args.res
    dev = torch.device(DEVICE)
    pos, tri = pos.to(dev).contiguous(), tri.to(dev).contiguous()
    tdev = torch.device(args.twin_device) if args.twin_device != "same" else dev
    tpos, ttri = pos.to(tdev), tri.to(tdev)
    tranges = ranges
    batch = pos.shape[0] if ranges is None else ranges.shape[0]
    res = {"case": name, "batch": batch, "triangles": tri.shape[0]}

    rast_nv, _ = nvdr.rasterize(ctx, pos, tri, resolution=[H, W], ranges=ranges)
    rast_tw, _ = twin.rasterize(tpos, ttri, (H, W), ranges=tranges)
    rast_tw = rast_tw.to(dev)
    total = rast_nv[..., 3].numel()
    n_bad, n_tie = classify_mismatches(pos, tri, rast_nv, rast_tw)
    same = (rast_nv[..., 3] == rast_tw[..., 3]) & (rast_nv[..., 3] > 0)
    res["id_mismatch_pct"] = 100.0 * n_bad / total
    res["id_mismatch_ties_pct"] = 100.0 * n_tie / total
    res["id_unexplained"] = n_bad - n_tie
    res["bary_max_err"] = (rast_nv[..., :2] - rast_tw[..., :2]).abs()[same].max().item() if same.any() else 0.0
    res["zw_max_err"] = (rast_nv[..., 2] - rast_tw[..., 2]).abs()[same].max().item() if same.any() else 0.0

    # Antialias alone: both fed nvdiffrast's rast and the same colour.
    vcol = torch.rand(pos.shape[-2], 3, generator=gen).to(dev)
    color, _ = nvdr.interpolate(vcol, rast_nv, tri)
    weights = torch.randn(rast_nv.shape[:3] + (3,), generator=gen).to(dev)
    p_nv = pos.clone().requires_grad_(True)
    aa_nv = nvdr.antialias(color, rast_nv, p_nv, tri)
    (aa_nv * weights).sum().backward()
    p_tw = tpos.clone().requires_grad_(True)
    aa_tw = twin.antialias(color.to(tdev), rast_nv.to(tdev), p_tw, ttri)
    (aa_tw * weights.to(tdev)).sum().backward()
    diff = (aa_nv - aa_tw.to(dev)).abs()
    res["aa_only_max_err"] = diff.max().item()
    res["aa_only_pct_over_1e-3"] = 100.0 * (diff.amax(-1) > 1e-3).float().mean().item()
    res["aa_only_grad_cos"] = cosine(p_nv.grad, p_tw.grad.to(dev))

    # End to end: rasterize -> interpolate -> antialias, gradients wrt pos.
    def chain(backend, p, t, dev_):
        r, _ = backend.rasterize(*((ctx,) if backend is nvdr else ()), p, t, [H, W], ranges=ranges)
        c, _ = backend.interpolate(vcol.to(dev_), r, t)
        return backend.antialias(c, r, p, t)

    p_nv = pos.clone().requires_grad_(True)
    img_nv = chain(nvdr, p_nv, tri, dev)
    (img_nv * weights).sum().backward()
    p_tw = tpos.clone().requires_grad_(True)
    img_tw = chain(twin, p_tw, ttri, tdev)
    (img_tw * weights.to(tdev)).sum().backward()
    keep = ~dilate(rast_nv[..., 3] != rast_tw[..., 3])
    res["e2e_max_err_excl_mismatch"] = (img_nv - img_tw.to(dev)).abs().amax(-1)[keep].max().item()
    res["e2e_grad_cos"] = cosine(p_nv.grad, p_tw.grad.to(dev))

    # Timings (forward + backward of the chain, and forward of each op).
    def fwd_bwd(backend, p, t, dev_):
        q = p.detach().clone().requires_grad_(True)
        (chain(backend, q, t, dev_) * weights.to(dev_)).sum().backward()

    reps = args.repeats
    res["ms_nv_rasterize"] = timed(lambda: nvdr.rasterize(ctx, pos, tri, [H, W], ranges=ranges), reps)
    res["ms_tw_rasterize"] = timed(lambda: twin.rasterize(tpos, ttri, (H, W), ranges=tranges), reps)
    rast_tw_dev = rast_nv.to(tdev)
    res["ms_nv_antialias"] = timed(lambda: nvdr.antialias(color, rast_nv, pos, tri), reps)
    res["ms_tw_antialias"] = timed(lambda: twin.antialias(color.to(tdev), rast_tw_dev, tpos, ttri), reps)
    res["ms_nv_chain_fwd_bwd"] = timed(lambda: fwd_bwd(nvdr, pos, tri, dev), reps)
    res["ms_tw_chain_fwd_bwd"] = timed(lambda: fwd_bwd(twin, tpos, ttri, tdev), reps)

    ok = (res["id_unexplained"] == 0 and res["bary_max_err"] < 1e-4
          and res["aa_only_pct_over_1e-3"] < 0.01 and res["aa_only_grad_cos"] > 0.99
          and res["e2e_max_err_excl_mismatch"] < 1e-3 and res["e2e_grad_cos"] > 0.99)
    res["pass"] = bool(ok)
    report.append(res)


def run_texture(nvdr, twin, args, gen, report):
    dev = torch.device(DEVICE)
    tdev = torch.device(args.twin_device) if args.twin_device != "same" else dev
    B, H, W = args.batch, args.res, args.res
    tex = torch.rand(1, 64, 48, 3, generator=gen).to(dev)
    uv = (torch.rand(B, H, W, 2, generator=gen) * 1.6 - 0.3).to(dev)
    weights = torch.randn(B, H, W, 3, generator=gen).to(dev)
    for filt in ("nearest", "linear"):
        for bnd in ("wrap", "clamp", "zero"):
            res = {"case": f"texture {filt}/{bnd}"}
            outs, grads = [], []
            for fn, d in ((nvdr.texture, dev), (twin.texture, tdev)):
                t = tex.to(d).clone().requires_grad_(True)
                u = uv.to(d).clone().requires_grad_(filt == "linear")
                out = fn(t, u, filter_mode=filt, boundary_mode=bnd)
                (out * weights.to(d)).sum().backward()
                outs.append(out.detach().to(dev))
                grads.append((t.grad.to(dev), None if u.grad is None else u.grad.to(dev)))
            res["max_err"] = (outs[0] - outs[1]).abs().max().item()
            res["tex_grad_cos"] = cosine(grads[0][0], grads[1][0])
            if filt == "linear":
                res["uv_grad_cos"] = cosine(grads[0][1], grads[1][1])
            for key, fn, d in (("ms_nv", nvdr.texture, dev), ("ms_tw", twin.texture, tdev)):
                t, u = tex.to(d), uv.to(d)
                res[key] = timed(lambda fn=fn, t=t, u=u, f=filt, b=bnd: fn(t, u, filter_mode=f, boundary_mode=b),
                                 args.repeats)
            res["pass"] = bool(res["max_err"] < 1e-5 and res["tex_grad_cos"] > 0.999
                               and res.get("uv_grad_cos", 1.0) > 0.999)
            report.append(res)


def _texture_case(nvdr, twin, name, tex, uv, extra, weights, dev, tdev, report):
    """One mipmap / cube texture case: values, gradients to every float input, timings."""
    res = {"case": name}
    outs, grads = [], []
    for fn, d in ((nvdr.texture, dev), (twin.texture, tdev)):
        t, u = tex.to(d).clone().requires_grad_(True), uv.to(d).clone().requires_grad_(True)
        kw = {k: (v.to(d).clone().requires_grad_(True) if isinstance(v, torch.Tensor) else v)
              for k, v in extra.items()}
        out = fn(t, u, **kw)
        (out * weights.to(d)).sum().backward()
        outs.append(out.detach().to(dev))
        grads.append([x.grad for x in (t, u, *kw.values()) if isinstance(x, torch.Tensor)])
    res["max_err"] = (outs[0] - outs[1]).abs().max().item()
    cos = [cosine(a, b.to(dev)) for a, b in zip(*grads) if a is not None and b is not None and a.any()]
    res["min_grad_cos"] = min(cos) if cos else 1.0
    t_tw, u_tw = tex.to(tdev), uv.to(tdev)
    kw_tw = {k: (v.to(tdev) if isinstance(v, torch.Tensor) else v) for k, v in extra.items()}
    res["ms_tw"] = timed(lambda: twin.texture(t_tw, u_tw, **kw_tw), 3)
    res["pass"] = bool(res["max_err"] < 1e-4 and res["min_grad_cos"] > 0.99)
    report.append(res)


def run_texture_modes(nvdr, twin, args, gen, report):
    """Mipmapped 2-D textures, cube maps (also mipmapped) and DepthPeeler."""
    dev = torch.device(DEVICE)
    tdev = torch.device(args.twin_device) if args.twin_device != "same" else dev
    B, H, W = args.batch, args.res, args.res
    uv = torch.rand(B, H, W, 2, generator=gen) * 1.6 - 0.3
    uv_da = torch.randn(B, H, W, 4, generator=gen) * torch.exp2(torch.rand(B, H, W, 1, generator=gen) * 8 - 8)
    bias = torch.rand(B, H, W, generator=gen) - 0.5
    weights = torch.randn(B, H, W, 3, generator=gen)
    tex = torch.rand(1, 128, 64, 3, generator=gen)
    for filt in ("linear-mipmap-linear", "linear-mipmap-nearest"):
        for bnd in ("wrap", "clamp", "zero"):
            _texture_case(nvdr, twin, f"texture {filt}/{bnd}", tex, uv,
                          dict(uv_da=uv_da, mip_level_bias=bias, filter_mode=filt, boundary_mode=bnd),
                          weights, dev, tdev, report)
    _texture_case(nvdr, twin, "texture bias only, max_mip_level=3", tex, uv,
                  dict(mip_level_bias=bias * 6 + 2, max_mip_level=3), weights, dev, tdev, report)
    cube = torch.rand(1, 6, 32, 32, 3, generator=gen)
    dirs = torch.randn(B, H, W, 3, generator=gen)
    dirs_da = torch.randn(B, H, W, 6, generator=gen) * 0.02
    for filt in ("nearest", "linear", "linear-mipmap-linear", "linear-mipmap-nearest"):
        extra = dict(filter_mode=filt, boundary_mode="cube")
        if "mipmap" in filt:
            extra.update(uv_da=dirs_da, mip_level_bias=bias)
        _texture_case(nvdr, twin, f"texture cube {filt}", cube, dirs, extra, weights, dev, tdev, report)
    # DepthPeeler: nvdiffrast's own against the twin's (a context without nvdiffrast).
    from csmlab.dr import RasterizeContext
    from csmlab.dr.peel import DepthPeeler
    pos, tri = soup_scene(2, 60, gen)
    pos, tri = pos.to(dev), tri.to(dev)
    with nvdr.DepthPeeler(nvdr.RasterizeCudaContext(), pos, tri, [H, W]) as p_nv, \
            DepthPeeler(RasterizeContext("cpu"), pos.to(tdev), tri.to(tdev), (H, W)) as p_tw:
        for layer in range(4):
            r_nv, _ = p_nv.rasterize_next_layer()
            r_tw, _ = p_tw.rasterize_next_layer()
            r_tw = r_tw.to(dev)
            same = r_nv[..., 3] == r_tw[..., 3]
            drawn = same & (r_nv[..., 3] > 0)
            res = {"case": f"DepthPeeler layer {layer}", "id_agree": same.float().mean().item(),
                   "bary_max_err": (r_nv[..., :2] - r_tw[..., :2]).abs()[drawn].max().item()
                   if drawn.any() else 0.0}
            res["pass"] = bool(res["id_agree"] >= 0.99 and res["bary_max_err"] < 1e-4)
            report.append(res)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--res", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--twin-device", default="same", choices=["same", "cpu"],
                    help="run the twin on the same CUDA tensors (default) or on CPU copies")
    ap.add_argument("--compiled", action="store_true",
                    help="compare csmlab.dr's compiled CPU kernels (numba) instead of the twin "
                         "(implies --twin-device cpu)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--require", action="store_true", help="exit 1 (not 0) when CUDA/nvdiffrast is missing")
    args = ap.parse_args(argv)

    if args.compiled:
        args.twin_device = "cpu"
    nvdr, twin = load_backends(args.require, args.compiled)
    gen = torch.Generator().manual_seed(args.seed)
    ctx = nvdr.RasterizeCudaContext()
    report = []
    cases = [
        ("soup 200 tris", *soup_scene(args.batch, 200, gen)),
        ("icosphere(2)", *sphere_scene(args.batch, 2, gen)),
        ("icosphere(4)", *sphere_scene(args.batch, 4, gen)),
        ("bumpy icosphere(3)", *sphere_scene(args.batch, 3, gen, bumpy=True)),
    ]
    for name, pos, tri in cases:
        run_case(name, pos, tri, None, nvdr, twin, ctx, args, gen, report)
    # Range mode: two images drawn from one vertex array, each from its own triangle range.
    pos, tri = soup_scene(1, 300, gen)
    ranges = torch.tensor([[0, 120], [120, 180]], dtype=torch.int32)  # CPU, as nvdiffrast wants
    run_case("soup range mode", pos[0], tri, ranges, nvdr, twin, ctx, args, gen, report)
    run_texture(nvdr, twin, args, gen, report)
    run_texture_modes(nvdr, twin, args, gen, report)

    name = torch.cuda.get_device_name() if torch.device(DEVICE).type == "cuda" else DEVICE
    print(f"device: {name}, res {args.res}, batch {args.batch}, "
          f"twin on {args.twin_device}")
    for res in report:
        items = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in res.items() if k not in ("case", "pass"))
        print(f"[{'PASS' if res['pass'] else 'FAIL'}] {res['case']}: {items}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    failed = [r["case"] for r in report if not r["pass"]]
    print("parity_nvdiffrast:", "all checks passed" if not failed else f"FAILED: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
