"""Speed of the synthetic birds (and faces): images per second on 2 CPU threads.

    python benchmarks/synthetic.py [--n 512] [--threads 2] [--resolutions 64 128] [--faces] [--repeat 3]

It times what ``make_dataset`` does per image (scene sampling, posing, one
rasterization, interpolation, texturing, antialiasing, keypoint visibility,
conversion to the storage arrays), after one warm-up chunk, and splits the time
between the rasterizer (``csmlab.dr``) and the rest. The target is >= 200
birds/s at 64 px on 2 cores. On a shared machine the wall-clock rate depends on
the load; ``--repeat`` keeps the fastest run, and the rate per CPU-second (the
process's CPU time, all threads) is printed as well: it is what one uncontended
core would give.
"""

from __future__ import annotations

import argparse
import time

import torch

from csmlab import dr
from csmlab.data.synthetic import dataset, get_category


class _Timed:
    """Wraps a function and accumulates the seconds spent in it."""

    def __init__(self, fn):
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def measure(category: str, n: int, resolution: int) -> dict:
    get_category(category)                                   # build the index outside the timing
    dataset.generate_arrays(category, dataset.chunk_size(category, resolution), resolution, seed=999,
                            progress=False)  # warm-up
    raster, antialias = _Timed(dr.rasterize), _Timed(dr.antialias)
    dr.rasterize, dr.antialias = raster, antialias
    try:
        start, cpu_start = time.perf_counter(), time.process_time()
        dataset.generate_arrays(category, n, resolution, seed=0, progress=False)
        total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    finally:
        dr.rasterize, dr.antialias = raster.fn, antialias.fn
    return {"category": category, "resolution": resolution, "images_per_s": n / total, "seconds": total,
            "images_per_cpu_s": n / cpu,
            "rasterize_s": raster.seconds, "antialias_s": antialias.seconds}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="images per measurement")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (the course machine: 2)")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--faces", action="store_true", help="also time the faces")
    parser.add_argument("--repeat", type=int, default=1,
                        help="report the fastest of this many runs (a shared machine's load only slows runs down)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, n = {args.n} per measurement")
    categories = ["birds"] + (["faces"] if args.faces else [])
    for category in categories:
        for res in args.resolutions:
            r = max((measure(category, args.n, res) for _ in range(args.repeat)), key=lambda m: m["images_per_s"])
            rest = r["seconds"] - r["rasterize_s"] - r["antialias_s"]
            print(f"{category:5s} {res:4d} px: {r['images_per_s']:7.1f} images/s   "
                  f"(rasterize {r['rasterize_s']:.2f} s, antialias {r['antialias_s']:.2f} s, "
                  f"everything else {rest:.2f} s, total {r['seconds']:.2f} s; "
                  f"{r['images_per_cpu_s']:.1f} images per CPU-second)")


if __name__ == "__main__":
    main()
