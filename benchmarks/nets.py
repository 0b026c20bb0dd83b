"""Forward speed of csmlab.nets backbones on the CPU: ResNet-18 and DINOv2 ViT-S/14, 224x224, batch 8, 1 thread.

    python benchmarks/nets.py [--batch 8] [--size 224] [--threads 1] [--repeat 3] [--nets resnet18 dinov2_vits14]

Weights are random (no download: speed does not depend on them). Each network
runs once to warm up, then ``--repeat`` timed forwards under ``torch.no_grad``;
the fastest is kept. Printed per network: seconds per batch (wall and process
CPU), images per second, the multiply-accumulates counted on the run
(convolutions, linear layers, attention products), and the GMAC/s reached as a
fraction of a 1024x1024 float32 matmul timed in the same run (the reference).
On a shared machine the wall-clock time depends on the load; the CPU time is
what one uncontended core would take.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn

from csmlab.nets import NETS
from csmlab.nets.vit import Attention


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward: Conv2d and Linear layers, plus q k^T and attn v."""
    total = 0

    def conv(m, inp, out):
        nonlocal total
        total += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear(m, inp, out):
        nonlocal total
        total += out.numel() * m.in_features

    def attention(m, inp, out):
        nonlocal total
        b, n, d = inp[0].shape
        total += 2 * b * n * n * d

    hooks = []
    for m in model.modules():
        fn = conv if isinstance(m, nn.Conv2d) else linear if isinstance(m, nn.Linear) else \
            attention if isinstance(m, Attention) else None
        if fn is not None:
            hooks.append(m.register_forward_hook(fn))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return total


def time_forward(model: nn.Module, x: torch.Tensor, repeat: int) -> tuple[float, float]:
    """Fastest (wall, CPU) seconds of ``repeat`` forwards, after one warm-up."""
    best = (float("inf"), float("inf"))
    with torch.no_grad():
        model(x)
        for _ in range(repeat):
            start, cpu = time.perf_counter(), time.process_time()
            model(x)
            best = min(best, (time.perf_counter() - start, time.process_time() - cpu))
    return best


def matmul_gmacs(repeat: int, n: int = 1024) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return n ** 3 / best / 1e9


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224, help="image side (a multiple of 14 for the ViTs)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--nets", nargs="+", default=["resnet18", "dinov2_vits14"], choices=sorted(NETS))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size)
    ref = matmul_gmacs(args.repeat * 3)
    print(f"threads {args.threads}, batch {args.batch}, {args.size}x{args.size}; reference: 1024^3 float32 matmul "
          f"{ref:.1f} GMAC/s")
    for name in args.nets:
        model = NETS[name].build().eval()
        macs = count_macs(model, x)
        wall, cpu = time_forward(model, x, args.repeat)
        rate = macs / wall / 1e9
        print(f"{name:14s} {wall:6.3f} s/batch (CPU {cpu:6.3f} s)  {args.batch / wall:6.1f} img/s  "
              f"{macs / args.batch / 1e9:.3f} GMAC/img  {rate:6.1f} GMAC/s = {rate / ref:.2f} x matmul")


if __name__ == "__main__":
    main()
