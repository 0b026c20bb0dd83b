"""ARAP energy speed: the 642-vertex bird, batch 64, forward + backward on one CPU thread.

    python benchmarks/arap_speed.py

Prints the median of a few repeats for each method (after one untimed call, which
compiles or loads the numba kernels) and the system load: the figures are only
meaningful on a quiet machine, their ratios within one run on any. The shapes are the
benchmark birds' own deformations and articulations.
"""

from __future__ import annotations

import os
import statistics
import time

import torch


def main() -> None:
    from csmlab.data.synthetic import get_category, pose_vertices, sample_bird_scenes
    from csmlab.geometry import arap_energy, laplacian_weights

    torch.set_num_threads(1)
    cat = get_category("birds")
    T, F = cat.template.verts.float(), cat.template.faces
    scenes = sample_bird_scenes(cat, 64, 0)
    V = pose_vertices(cat, scenes["deform"], scenes["articulation"]).float()
    cot = laplacian_weights(T[None], F)
    for method in ("compiled", "newton", "svd"):
        arap_energy(V.clone().requires_grad_(True), T, F, cot, method=method).sum().backward()  # compile/warm up
        times = []
        for _ in range(5):
            x = V.clone().requires_grad_(True)
            t0 = time.perf_counter()
            arap_energy(x, T, F, cot, method=method).sum().backward()
            times.append(1e3 * (time.perf_counter() - t0))
        print(f"{method:7s} forward+backward: median {statistics.median(times):.1f} ms "
              f"(min {min(times):.1f}) over 5, batch 64 x {T.shape[0]} vertices, 1 thread")
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
