"""Train a medium sphere model and trace, every few iterations, its loss terms and its left/right confusion.

    python benchmarks/spherical_training_trace.py --source net --iters 3000 --every 1000 [--set w_viewpoint=1.0 ...]

A diagnostic, not the recipe: ``--set`` overrides any key of the medium preset (e.g. an off-paper
viewpoint weight) to test what limits the learned sphere. Same loop as ``fit`` (one seeded
generator, the same draws in the same order). At each trace point it prints the running mean of
the weighted terms; the unweighted orientation / sign / distance / viewpoint terms of the learned map
on 256 training birds (the true sphere's are printed first for comparison); and PCK@0.1, KAP@0.1 and
the left/right confusion of raw / sphere / fused matching on 200 pairs of the held-out split.
"""

from __future__ import annotations

import argparse
import time

import torch

from csmlab.methods.spherical.evaluate import method_table, score_pairs, true_sphere
from csmlab.methods.spherical.experiment import dataset_for, evaluation_batch, features_of, mirrored, training_batch
from csmlab.methods.spherical.features import train_feature_net
from csmlab.methods.spherical.fit import build, flip_batch, sphere_tokens
from csmlab.methods.spherical.losses import orientation_loss, relative_distance_loss, spherical_losses, viewpoint_loss
from csmlab.methods.spherical.presets import spherical_preset
from csmlab.metrics import sample_pairs


def parse_set(items: list[str]) -> dict:
    """key=value overrides of the medium preset, each cast to the preset value's type."""
    base, out = spherical_preset("medium"), {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in base:
            raise ValueError(f"--set {item!r}: {key!r} is not a key of the medium preset")
        kind = type(base[key])
        out[key] = value in ("1", "true", "True") if kind is bool else kind(value)
    return out


def terms(sph: torch.Tensor, bins: torch.Tensor, grid: tuple[int, int]) -> dict:
    def g():
        return torch.Generator().manual_seed(0)
    return {"o1": round(float(orientation_loss(sph, grid, 64, 1.0, generator=g())), 3),
            "sign": round(float(orientation_loss(sph, grid, 64, 0.0, p=1, generator=g())), 4),
            "dist": round(float(relative_distance_loss(sph, grid, 64, 0.5, generator=g())), 3),
            "view": round(float(viewpoint_loss(sph, bins)), 3)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", default="standin", choices=("net", "standin"))
    ap.add_argument("--iters", type=int, default=3000)
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--set", nargs="*", default=[], help="key=value overrides of the medium preset")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = spherical_preset("medium", source=args.source, **parse_set(args.set))
    print(cfg, flush=True)
    train, test = training_batch(cfg), evaluation_batch(cfg)
    net = None
    if args.source == "net":
        net, _ = train_feature_net(train["image"], train["mask"], cfg["feat_iters"], dim=cfg["feat_dim"],
                                   width=cfg["feat_width"], seed=cfg["seed"], progress=False)
    mirror = features_of(cfg, mirrored(train), net, 2) if cfg["flip"] else None
    tr = dataset_for(cfg, train, features_of(cfg, train, net, 0), mirror)
    te = dataset_for(cfg, test, features_of(cfg, test, net, 1))
    pairs = sample_pairs(te["feats"].shape[0], 200, 0)
    grid = tuple(tr["token_mask"].shape[-2:])
    idx = torch.arange(256)
    print("true sphere terms", terms(true_sphere(tr)[idx], tr["azimuth_bin"][idx], grid), flush=True)
    g = torch.Generator().manual_seed(cfg["seed"])
    with torch.random.fork_rng():
        torch.manual_seed(cfg["seed"])
        model = build(cfg)
    opt = torch.optim.Adam(list(model.mapper.parameters()) + list(model.prototype.parameters()), lr=cfg["lr"])
    n, t0, acc = tr["feats"].shape[0], time.time(), {}
    for it in range(1, args.iters + 1):
        model.train()
        b = torch.randint(n, (cfg["batch_size"],), generator=g)
        f, m, bins = tr["feats"][b], tr["token_mask"][b], tr["azimuth_bin"][b]
        if cfg["flip"]:
            f, m, bins = flip_batch(f, m, bins, cfg["vp_bins"], torch.rand(len(b), generator=g) < 0.5,
                                    tr["feats_mirror"][b])
        t, _ = spherical_losses(model, f, m, tr["category"][b], bins, cfg, g)
        loss = sum(t.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        for k, v in t.items():
            acc[k] = acc.get(k, 0) + float(v.detach()) / args.every
        if it % args.every == 0:
            model.eval()
            with torch.no_grad():
                learned = model(tr["feats"][idx], tr["token_mask"][idx])
            rows = score_pairs(method_table(te["feats"], sphere_tokens(model, te), cfg["fuse"]), te, pairs, (0.1,))
            print(f"it {it} {time.time() - t0:.0f}s weighted train mean {({k: round(v, 3) for k, v in acc.items()})} "
                  f"learned terms {terms(learned, tr['azimuth_bin'][idx], grid)}", flush=True)
            for name, row in rows.items():
                print("   ", name, {k: round(row[k], 3) for k in ("pck@0.1", "kap@0.1", "lr_confusion")}, flush=True)
            acc = {}


if __name__ == "__main__":
    main()
