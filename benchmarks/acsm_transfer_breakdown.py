"""Where is rung C's transfer PCK lost? Notebook 02's protocol broken down, no training.

For each surface map (``oracle``: the true template point of every pixel, ``surface_xyz``; ``oracle_uv``:
the true UV through the UV table; CSM's
``csm_medium.pt`` through ACSM's U-Net; any ACSM file) and each split, the transfer PCK@0.1 of
``csmlab.metrics.keypoint_transfer`` (same pairs as ``acsm.evaluate``: 1000 pairs, seed 0, both
directions) is broken down

- by keypoint and by keypoint group (head, body, tail, wing roots, wing tips);
- by the *source* keypoint's part being articulated away from rest (any of its joints >= 30 deg;
  body keypoints have no joint);
- by the pose difference of that part between source and target (max |delta angle| of its joints);
- by the view difference (angle of the relative camera rotation);
- failures that land on the target's *mirror* keypoint (left/right swap);

and the surface map itself: the fraction of foreground pixels whose predicted point lies on the
true part (skin weights' argmax), per true part.

The splits: the shared rungs B and C, and two factorised splits with the benchmark's seed (bird i has
the same shape, framing, light and texture): ``Cv`` (rung C's full circle of views, rung B's
articulation) and ``Ca`` (rung B's views, rung C's full articulation): is C's loss the views or the
articulation?  Run: ``PYTHONPATH=. python benchmarks/acsm_transfer_breakdown.py --out
notebooks/assets/acsm_transfer_breakdown.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from csmlab.data.synthetic import benchmark_split, get_category, make_dataset
from csmlab.data.synthetic.benchmark import BENCHMARK_SEED, BENCHMARK_SIZE
from csmlab.data.synthetic.birds_template import skin_weights
from csmlab.geometry import quaternion_to_matrix, rotation_angle_deg
from csmlab.methods.acsm import build_model, get_config, predict
from csmlab.methods.acsm.fit import stack_dataset
from csmlab.methods.acsm.network import load_csm_weights
from csmlab.methods.acsm.pretrained import load_pretrained
from csmlab.metrics import keypoint_transfer, sample_pairs

SPLITS = {"B": ("cub", "cub"), "C": ("full", "full"), "Cv": ("full", "cub"), "Ca": ("cub", "full")}
GROUPS = {"head": ("beak_tip", "crown", "nape", "throat", "right_eye", "left_eye"),
          "body": ("breast", "belly", "back", "right_foot", "left_foot"), "tail": ("tail_tip",),
          "wing_root": ("right_wing_root", "left_wing_root"), "wing_tip": ("right_wing_tip", "left_wing_tip")}
PART_JOINTS = {0: (), 1: (4, 5), 2: (6,), 3: (0, 2), 4: (1, 3)}   # part -> joint indices (category.joint_names)
ARTICULATED_DEG = 30.0
POSE_BINS = (0.0, 15.0, 30.0, 60.0, math.inf)
VIEW_BINS = (0.0, 30.0, 60.0, 90.0, 135.0, 180.01)


def load_split(name: str, resolution: int = 64):
    if name in ("B", "C"):
        return benchmark_split("birds", name, resolution)
    views, articulation = SPLITS[name]
    return make_dataset("birds", BENCHMARK_SIZE, resolution, seed=BENCHMARK_SEED, progress=False, cache=False,
                        views=views, articulation=articulation)


def load_points(spec: str, data: dict, birds) -> torch.Tensor:
    """[N,3,H,W] rest-template points of every pixel: ``oracle``, ``oracle_uv`` or a CSM / ACSM file.

    ``oracle_uv``: the true UV of every pixel read through the medium model's UV table (its grid and
    bilinear lookup), as a network's UV is: does the table itself lose anything?
    """
    if spec == "oracle":
        return data["surface_xyz"]
    if spec == "oracle_uv":
        return build_model(get_config("medium"), birds).template.uv_image_to_points(data["surface_uv"])
    try:
        model, _ = load_pretrained(spec, birds)
    except ValueError:   # a CSM file: ACSM's U-Net is CSM's, loaded as ACSM's medium run starts
        model = build_model(get_config("medium"), birds)
        load_csm_weights(model, spec)
        model.eval()
    with torch.no_grad():
        return predict(model, data["image"])["points"]


def rate(ok: torch.Tensor, use: torch.Tensor) -> dict:
    n = int(use.sum())
    return {"pck": round(float(ok[use].double().mean()), 4) if n else None, "n": n}


def binned(ok, values, bins) -> dict:
    out = {}
    for lo, hi in zip(bins[:-1], bins[1:]):
        label = f"[{lo:g},{hi:g})" if math.isfinite(hi) else f">={lo:g}"
        out[label] = rate(ok, (values >= lo) & (values < hi))
    return out


def breakdown(points: torch.Tensor, data: dict, birds, n_pairs: int = 1000, threshold: float = 0.1) -> dict:
    N, _, H, W = points.shape
    pairs = sample_pairs(N, n_pairs, 0)
    tr = keypoint_transfer(points, data["keypoints"], data["mask"], pairs, threshold)
    ok = tr["errors"] <= threshold
    kp, src, tgt = tr["keypoint"], tr["pair"][:, 0], tr["pair"][:, 1]
    names = birds.keypoint_names
    out = {"transfer_pck": round(tr["pck"], 4), "transfer_apk": round(tr["apk"], 4), "n_transfers": int(ok.numel())}
    out["per_keypoint"] = {n: rate(ok, kp == i) for i, n in enumerate(names)}
    out["per_group"] = {g: rate(ok, torch.isin(kp, torch.tensor([names.index(n) for n in ks])))
                        for g, ks in GROUPS.items()}
    # the keypoint's part, and its joints in the source and the target
    kp_part = skin_weights(birds.keypoints_template.double()).argmax(-1)[kp]
    art = torch.rad2deg(data["articulation"].double())
    src_mag, diff = torch.zeros(kp.shape, dtype=torch.float64), torch.zeros(kp.shape, dtype=torch.float64)
    for p, joints in PART_JOINTS.items():
        if not joints:
            continue
        sel = kp_part == p
        js = list(joints)
        src_mag[sel] = art[src[sel]][:, js].abs().max(-1).values
        diff[sel] = (art[src[sel]][:, js] - art[tgt[sel]][:, js]).abs().max(-1).values
    jointed = kp_part != 0
    moved = src_mag >= ARTICULATED_DEG
    out["by_source_part_articulated"] = {"root_part (body, no joint)": rate(ok, ~jointed),
                                         f"at rest (< {ARTICULATED_DEG:g} deg)": rate(ok, jointed & ~moved),
                                         f"articulated (>= {ARTICULATED_DEG:g} deg)": rate(ok, jointed & moved)}
    out["by_part_pose_difference_deg"] = binned(ok[jointed], diff[jointed], POSE_BINS)
    Rc = quaternion_to_matrix(data["cam_quat"])
    view = rotation_angle_deg(Rc[src], Rc[tgt]).double()
    out["by_view_difference_deg"] = binned(ok, view, VIEW_BINS)
    # failures landing on the target's mirror keypoint
    flip = birds.keypoint_flip[kp]
    mirror = data["keypoints"][tgt, flip]
    sym = (flip != kp) & (mirror[:, 2] > 0.5)
    merr = (tr["transferred"] - mirror[:, :2]).norm(dim=-1) / max(H, W)
    out["failures_on_mirror_keypoint"] = rate(merr <= threshold, sym & ~ok)
    out["failures_on_mirror_keypoint"]["of_failures"] = int((~ok).sum())
    # the map: the fraction of foreground pixels whose predicted point is on the true part
    m = data["mask"][:, 0] > 0.5
    true_part = skin_weights(data["surface_xyz"].permute(0, 2, 3, 1).double()).argmax(-1)[m]
    pred_part = skin_weights(points.permute(0, 2, 3, 1).double()).argmax(-1)[m]
    out["pixels_on_true_part"] = {pn: rate(pred_part == true_part, true_part == p)
                                  for p, pn in enumerate(birds.part_names)}
    out["wing_pixels_on_body"] = round(float((pred_part[true_part >= 3] == 0).double().mean()), 4)
    err3 = (points - data["surface_xyz"]).norm(dim=1)[m]
    out["surface_error_per_true_part"] = {pn: round(float(err3[true_part == p].mean()), 4)
                                          for p, pn in enumerate(birds.part_names)}
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--maps", nargs="+", help="oracle, oracle_uv or a CSM / ACSM file, each optionally LABEL=PATH",
                   default=["oracle", "oracle_uv", "notebooks/assets/csm_medium.pt",
                                                 "notebooks/assets/acsm_medium_joints_folded.pt"])
    p.add_argument("--splits", nargs="+", default=list(SPLITS))
    p.add_argument("--out", default=None)
    a = p.parse_args()
    torch.set_num_threads(1)
    birds = get_category("birds")
    t0 = time.time()
    report = {"command": "python benchmarks/acsm_transfer_breakdown.py " + " ".join(
        ["--maps", *a.maps, "--splits", *a.splits] + (["--out", a.out] if a.out else [])),
        "splits": {s: {"views": SPLITS[s][0], "articulation": SPLITS[s][1]} for s in a.splits},
        "articulated_deg": ARTICULATED_DEG, "results": {}}
    for split in a.splits:
        data = stack_dataset(load_split(split), {"n_contour": 8})
        for item in a.maps:
            spec, path = item.split("=", 1) if "=" in item else (item, item)
            res = breakdown(load_points(path, data, birds), data, birds)
            res["map"] = path
            report["results"].setdefault(split, {})[spec] = res
            print(f"{split:3s} {spec:55s} PCK {res['transfer_pck']:.3f}  groups " + " ".join(
                f"{g}={v['pck']}" for g, v in res["per_group"].items()) + "  art: " + " ".join(
                f"{v['pck']}" for v in res["by_source_part_articulated"].values()), flush=True)
    report["seconds"] = round(time.time() - t0, 1)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
