"""Why the learned sphere does not halve the left/right confusion: the paper's objective, scored on the truth.

    python benchmarks/spherical_lr_diagnostics.py [--checkpoint notebooks/assets/spherical_medium.pt]

Three measurements on rung B, each printed as a table:

1. **The terms on fixed sphere maps** (training birds, the stand-in's token masks): the true
   sphere (template points, normalised), its global mirror, the two *folded* maps (x -> |x| and
   x -> -|x|: a left and a right wing on one point) and each committed learned map. Unweighted
   orientation (``o_thresh`` 1, and the sign alone: threshold 0, p 1), relative distance
   (margin 0.5) and viewpoint terms, and the weighted sum of the three. It answers: does
   each term tell the truth from its mirror and from a fold, and does the paper's objective prefer
   the truth to what was learned? (The prototype term needs a prototype trained on each map, so it
   is left out; it is >= 0, so a learned map whose three terms already cost less than the truth's
   is preferred whatever the truth's prototype costs, up to the learned map's own prototype loss.)
2. **Confusion by side** (held-out split): source tokens on the side their image mostly shows
   (near) and on the other side (far: a far wing peeking out), for raw features, each learned
   sphere, its fusion, and the true sphere with and without fusion.
3. **How precise must the sphere be?** The true sphere, rotated per image or perturbed per token
   by random angles, fused 0.8/0.2 with the features.
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F

from csmlab.geometry import axis_angle_to_matrix
from csmlab.methods.spherical.evaluate import lr_confusion_counts, method_table, score_pairs, true_sphere
from csmlab.methods.spherical.experiment import dataset_for, evaluation_batch, features_of, training_batch
from csmlab.methods.spherical.fit import sphere_tokens
from csmlab.methods.spherical.losses import orientation_loss, relative_distance_loss, viewpoint_loss
from csmlab.methods.spherical.pretrained import load_pretrained
from csmlab.metrics import sample_pairs


def loss_terms(sph: torch.Tensor, bins: torch.Tensor, grid: tuple[int, int], cfg: dict, n_triplets: int = 64) -> dict:
    """Unweighted orientation / sign-only orientation / distance / viewpoint terms, same triplets for every map."""
    def g():
        return torch.Generator().manual_seed(0)
    o = float(orientation_loss(sph, grid, n_triplets, cfg["o_thresh"], generator=g()))
    sign = float(orientation_loss(sph, grid, n_triplets, 0.0, p=1, generator=g()))
    d = float(relative_distance_loss(sph, grid, n_triplets, cfg["rd_margin"], generator=g()))
    v = float(viewpoint_loss(sph, bins, cfg["vp_bins"]))
    w = cfg["w_orientation"] * o + cfg["w_distance"] * d + cfg["w_viewpoint"] * v
    return {"orient": o, "sign": sign, "dist": d, "view": v, "weighted": w}


def side_confusion(parts, data: dict, pairs: list) -> dict:
    """Left/right confusion of source tokens on their image's majority (near) and minority (far) side."""
    out = {"near": [0, 0], "far": [0, 0]}
    for s, t in pairs:
        xs, fg = data["surface"][s][:, 0], data["token_mask"][s].flatten()
        major = torch.sign((torch.sign(xs) * (xs.abs() > 0.1) * fg).sum())
        for side, keep in (("near", torch.sign(xs) == major), ("far", torch.sign(xs) != major)):
            tok = data["token_mask"].clone()
            tok[s] = (fg & keep).reshape(tok[s].shape)
            if tok[s].any():
                c, e = lr_confusion_counts(parts, s, t, {**data, "token_mask": tok})["visible"]
                out[side][0] += c
                out[side][1] += e
    return {k: (c / max(e, 1), e) for k, (c, e) in out.items()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default="notebooks/assets/spherical_medium.pt")
    ap.add_argument("--n-train", type=int, default=256, help="training birds for the loss terms")
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    state = load_pretrained(args.checkpoint)
    cfg = state["cfg"]

    print(f"1. unweighted terms on {args.n_train} training birds (rung {cfg['rung']}); weighted = "
          f"{cfg['w_orientation']} orient + {cfg['w_distance']} dist + {cfg['w_viewpoint']} view")
    tcfg = {**cfg, "n_train": args.n_train}
    train = training_batch(tcfg)
    maps = {}
    for src in state["models"]:
        c = {**tcfg, "source": src}
        data = dataset_for(c, train, features_of(c, train, state["net"], 0))
        maps[f"learned, source {src}"] = sphere_tokens(state["models"][src], data)
    T = true_sphere(data)
    m = data["token_mask"].flatten(1)[..., None].to(T.dtype)
    maps = {"true sphere": T, "mirror": T * torch.tensor([-1.0, 1.0, 1.0]),
            "folded x->|x|": F.normalize(torch.cat([T[..., :1].abs(), T[..., 1:]], -1), dim=-1) * m,
            "folded x->-|x|": F.normalize(torch.cat([-T[..., :1].abs(), T[..., 1:]], -1), dim=-1) * m, **maps}
    grid = tuple(data["token_mask"].shape[-2:])
    print(f"   {'map':22s} {'orient':>7s} {'sign':>7s} {'dist':>7s} {'view':>7s} {'weighted':>9s}")
    for name, sph in maps.items():
        r = loss_terms(sph, data["azimuth_bin"], grid, cfg)
        print(f"   {name:22s} {r['orient']:7.3f} {r['sign']:7.4f} {r['dist']:7.3f} {r['view']:7.3f} "
              f"{r['weighted']:9.3f}")

    test = evaluation_batch(cfg)
    print(f"2. left/right confusion by source side, held-out split, {args.pairs} pairs (fraction, eligible tokens)")
    g = torch.Generator().manual_seed(0)
    noisy_rows = []
    for src in state["models"]:
        c = {**cfg, "source": src}
        te = dataset_for(c, test, features_of(c, test, state["net"], 1))
        pairs = sample_pairs(te["feats"].shape[0], args.pairs, cfg["seed"])
        tokens, T = te["feats"].flatten(2).transpose(1, 2), true_sphere(te)
        methods = method_table(te["feats"], sphere_tokens(state["models"][src], te), cfg["fuse"])
        methods.update({"true sphere": [(1.0, T)], "fused with true sphere": [(cfg["fuse"], tokens),
                                                                               (1 - cfg["fuse"], T)]})
        for name, parts in methods.items():
            r = side_confusion(parts, te, pairs.tolist())
            print(f"   {src:8s} {name:24s} near {r['near'][0]:.3f} ({r['near'][1]})  far {r['far'][0]:.3f} "
                  f"({r['far'][1]})")
        N, m = T.shape[0], te["token_mask"].flatten(1)[..., None].to(T.dtype)
        for kind in ("per-image rotation", "per-token noise"):
            for deg in (10, 30):
                rad = math.radians(deg)
                if kind == "per-image rotation":
                    R = axis_angle_to_matrix(F.normalize(torch.randn(N, 3, generator=g), dim=-1) * rad)
                    S = torch.einsum("nij,ntj->nti", R, T)
                else:
                    S = F.normalize(T + rad * torch.randn(T.shape, generator=g), dim=-1) * m
                r = score_pairs(method_table(te["feats"], S, cfg["fuse"]), te, pairs, (0.1,))
                noisy_rows.append((src, kind, deg, r))
    print("3. the true sphere perturbed, same pairs: sphere alone and fused 0.8/0.2")
    print(f"   {'source':8s} {'perturbation':20s} {'deg':>4s} {'sph pck':>8s} {'sph conf':>9s} {'fus pck':>8s} "
          f"{'fus kap':>8s} {'fus conf':>9s} {'raw conf':>9s}")
    for src, kind, deg, r in noisy_rows:
        print(f"   {src:8s} {kind:20s} {deg:4d} {r['sphere']['pck@0.1']:8.3f} {r['sphere']['lr_confusion']:9.3f} "
              f"{r['fused']['pck@0.1']:8.3f} {r['fused']['kap@0.1']:8.3f} {r['fused']['lr_confusion']:9.3f} "
              f"{r['raw features']['lr_confusion']:9.3f}")


if __name__ == "__main__":
    main()
