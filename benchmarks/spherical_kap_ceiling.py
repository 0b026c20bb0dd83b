"""How much KAP can the paper's fusion add? The true sphere map fused with the frozen features, per token grid.

    python benchmarks/spherical_kap_ceiling.py [--checkpoint notebooks/assets/spherical_medium.pt] [--strides 4 2 1]

Issue 14 asks for fused KAP@0.1 >= raw features + 0.10 on rung B. This script measures the
ceiling of that comparison: it replaces the learned sphere by the *ground-truth* one (the
template point of each token, normalised; :func:`csmlab.methods.spherical.evaluate.true_sphere`)
and scores raw features, the true sphere alone and the paper's fusion
``0.8 * features + 0.2 * sphere`` on the same pairs of the shared split.

Feature sources: (a) the committed label-free feature net, and (b) the stand-in. The net's
features come at stride 4 (16x16 tokens at 64^2); finer grids upsample them bilinearly, so a
finer grid costs no retraining. Stride 2 gives 32x32 tokens, the paper's token count (DINOv2
B/14 at 448^2). The stand-in is computed at each stride directly.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from csmlab.methods.spherical.evaluate import method_table, score_pairs, true_sphere
from csmlab.methods.spherical.experiment import dataset_for, evaluation_batch, features_of
from csmlab.methods.spherical.features import FeatureNet, encode
from csmlab.methods.spherical.pretrained import load_pretrained
from csmlab.metrics import sample_pairs

COLUMNS = ("pck@0.1", "kap@0.1", "lr_confusion")


def ceiling_rows(cfg: dict, batch: dict, net: FeatureNet | None, stride: int) -> dict:
    """{method: metrics} for raw features, the true sphere and their 0.8/0.2 fusion at one stride."""
    cfg = {**cfg, "stride": stride}
    if cfg["source"] == "net":
        feats = encode(net, batch["image"])
        if stride != FeatureNet.stride:
            feats = F.interpolate(feats, scale_factor=FeatureNet.stride / stride, mode="bilinear", align_corners=False)
    else:
        feats = features_of(cfg, batch, seed_offset=1)
    data = dataset_for(cfg, batch, feats)
    methods = method_table(data["feats"], true_sphere(data), cfg["fuse"])
    rows = score_pairs(methods, data, sample_pairs(feats.shape[0], cfg["n_pairs"], cfg["seed"]), cfg["alphas"])
    return {"raw features": rows["raw features"], "true sphere": rows["sphere"],
            "fused with true sphere": rows["fused"]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default="notebooks/assets/spherical_medium.pt")
    ap.add_argument("--strides", type=int, nargs="+", default=[4, 2, 1])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    state = load_pretrained(args.checkpoint)
    cfg = state["cfg"]
    batch = evaluation_batch(cfg)
    print(f"rung {cfg['rung']}, {cfg['n_eval']} birds, {cfg['n_pairs']} pairs, fusion {cfg['fuse']} / "
          f"{1 - cfg['fuse']:.1f}")
    print(f"{'source':8s} {'stride':>6s} {'tokens':>7s}  {'method':24s} " + " ".join(f"{c:>12s}" for c in COLUMNS)
          + f" {'KAP gain':>9s}")
    for source in ("net", "standin"):
        for stride in args.strides:
            rows = ceiling_rows({**cfg, "source": source}, batch, state["net"], stride)
            side = cfg["resolution"] // stride
            raw_kap = rows["raw features"]["kap@0.1"]
            for name, row in rows.items():
                print(f"{source:8s} {stride:6d} {side:>3d}x{side:<3d}  {name:24s} "
                      + " ".join(f"{row[c]:12.3f}" for c in COLUMNS) + f" {row['kap@0.1'] - raw_kap:+9.3f}")


if __name__ == "__main__":
    main()
