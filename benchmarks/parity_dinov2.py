"""csmlab.nets' DINOv2 ViT against the official DINOv2 code, on the same random weights (no download).

    git clone https://github.com/facebookresearch/dinov2 /tmp/dinov2
    python benchmarks/parity_dinov2.py --dinov2-src /tmp/dinov2 [--arch vit_small|vit_base]

Builds the official ``DinoVisionTransformer`` as ``dinov2/hub/backbones.py`` does
(518 px, patch 14, layer scale 1.0, MLP, unchunked blocks, interpolate_offset 0.1),
copies one random state dict into both models (``strict=True`` both ways) and
prints the largest difference of the class, pre-norm and normed patch tokens at
224x224, 448x448, 224x448 and 518x518 (the position-embedding interpolation is
exercised by every size but 518). Without ``--dinov2-src`` it says so and exits.
"""

from __future__ import annotations

import argparse
import sys
import warnings

import torch

from csmlab.nets import dinov2_vitb14, dinov2_vits14

SIZES = ((224, 224), (448, 448), (224, 448), (518, 518))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dinov2-src", default=None, help="a checkout of facebookresearch/dinov2")
    parser.add_argument("--arch", default="vit_small", choices=["vit_small", "vit_base"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.dinov2_src is None:
        print("parity_dinov2: skipped (pass --dinov2-src PATH, a clone of facebookresearch/dinov2)")
        return 0
    torch.set_num_threads(args.threads)
    sys.path.insert(0, args.dinov2_src)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # "xFormers is not available": the official code falls back to PyTorch
        from dinov2.models import vision_transformer as vits
    official = getattr(vits, args.arch)(img_size=518, patch_size=14, init_values=1.0, ffn_layer="mlp",
                                        block_chunks=0, num_register_tokens=0, interpolate_antialias=False,
                                        interpolate_offset=0.1).eval()
    ours = (dinov2_vits14 if args.arch == "vit_small" else dinov2_vitb14)().eval()
    torch.manual_seed(0)
    state = {k: torch.randn_like(v) * 0.05 for k, v in official.state_dict().items()}
    official.load_state_dict(state, strict=True)
    ours.load_state_dict(state, strict=True)
    worst = 0.0
    for h, w in SIZES:
        x = torch.randn(2, 3, h, w)
        with torch.no_grad():
            a, b = official.forward_features(x), ours(x)
        diffs = {k: float((a[k] - b[k]).abs().max()) for k in ("x_norm_clstoken", "x_prenorm", "x_norm_patchtokens")}
        worst = max(worst, *diffs.values())
        print(f"{h}x{w}: patch tokens {tuple(b['x_norm_patchtokens'].shape)}; max |official - ours|: "
              + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
    print(f"{args.arch}: largest difference {worst:.1e}")
    return 0 if worst < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
