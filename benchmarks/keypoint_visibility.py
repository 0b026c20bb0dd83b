"""The annotator rule for keypoints, measured: distance to the drawn bird and what the rule hides.

    python benchmarks/keypoint_visibility.py [--n 256] [--seed 7] [--resolutions 32 64 128] [--rung B]

For each resolution it renders ``n`` birds (default priors, or a benchmark rung's)
and reports:

- the largest distance (px) from a visible keypoint to the nearest foreground pixel
  centre, against every foreground pixel (the acceptance bar is 1 px);
- per keypoint name, the share of keypoints that pass the depth test and are in the
  image (what was visible before the rule) and the share of those that the
  on-object rule now hides.
"""

from __future__ import annotations

import argparse

import torch

from csmlab.data.synthetic import get_category, rung_priors
from csmlab.data.synthetic.birds_pose import pose_keypoints, pose_vertices
from csmlab.data.synthetic.birds_render import VISIBILITY_EPS, render_scenes
from csmlab.data.synthetic.birds_scenes import sample_scenes
from csmlab.data.synthetic.meshops import surface_visibility
from csmlab.geometry import ndc_to_pixel, ortho_depth, ortho_project, quaternion_to_matrix


def nearest_foreground_distance(mask: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """[B,K] distance (px) from each point to the nearest foreground pixel centre of mask [B,H,W], brute force."""
    B, H, W = mask.shape
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    centres = torch.stack([xx, yy], -1).reshape(-1, 2).float() + 0.5
    out = []
    for b in range(B):
        fg = centres[mask[b].flatten() > 0]
        out.append(torch.cdist(xy[b], fg).min(-1).values if len(fg) else torch.full(xy.shape[1:2], float("inf")))
    return torch.stack(out)


def measure(n: int, seed: int, resolution: int, priors: dict) -> dict:
    cat = get_category("birds")
    scenes = sample_scenes(cat, n, seed, **priors)
    out = render_scenes(cat, scenes, resolution)
    verts = pose_vertices(cat, scenes["deform"], scenes["articulation"])
    R = quaternion_to_matrix(scenes["quat"])
    kp3d = pose_keypoints(cat, scenes["deform"], scenes["articulation"], verts)
    ndc = ortho_project(kp3d, scenes["scale"], R, scenes["trans"])
    xy = ndc_to_pixel(ndc, resolution, resolution)
    inside = ((xy >= 0) & (xy < resolution)).all(-1)
    depth_ok = surface_visibility(ndc, ortho_depth(kp3d, R), ortho_project(verts, scenes["scale"], R, scenes["trans"]),
                                  ortho_depth(verts, R), cat.template.faces, VISIBILITY_EPS)
    before = inside & depth_ok
    visible = out["keypoints"][..., 2] > 0
    dist = nearest_foreground_distance(out["mask"][:, 0], out["keypoints"][..., :2])
    hidden = before & ~visible
    return {"max_distance_px": float(dist[visible].max()), "visible": int(visible.sum()),
            "visible_before": int(before.sum()),
            "per_name": {name: (float(before[:, k].float().mean()),
                                float(hidden[:, k].sum() / before[:, k].sum().clamp_min(1)))
                         for k, name in enumerate(cat.keypoint_names)}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--rung", default=None, help="A, B or C: that rung's priors (default: views/articulation full)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    priors = rung_priors(args.rung) if args.rung else {}
    print(f"{args.n} birds, seed {args.seed}, priors {priors or 'full/full'}")
    for res in args.resolutions:
        m = measure(args.n, args.seed, res, priors)
        print(f"\n{res}x{res}: {m['visible']} visible keypoints ({m['visible_before']} before the on-object rule); "
              f"max distance to a foreground pixel centre {m['max_distance_px']:.3f} px")
        print(f"  {'keypoint':16s} depth-visible  hidden by the rule")
        for name, (before, hidden) in m["per_name"].items():
            print(f"  {name:16s} {before:13.2f}  {100 * hidden:6.1f}%")


if __name__ == "__main__":
    main()
