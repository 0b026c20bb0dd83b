"""Probes of why Unsup3D does or does not learn on the synthetic faces (the medium-scale failure analysis).

Three cheap experiments stand in for full runs:

- :func:`fit_with_given`: train the model with some ground-truth factors handed to it
  (``"depth"``, ``"albedo"``, ``"light"``, ``"view"``), the others learned, and report SIDE / MAD
  and how well the learned factors agree with the truth (:func:`factor_agreement`): the slope
  and correlation of the predicted yaw on the true one, the correlation of the light
  direction. Which factor cannot be learned even when the others are given says where the
  optimisation is stuck.
- :func:`yaw_landscape`: the objective (both branches, no confidence) of the ground-truth
  factors with the yaw scaled by ``k``; its minimum should sit at ``k = 1``. The faces'
  background is a flat colour that the ground-truth albedo does not contain, so the albedo is
  completed outside the face with ``background / shading`` (:func:`albedo_with_background`).
- :func:`view_depth_decomposition`: SIDE / MAD of a trained model's canonical depth and view
  each swapped for the truth (true depth seen from the predicted view, and the reverse), and of
  the true depth with the yaw scaled: which of the two factors spoils the input-view depth.
- :func:`yaw_translation_landscape`: whether the view the probes learn (yaw too small, the x
  translation following the yaw) has a lower objective than the truth: it does not.
- :func:`mirrored_solution_error`: how well the *concave* face (depth reflected about the
  rotation centre), seen from the mirrored yaw and pitch and lit by the mirrored light,
  reproduces the image: the near-orthographic camera (10 degrees) leaves only a small residual
  to tell it from the true face.

Command line: ``python -m csmlab.methods.unsup3d.diagnostics --give light view --iters 400``, or
``--suite --out notebooks/assets/unsup3d_medium_diagnostics.json`` for every probe of :data:`SUITE`
(the landscape, the mirrored solution, and one run per line of given factors) in one JSON;
``--decompose notebooks/assets/unsup3d_medium.pt --out notebooks/assets/unsup3d_medium_decomposition.json``
for :func:`view_depth_decomposition` of a checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from csmlab.data.synthetic.dataset import CACHE_VERSION
from csmlab.data.synthetic.faces import background_colour, sample_scenes

from .evaluate import constant_depth_baseline, depth_metrics
from .fit import load_faces, make_optimizer
from .losses import unsup3d_losses
from .model import Unsup3D
from .presets import get_config
from .renderer import canonical_image, reconstruct, view_depth

FACTORS = ("depth", "albedo", "light", "view")
# The given-factor runs of the suite: nothing given (the real problem), then ever more of the truth.
SUITE = ((), ("light",), ("light", "view"), ("depth", "albedo", "light"))


def _corr(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([x.flatten(), y.flatten()]))[0, 1])


def _slope(pred: torch.Tensor, true: torch.Tensor) -> float:
    return float((pred * true).sum() / (true ** 2).sum().clamp_min(1e-12))


def albedo_with_background(data: dict, background: torch.Tensor) -> torch.Tensor:
    """The ground-truth albedo inside the face, ``background / shading`` (clamped to [0, 1]) outside it."""
    shading = canonical_image(torch.ones_like(data["albedo"]), data["canonical_depth"], data["light"])["image"]
    bg = background[:, :, None, None]
    return torch.where(data["canonical_mask"] > 0, data["albedo"], (bg / shading).clamp(0, 1))


def faces_background(cfg: dict, split: str, n: int) -> torch.Tensor:
    """[n,3] background colours (as lit in the image) of the first n faces of a split (re-drawn from the sampler)."""
    seed = cfg["data_seed"] if split == "train" else cfg["test_seed"]
    total = cfg["n_train"] if split == "train" else cfg["n_test"]
    return background_colour(sample_scenes(total, seed))[:n]


def factor_agreement(out: dict, data: dict) -> dict:
    """Predicted vs true factors: yaw slope / correlation, translation-yaw correlation, light, relief (and its corr)."""
    yaw_t, yaw_p = data["view"]["rotation"][:, 0], out["view"]["rotation"][:, 0]
    cm = data["canonical_mask"]
    relief = lambda d: float((((1 - d) * cm).sum((1, 2, 3)) / cm.sum((1, 2, 3))).mean())  # noqa: E731
    res = {"yaw_slope": _slope(yaw_p, yaw_t), "yaw_corr": _corr(yaw_p, yaw_t),
           "tx_yaw_corr": _corr(out["view"]["trans"][:, 0], yaw_t),
           "relief_pred": relief(out["canon_depth"]), "relief_true": relief(data["canonical_depth"]),
           # per-pixel correlation of the predicted and true relief on the faces (negative: a concave face)
           "relief_corr": _corr(out["canon_depth"][cm > 0], data["canonical_depth"][cm > 0])}
    if out.get("light") is not None:
        lp, lt = out["light"]["direction"], data["light"]["direction"]
        res.update(light_corr_x=_corr(lp[:, 0], lt[:, 0]), light_corr_y=_corr(lp[:, 1], lt[:, 1]),
                   light_std_x=float(lp[:, 0].std()), light_std_x_true=float(lt[:, 0].std()),
                   # the diffuse strength scales every gradient that reaches the light direction and the normals
                   diffuse_pred=float(out["light"]["diffuse"].mean()),
                   diffuse_true=float(data["light"]["diffuse"].mean()))
    return res


def _take(data: dict, idx) -> dict:
    return {k: ({kk: vv[idx] for kk, vv in v.items()} if isinstance(v, dict) else v[idx])
            for k, v in data.items() if isinstance(v, (dict, torch.Tensor))}


def fit_with_given(cfg: dict, train: dict, test: dict, give=(), iters: int = 400, report_every: int = 100,
                   seed: int = 0, log=print) -> list[dict]:
    """Train with the ground-truth factors in ``give`` substituted for the networks' own; metrics every few steps.

    ``train`` / ``test`` need ``albedo_bg`` (:func:`albedo_with_background`) when ``"albedo"`` is given.
    Returns one dict per report: iteration, SIDE, MAD, their ratios to the constant-depth baseline
    and :func:`factor_agreement`.
    """
    bad = [g for g in give if g not in FACTORS]
    if bad:
        raise ValueError(f"give must name factors among {FACTORS}, got {bad}")
    torch.manual_seed(seed)
    model = Unsup3D(cfg)
    optimizer, own = make_optimizer(model, cfg), model.factors
    const = constant_depth_baseline(test)

    def run(data, idx):
        def factors(image):
            f = own(image)
            if "light" in give:
                f["light"] = {k: v[idx] for k, v in data["light"].items()}
            if "view" in give:
                f["view"] = {k: v[idx] for k, v in data["view"].items()}
            if "depth" in give:
                f["canon_depth"] = f["canon_depth_free"] = data["canonical_depth"][idx]
            if "albedo" in give:
                f["albedo"] = data["albedo_bg"][idx]
            return f
        model.factors = factors
        return model(data["image"][idx])

    g = torch.Generator().manual_seed(seed)
    reports = []
    for it in range(1, iters + 1):
        idx = torch.randint(train["image"].shape[0], (cfg["batch_size"],), generator=g)
        loss = sum(unsup3d_losses(run(train, idx), train["image"][idx], cfg).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if it % report_every == 0 or it == iters:
            model.eval()
            with torch.no_grad():
                out = run(test, torch.arange(test["image"].shape[0]))
            model.train()
            m = depth_metrics(out["recon"]["depth"][:test["image"].shape[0]], test["depth"], test["mask"])
            side, mad = float(m["side"].mean()), float(m["mad"].mean())
            rep = {"iteration": it, "side": side, "mad": mad, "side_ratio": side / const["side"],
                   "mad_ratio": mad / const["mad"], **factor_agreement(out, test)}
            reports.append(rep)
            log(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in rep.items()}))
    return reports


def _objective(cfg: dict, data: dict, factors: dict) -> float:
    model = Unsup3D(cfg)
    model.factors = lambda image: factors
    with torch.no_grad():
        terms = unsup3d_losses(model(data["image"]), data["image"], cfg)
    return float(terms["photometric"] + terms["photometric_flip"])


def yaw_landscape(cfg: dict, data: dict, albedo: torch.Tensor, scales=(0.0, 0.5, 0.9, 1.0, 1.1)) -> dict:
    """{k: objective of the ground-truth factors with every yaw multiplied by k} (confidence off)."""
    cfg = {**cfg, "use_conf": False, "lam_depth_sm": 0.0}
    out = {}
    for k in scales:
        rot = data["view"]["rotation"].clone()
        rot[:, 0] = rot[:, 0] * k
        out[float(k)] = _objective(cfg, data, {"canon_depth": data["canonical_depth"], "albedo": albedo,
                                               "light": data["light"],
                                               "view": {"rotation": rot, "trans": data["view"]["trans"]}})
    return out


def _objective_per_image(model: Unsup3D, data: dict, factors: dict, lam_flip: float = 0.5) -> torch.Tensor:
    """[B] photometric L1 (images in [-1, 1], no confidence) + lam_flip x its flipped twin, per image."""
    model.factors = lambda image: factors
    with torch.no_grad():
        out = model(data["image"])
    B, mask = data["image"].shape[0], out["mask_both"]
    err = ((out["recon"]["image"] - data["image"].repeat(2, 1, 1, 1) * mask) * 2).abs().mean(1, keepdim=True)
    per = (err * mask).sum((1, 2, 3)) / mask.sum((1, 2, 3)).clamp_min(1)
    return per[:B] + lam_flip * per[B:]


def yaw_translation_landscape(cfg: dict, data: dict, albedo: torch.Tensor, yaw_scales=(0.0, 0.5, 0.75),
                              couplings=torch.linspace(-0.08, 0.08, 33)) -> dict:
    """Is the probes' learned view (yaw too small, x translation following the yaw) a minimum of the objective?

    For each yaw scale ``k``, every face's yaw is multiplied by ``k`` and its x translation moved by
    ``c sin(yaw)``, with the best coupling ``c`` of ``couplings`` chosen per face. Returns the mean
    objective (:func:`_objective_per_image`) of the truth, of each scaled yaw with the true translation and
    with its best coupling, and the fraction of faces on which that beats the truth.
    """
    model = Unsup3D(cfg)   # only its forward (flip, render, both-valid mask); the factors are given

    def objective(k, shift):
        rot, trans = data["view"]["rotation"].clone(), data["view"]["trans"].clone()
        rot[:, 0] = rot[:, 0] * k
        trans[:, 0] = trans[:, 0] + shift
        return _objective_per_image(model, data, {"canon_depth": data["canonical_depth"], "albedo": albedo,
                                                  "light": data["light"], "view": {"rotation": rot, "trans": trans}},
                                    cfg["lam_flip"])
    yaw = data["view"]["rotation"][:, 0]
    truth = objective(1.0, 0.0)
    out = {"truth": float(truth.mean())}
    for k in yaw_scales:
        best = torch.stack([objective(k, float(c) * torch.sin(yaw)) for c in couplings]).amin(0)
        out[f"yaw_x{k}"] = {"true_translation": float(objective(k, 0.0).mean()), "best_coupled": float(best.mean()),
                            "fraction_beating_truth": float((best < truth).float().mean())}
    return out


def mirrored_solution_error(data: dict) -> dict:
    """Mean |image error| on the face of the truth and of the concave, mirrored-view, mirrored-light solution."""
    flip_xy = torch.tensor([-1.0, -1.0, 1.0])

    def err(depth, light, view):
        out = reconstruct(depth, data["albedo"], light, view)
        m = data["mask"] * out["mask"]
        e = ((out["image"] - data["image"]).abs() * m).sum((1, 2, 3)) / (3 * m.sum((1, 2, 3)))
        return float(e.mean()), out

    truth, _ = err(data["canonical_depth"], data["light"], data["view"])
    light_m = {**data["light"], "direction": data["light"]["direction"] * flip_xy}
    view_m = {"rotation": data["view"]["rotation"] * flip_xy, "trans": data["view"]["trans"]}
    mirrored, out = err((2.0 - data["canonical_depth"]).clamp(0.9, 1.1), light_m, view_m)
    m = depth_metrics(out["depth"], data["depth"], data["mask"])
    return {"truth": truth, "mirrored": mirrored, "mirrored_side": float(m["side"].mean()),
            "mirrored_mad": float(m["mad"].mean())}


def view_depth_decomposition(pred: dict, data: dict, yaw_scales=(0.0, 0.5), yaw_offsets_deg=(5.0,),
                             relief_scales=(0.75,)) -> dict:
    """SIDE / MAD ratios (to the constant depth) of the input-view depth with predicted and true factors mixed.

    ``pred`` holds a model's ``canon_depth`` [B,1,S,S] and ``view`` for the faces of ``data``. Rows:
    ``pred_depth_pred_view`` (what the model is scored on), ``true_depth_pred_view`` (the view's share
    of the error), ``pred_depth_true_view`` (the depth's share), ``flat_depth_true_view`` (a flat
    canonical depth at 1), ``true_depth_yaw_x{k}`` (the true factors with the yaw multiplied by k),
    ``true_depth_yaw_plus{a}deg`` (the yaw off by a degrees) and ``true_relief_x{r}_true_view`` (the
    true face flattened to r times its relief about depth 1): how much error each target allows.
    Each row is {side_ratio, mad_ratio}.
    """
    const = constant_depth_baseline(data)
    true_view = data["view"]

    def ratios(depth, view):
        m = depth_metrics(view_depth(depth.clamp(0.9, 1.1), view), data["depth"], data.get("mask"))
        return {"side_ratio": float(m["side"].mean()) / const["side"],
                "mad_ratio": float(m["mad"].mean()) / const["mad"]}

    truth = data["canonical_depth"]
    out = {"pred_depth_pred_view": ratios(pred["canon_depth"], pred["view"]),
           "true_depth_pred_view": ratios(truth, pred["view"]),
           "pred_depth_true_view": ratios(pred["canon_depth"], true_view),
           "flat_depth_true_view": ratios(torch.ones_like(truth), true_view)}
    for k in yaw_scales:
        rot = true_view["rotation"].clone()
        rot[:, 0] = rot[:, 0] * k
        out[f"true_depth_yaw_x{k:g}"] = ratios(truth, {"rotation": rot, "trans": true_view["trans"]})
    for a in yaw_offsets_deg:
        rot = true_view["rotation"].clone()
        rot[:, 0] = rot[:, 0] + a * torch.pi / 180
        out[f"true_depth_yaw_plus{a:g}deg"] = ratios(truth, {"rotation": rot, "trans": true_view["trans"]})
    for r in relief_scales:
        out[f"true_relief_x{r:g}_true_view"] = ratios(1 - r * (1 - truth), true_view)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m csmlab.methods.unsup3d.diagnostics",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", default="medium", choices=["smoke", "medium"])
    p.add_argument("--give", nargs="*", default=[], choices=FACTORS)
    p.add_argument("--iters", type=int, default=400)
    p.add_argument("--n-train", type=int, default=2000, help="use the first N training faces")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides (Python literals)")
    p.add_argument("--seed", type=int, default=0, help="the networks' initialisation and the batches")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--landscape", action="store_true", help="only the yaw landscape and the mirrored solution")
    p.add_argument("--suite", action="store_true", help="the landscape, the mirrored solution and every SUITE run")
    p.add_argument("--out", default=None, help="write the JSON report here")
    p.add_argument("--decompose", default=None, metavar="CHECKPOINT",
                   help="only the view/depth decomposition of a trained checkpoint on the test faces")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    import ast
    over = {}
    for kv in args.set:
        k, _, v = kv.partition("=")
        over[k] = ast.literal_eval(v)
    cfg = get_config(args.scale, **over)
    test = load_faces(cfg, "test")
    if args.decompose:
        from .pretrained import load_pretrained
        model, _ = load_pretrained(args.decompose)
        with torch.no_grad():
            rows = view_depth_decomposition(model.factors(test["image"]), test)
        for name, r in rows.items():
            print(f"{name:24s} SIDE {r['side_ratio']:.2f}x  MAD {r['mad_ratio']:.2f}x", flush=True)
        if args.out:
            _write_json(args.out, {"command": _command(argv), "checkpoint": args.decompose,
                                   "faces_cache_version": CACHE_VERSION["faces"], "n_test": test["image"].shape[0],
                                   "rows": rows})
        return 0
    test["albedo_bg"] = albedo_with_background(test, faces_background(cfg, "test", test["image"].shape[0]))
    report = {"command": _command(argv),
              "cfg": cfg, "torch_threads": torch.get_num_threads(),
              "faces_cache_version": CACHE_VERSION["faces"]}   # the data it measured
    if args.landscape or args.suite:
        report["yaw_landscape"] = yaw_landscape(cfg, test, test["albedo_bg"])
        report["mirrored_solution"] = mirrored_solution_error(test)
        report["yaw_translation_landscape"] = yaw_translation_landscape(cfg, test, test["albedo_bg"])
        for key in ("yaw_landscape", "mirrored_solution", "yaw_translation_landscape"):
            print(f"{key}:", json.dumps(report[key]), flush=True)
        if args.landscape:
            if args.out:
                _write_json(args.out, report)
            return 0
    train = _take(load_faces(cfg, "train"), slice(0, args.n_train))
    train["albedo_bg"] = albedo_with_background(train, faces_background(cfg, "train", train["image"].shape[0]))
    runs = SUITE if args.suite else (tuple(args.give),)
    report["runs"] = []
    for give in runs:
        start = time.perf_counter()
        print(json.dumps({"give": list(give), "iters": args.iters, "overrides": over}), flush=True)
        reports = fit_with_given(cfg, train, test, give=give, iters=args.iters, seed=args.seed,
                                 log=lambda s: print(s, flush=True))
        report["runs"].append({"give": list(give), "iters": args.iters, "n_train": train["image"].shape[0],
                               "seconds": round(time.perf_counter() - start, 1), "reports": reports})
    if args.out:
        _write_json(args.out, report)
    return 0


def _command(argv) -> str:
    return "python -m csmlab.methods.unsup3d.diagnostics " + " ".join(argv if argv is not None else sys.argv[1:])


def _write_json(out, report: dict) -> None:
    path = Path(out)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=1, default=str))
    tmp.replace(path)
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
