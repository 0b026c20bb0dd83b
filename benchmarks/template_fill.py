"""Peak memory and time of the nearest-covered-pixel fill in ``csm.template_points_under`` (issue 20).

    python benchmarks/template_fill.py --impl edt      # the library's (scipy distance transform, O(HW))
    python benchmarks/template_fill.py --impl cdist    # the former all-pairs version, O((HW)^2), for comparison

Each run is one process, so its peak RSS (``ru_maxrss``) is the fill's own. The mask is the
rendered bird template at a typical CSM camera, at ``--res`` (default 256, the full recipe).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch


def cdist_fill(covered: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The former fill: argmin over the distances of every pixel to every covered pixel."""
    H, W = covered.shape
    rows, cols = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                                indexing="ij")
    pixels = torch.stack([rows, cols], -1).reshape(-1, 2)
    hit = covered.reshape(-1)
    nearest = torch.nonzero(hit)[:, 0][torch.cdist(pixels, pixels[hit]).argmin(dim=1)]
    return (nearest // W).reshape(H, W), (nearest % W).reshape(H, W)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=["edt", "cdist"], default="edt")
    parser.add_argument("--res", type=int, default=256)
    parser.add_argument("--scale", type=float, default=1.2, help="camera scale (1.2: the bird covers about 10 %%)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from csmlab.data.synthetic import get_category
    from csmlab.geometry import ortho_clip, quaternion_to_matrix
    from csmlab.methods.csm.evaluate import nearest_covered_pixel
    from csmlab.methods.csm.network import base_quaternions
    from csmlab.render import rasterize_mesh

    template = get_category("birds").template
    X = template.verts[None].float()
    r = rasterize_mesh(ortho_clip(X, torch.tensor([args.scale]), quaternion_to_matrix(base_quaternions(1)),
                                  torch.zeros(1, 2)), template.faces, args.res)
    covered = r.mask[0, 0] > 0.5
    nearest_covered_pixel(covered[:8, :8].numpy() | True)   # imports scipy outside the timed part
    cdist_fill(covered[:8, :8] | True)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if args.impl == "edt":
        rows, cols = nearest_covered_pixel(covered.numpy())
    else:
        rows, cols = cdist_fill(covered)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{args.impl} at {args.res}^2 ({float(covered.float().mean()):.1%} covered): {seconds:.3f} s, "
          f"peak RSS {peak / 2**20:.2f} GB (+{(peak - base) / 2**20:.2f} GB over the set-up)")


if __name__ == "__main__":
    main()
