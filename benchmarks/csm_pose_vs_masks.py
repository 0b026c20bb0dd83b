"""CSM with pose vs masks only at the medium scale: both fine-tunes scored on one benchmark split, one evaluation.

    python benchmarks/csm_pose_vs_masks.py --start START.pt --masks-only notebooks/assets/csm_medium.pt \
        --with-pose WITH_POSE.pt --out notebooks/assets/csm_medium_pose_vs_masks.json

Each file is a ``csmlab.methods.csm`` pretrained file; the two fine-tunes share the starting file, the
iterations, the seed and the learning rate (their stored commands, copied into the JSON, differ only in
``--variant``). Every model is scored by ``csm.evaluate`` on the rung's benchmark split at the files'
resolution (1000 random pairs, both directions, PCK/APK at 0.1), so the rows differ only in the weights.
Each file is scored on its own template (``template_pose``: "rest" or "folded"); the "covered" pixels and the
rigid-template ceiling use the masks-only file's template. A minute or two on one core. Writes the JSON (rows,
the commands, the untrained baseline) and prints it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from csmlab import geometry as G
from csmlab.data.synthetic import benchmark_split
from csmlab.io import atomic_write_text
from csmlab.methods import csm
from csmlab.methods.csm.template import load_template
from csmlab.metrics import surface_error
from csmlab.render import rasterize_mesh

KEYS = ("transfer_pck", "transfer_apk", "surface_error", "surface_error_mirror", "sphere_angle_deg",
        "camera_error_deg", "surface_error_covered", "surface_error_uncovered")


def covered_split(points: torch.Tensor, data: dict, covered: torch.Tensor) -> dict:
    """Surface error over the foreground pixels the rigid template covers under the true camera, and the rest.

    The rest (raised wings, legs: the articulated bird reaching past the rigid template) is where a map tied
    to the rigid template cannot be right, whatever its camera.
    """
    err = (points - data["surface_xyz"]).norm(dim=1)
    fg = data["mask"][:, 0] > 0.5
    return {"surface_error_covered": round(float(err[fg & covered].mean()), 6),
            "surface_error_uncovered": round(float(err[fg & ~covered].mean()), 6)}


def score(path: Path, data: dict, n_pairs: int, covered: torch.Tensor) -> tuple[dict, dict]:
    """(metrics on ``data``, the file's stored command / config / training time)."""
    model, info = csm.load_pretrained(path)          # each file on its own template (template_pose)
    pred = csm.predict(model, data["image"])
    metrics = csm.evaluate(model, data, n_pairs=n_pairs, threshold=info["cfg"]["threshold"], pred=pred)
    metrics.update(covered_split(pred.get("canonical_points", pred["points"]), data, covered))
    if info["cfg"].get("pose_supervision"):     # trained with the true cameras: its camera head never learned
        metrics.pop("camera_error_deg", None)
    about = {"file": path.name, "command": info["command"], "variant": info["cfg"].get("variant"),
             "iters": info["metrics"].get("iters"), "train_seconds": info["metrics"].get("train_seconds")}
    return {k: metrics[k] for k in KEYS if k in metrics}, about


def rigid_coverage(template, cams: dict, resolution: int) -> torch.Tensor:
    """[B,H,W] bool: the pixels the rigid template covers under ``cams`` (scale [B], quat [B,4], trans [B,2])."""
    X = template.verts[None].expand(cams["scale"].shape[0], -1, -1).contiguous()
    clip = G.ortho_clip(X, cams["scale"], G.quaternion_to_matrix(cams["quat"]), cams["trans"])
    return rasterize_mesh(clip, template.faces, resolution).mask[:, 0] > 0.5


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", type=Path, required=True, help="the starting file both fine-tunes began from")
    parser.add_argument("--masks-only", type=Path, required=True)
    parser.add_argument("--with-pose", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n-pairs", type=int, default=1000)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    _, info = csm.load_pretrained(args.masks_only)
    cfg = info["cfg"]
    if not cfg.get("rung"):
        raise ValueError(f"--masks-only {args.masks_only}: its config has no benchmark rung")
    category = load_template(cfg)           # the masks-only file's template: "covered" and the ceiling use it
    data = csm.stack_samples(benchmark_split(cfg["category"], cfg["rung"], cfg["resolution"]))
    cams = {"scale": data["cam_scale"], "quat": data["cam_quat"], "trans": data["cam_trans"]}
    covered = rigid_coverage(category.template, cams, cfg["resolution"])
    rows, files = {}, {}
    for name, path in (("starting file", args.start), ("masks only", args.masks_only),
                       ("with pose", args.with_pose)):
        rows[name], files[name] = score(path, data, args.n_pairs, covered)
    if files["with pose"]["variant"] != "with_pose" or files["masks only"]["variant"] != "csm":
        raise ValueError(f"expected the csm and with_pose variants, got {files['masks only']['variant']!r} "
                         f"and {files['with pose']['variant']!r}")
    # The untrained baseline the command computed on the same split (same seed and initial scale as training).
    rows["untrained"] = {k: v for k, v in info["extra"]["untrained"].items() if k in KEYS}
    # The rigid-template ceiling (notebook 02, section 8): the template rendered under the true cameras.
    rigid = csm.template_points_under(category.template, cams, cfg["resolution"],
                                      getattr(category, "canonical_verts", None))
    pairs = csm.sample_pairs(data["image"].shape[0], args.n_pairs, 0)
    t = csm.keypoint_transfer(rigid, data["keypoints"], data["mask"], pairs, cfg["threshold"])
    rows["rigid template, true cameras (ceiling)"] = {
        "transfer_pck": round(t["pck"], 6), "transfer_apk": round(t["apk"], 6),
        "surface_error": round(float(surface_error(rigid, data["surface_xyz"], data["mask"]).mean()), 6),
        **covered_split(rigid, data, covered)}
    report = {"command": "python benchmarks/csm_pose_vs_masks.py --start <start> --masks-only <masks_only> "
                         "--with-pose <with_pose> --out <out>",
              "split": {"category": cfg["category"], "rung": cfg["rung"], "resolution": cfg["resolution"],
                        "n_images": int(data["image"].shape[0]), "n_pairs": args.n_pairs},
              "template": {"name": category.name, "template_pose": cfg.get("template_pose", "rest")},
              "files": files, "rows": rows, "paper_transfer_apk_cub": csm.PAPER_APK,
              "wall_seconds": round(time.perf_counter() - start, 1)}
    atomic_write_text(args.out, json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
