"""Evaluation: the 3D benchmark (saliency mIoU / mAP, correspondence PCK), viewpoints, and 2D PCK.

The 2D rows follow the structure of the paper's Table 6: each stage's prediction
replaced by its ground truth. Shapes: ``template`` (the category template, the
baseline), ``reconstruction`` (notebook 03's To The Point model: not available on
this branch, reported as such) and ``oracle`` (the true posed bird). Cameras:
``predicted`` (the viewpoint CNN, scale ``init_scale``, centred on the mask),
``refined_scale`` (then the silhouette fit of the scale only, as ``demo.py``),
``refined`` (the full similarity fit, Eq. 7) and ``true`` (the true camera).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from csmlab.data.synthetic import get_category
from csmlab.data.synthetic.birds_pose import pose_keypoints
from csmlab.data.synthetic.pointcloud_annotations import shape_clouds
from csmlab.geometry import azel_to_matrix, quaternion_to_matrix

from . import metrics3d
from .projection import (
    centre_translation,
    keypoints_from_pixels,
    pck_per_image,
    point_visibility,
    refine_camera,
    silhouette,
    splat_points,
)
from .training import embed, subsample
from .viewpoint import azimuth_bin_distance, decode_viewpoint, twin_azimuths


def test_clouds(split: dict, num_points: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out clouds a backbone is scored on: ``num_points`` of each (keypoints kept, a fixed draw)."""
    points, table = split["points"], split["table"]
    if num_points is not None and num_points < points.shape[1]:
        points, table = subsample(points, table, num_points, torch.Generator().manual_seed(1))
    return points, table


def _geodesics(points: torch.Tensor, table: torch.Tensor, cfg: dict) -> list:
    """Geodesic rows from each cloud's keypoints, on the clouds scaled to a unit bounding-box diagonal."""
    unit = metrics3d.normalize_diagonal(points)
    return [metrics3d.geodesic_distances(unit[m], table[m].clamp_min(0), cfg["geodesic_k"]) for m in range(len(unit))]


def evaluate_3d(model, means: torch.Tensor, split: dict, cfg: dict, num_points: int | None = None) -> dict:
    """KeypointNet's benchmark on held-out clouds scaled to a unit bounding-box diagonal.

    The scale is ShapeNet's (KeypointNet's clouds are ShapeNet's normalised models, diagonal 1), and the
    distances are not normalised further: ``benchmark_scripts`` thresholds raw 20-NN graph distances.
    """
    points, table = test_clouds(split, num_points)
    out = embed(model, points, batch=4)
    geo = _geodesics(points, table, cfg)
    pred = torch.cdist(means[None].expand(len(points), -1, -1), out["embedding"]).argmin(-1)   # [n,K]
    pck = metrics3d.correspondence_pck(table.numpy(), pred.numpy(), geo)
    gt_sets = [table[m][table[m] >= 0].numpy() for m in range(len(points))]
    geo_gt = [g[(table[m] >= 0).numpy()] for m, g in enumerate(geo)]
    sal = out["saliency"].numpy()
    pred_sets = [np.nonzero(s > cfg["saliency_threshold"])[0] for s in sal]
    res = {"pck_3d": {f"{t:.2f}": float(v) for t, v in zip(metrics3d.THRESHOLDS, pck)}}
    res["miou"] = {f"{t:.2f}": metrics3d.saliency_miou(pred_sets, gt_sets, geo_gt, t) for t in (0.05, 0.1)}
    res["map"] = {f"{t:.2f}": metrics3d.saliency_map(list(sal), gt_sets, geo_gt, t) for t in (0.05, 0.1)}
    res["pck_3d_at_0.05"] = res["pck_3d"]["0.05"]
    return res


def position_baseline(train: dict, test: dict, cfg: dict, num_points: int | None = None) -> dict:
    """Correspondence PCK of a learning-free guess: the test point nearest each keypoint's mean training position.

    It uses what the networks are given, no more: the training clouds' annotations, and the test
    clouds in the canonical frame (the networks read the same coordinates). So it is what a network
    gets by knowing only where keypoints usually are; a trained embedding must beat it to have learned
    shape-specific semantics. ``num_points``: score it on the same test clouds as a backbone
    (:func:`test_clouds`); a denser cloud offers a candidate nearer each keypoint.
    """
    table, points = train["table"], train["points"]
    K = table.shape[1]
    mean_xyz = torch.stack([points[(table[:, k] >= 0).nonzero()[:, 0], table[(table[:, k] >= 0), k]].mean(0)
                            for k in range(K)])
    points, table = test_clouds(test, num_points)
    pred = torch.cdist(mean_xyz[None].expand(len(points), -1, -1), points).argmin(-1)
    pck = metrics3d.correspondence_pck(table.numpy(), pred.numpy(), _geodesics(points, table, cfg))
    return {"pck_3d": {f"{t:.2f}": float(v) for t, v in zip(metrics3d.THRESHOLDS, pck)}}


@torch.no_grad()
def predict_viewpoints(net, images: torch.Tensor, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    net.eval()
    az, el = [], []
    for i in range(0, len(images), batch):
        a, e = decode_viewpoint(*net(images[i:i + batch]))
        az.append(a)
        el.append(e)
    return torch.cat(az), torch.cat(el)


def viewpoint_metrics(az, el, true_view) -> dict:
    """Azimuth bin accuracy (24 circular bins), median angle errors, and the twin diagnostics.

    ``azimuth_within_one_bin`` (the target) compares the predicted azimuth's bin with the true
    one's, circularly. ``..._mod_mirror`` and ``..._mod_silhouette`` also accept the true
    azimuth's twin (:func:`.viewpoint.twin_azimuths`), and ``misses_at_*_twin`` is the share of the
    misses that land within one bin of that twin: how much of the error is a symmetry confusion.
    """
    d = azimuth_bin_distance(az, true_view[:, 0])
    az_err = torch.rad2deg(torch.remainder(az - true_view[:, 0] + math.pi, 2 * math.pi) - math.pi).abs()
    out = {"azimuth_within_one_bin": float((d <= 1).float().mean()),
           "azimuth_exact_bin": float((d == 0).float().mean()),
           "azimuth_median_error_deg": float(az_err.median()),
           "elevation_median_error_deg": float(torch.rad2deg((el - true_view[:, 1]).abs()).median())}
    miss = d > 1
    for name, twin in twin_azimuths(true_view[:, 0]).items():
        at_twin = azimuth_bin_distance(az, twin) <= 1
        out[f"azimuth_within_one_bin_mod_{name}"] = float((~miss | at_twin).float().mean())
        out[f"misses_at_{name}_twin"] = float((miss & at_twin).float().sum() / miss.float().sum().clamp_min(1))
    return out


def shapes_for(kind: str, batch: dict, num_points: int, seed: int = 0) -> dict:
    """Clouds, meshes and 3D keypoints [B,K,3] behind the images: the category template or the true (oracle) shape."""
    B = len(batch["image"])
    cat = get_category("birds")
    if kind == "template":
        one = shape_clouds(torch.zeros(1, cat.num_deform), torch.zeros(1, cat.num_joints), num_points, seed)
        one["keypoints"] = pose_keypoints(cat, None, None, one["verts"])
        return {k: v if k == "faces" else v.expand(B, -1, -1) for k, v in one.items()}
    if kind == "oracle":
        out = shape_clouds(batch["deform"], batch["articulation"], num_points, seed)
        out["keypoints"] = pose_keypoints(cat, None, None, out["verts"])
        return out
    raise ValueError(f"shape must be 'template' or 'oracle' ('reconstruction' is not available), got {kind!r}")


def cameras(batch: dict, shape: dict, az, el, cfg: dict) -> dict:
    """{name: (scale, R, trans)} for the predicted, refined (scale / similarity) and true cameras."""
    mask = batch["mask"]
    B = len(mask)
    R = azel_to_matrix(az, el, torch.zeros_like(az))
    s0 = torch.full((B,), float(cfg["init_scale"]))
    t0 = centre_translation(shape["points"], mask, s0, R)
    out = {"predicted": (s0, R, t0)}
    for mode, name in (("scale", "refined_scale"), ("similarity", "refined")):
        r = refine_camera(shape["verts"], shape["faces"], mask, s0, R, t0, mode, cfg["refine_steps"], cfg["refine_lr"],
                          cfg["refine_resolution"])
        out[name] = (r["scale"], r["R"], r["trans"])
        out[name + "_losses"] = r["losses"]
    cam = batch["camera"]
    out["true"] = (cam["scale"], quaternion_to_matrix(cam["quat"]), cam["trans"])
    return out


def project(shape: dict, embedding: torch.Tensor, means: torch.Tensor, camera, resolution: int) -> dict:
    """Visible points, the pixel -> point map and the 2D keypoints of one shape under one camera.

    ``means`` [K,D] (shared) or [B,K,D] (per image; e.g. the shape's own 3D keypoints with the points'
    xyz as the embedding: a perfect embedding, which bounds what the shape and camera allow).
    """
    s, R, t = camera
    vis = point_visibility(shape["points"], shape["verts"], shape["faces"], s, R, t, resolution)
    cover = (silhouette(shape["verts"], shape["faces"], s, R, t, resolution) > 0.5).float()
    pix = splat_points(shape["points"], vis, cover, s, R, t)
    return {"visible": vis, "pixel_index": pix, "keypoints": keypoints_from_pixels(pix, embedding, means)}


def sample_pairs(n_images: int, n_pairs: int, seed: int = 0) -> torch.Tensor:
    """[P,2] random ordered pairs i != j (the same draw as notebook 02's transfer benchmark)."""
    g = torch.Generator().manual_seed(seed)
    i = torch.randint(n_images, (n_pairs,), generator=g)
    j = (i + 1 + torch.randint(n_images - 1, (n_pairs,), generator=g)) % n_images
    return torch.stack([i, j], -1)


def transfer_pck(pixel_index, embedding, keypoints, pairs, alpha: float = 0.1) -> float:
    """Image-to-image transfer through the projected embeddings: PCK at alpha * image size, both directions.

    The source keypoint reads the embedding at its nearest covered pixel; the target
    pixel is the one with the nearest embedding. Keypoints visible in both images count.
    """
    B, H, W = pixel_index.shape
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    centres = torch.stack([xs, ys], -1).reshape(-1, 2)
    correct = total = 0
    for s, t in torch.cat([pairs, pairs.flip(-1)]).tolist():
        both = (keypoints[s, :, 2] > 0.5) & (keypoints[t, :, 2] > 0.5)
        fs, ft = (torch.nonzero(pixel_index[i].reshape(-1) >= 0)[:, 0] for i in (s, t))
        if not both.any():
            continue
        total += int(both.sum())
        if len(fs) == 0 or len(ft) == 0:
            continue
        src = fs[torch.cdist(keypoints[s, both, :2], centres[fs]).argmin(1)]
        e_src = embedding[s, pixel_index[s].reshape(-1)[src]]
        e_tgt = embedding[t, pixel_index[t].reshape(-1)[ft]]
        xy = centres[ft[torch.cdist(e_src, e_tgt).argmin(1)]]
        correct += int(((xy - keypoints[t, both, :2]).norm(dim=-1) <= alpha * max(H, W)).sum())
    return correct / max(total, 1)


def evaluate_2d(pipe, dataset, cfg: dict, backbone: str | None = None) -> dict:
    """2D PCK (alpha_img, alpha_bbox) for every shape x camera row, viewpoint accuracy, transfer PCK."""
    backbone = backbone or cfg["headline_backbone"]
    model, means = pipe.models[backbone], pipe.means[backbone]
    batch = dataset.batch(range(len(dataset)))
    H = batch["image"].shape[-1]
    az, el = predict_viewpoints(pipe.viewpoint, batch["image"])
    res = {"viewpoint": viewpoint_metrics(az, el, batch["viewpoint"]), "rows": {},
           "shape_reconstruction": "not available (notebook 03's To The Point model has not landed on main)"}
    n_points = cfg["num_points"] if backbone == "pointnet" else cfg["dgcnn_points"]   # as each was trained
    res["backbone"] = backbone
    for kind in ("template", "oracle"):
        shape = shapes_for(kind, batch, n_points)
        emb = embed(model, shape["points"][:1] if kind == "template" else shape["points"], batch=8)["embedding"]
        emb = emb.expand(len(batch["image"]), -1, -1) if kind == "template" else emb
        cams = cameras(batch, shape, az, el, cfg)
        for name in ("predicted", "refined_scale", "refined", "true"):
            proj = project(shape, emb, means, cams[name], H)
            row = pck_per_image(proj["keypoints"], batch["keypoints"], batch["mask"], cfg["alpha"])
            if kind == "template" and name == "refined":
                pairs = sample_pairs(len(dataset), cfg["n_pairs"], cfg["seed"])
                row["transfer_pck"] = transfer_pck(proj["pixel_index"], emb, batch["keypoints"], pairs, cfg["alpha"])
            res["rows"][f"{kind}/{name}"] = row
        res[f"{kind}_refine_loss"] = [float(cams["refined_losses"][0]), float(cams["refined_losses"][-1])]
        # What the shape allows at all: the true camera and a perfect embedding (each point's xyz, matched
        # to the shape's own 3D keypoints). The oracle should reach ~1; a learned row below it is the embedding's.
        exact = project(shape, shape["points"], shape["keypoints"], cams["true"], H)
        res.setdefault("geometry_bound", {})[kind] = pck_per_image(exact["keypoints"], batch["keypoints"],
                                                                   batch["mask"], cfg["alpha"])
    return res


def evaluate(pipe, data: dict) -> dict:
    """All metrics: ``3d`` by backbone, then the 2D rows, viewpoints and transfer on the test images."""
    cfg = pipe.cfg
    out = {"3d": {}}
    for backbone, model in pipe.models.items():
        n = cfg["num_points"] if backbone == "pointnet" else cfg["dgcnn_points"]
        out["3d"][backbone] = evaluate_3d(model, pipe.means[backbone], data["clouds_test"], cfg, n)
    # The baseline on the headline backbone's clouds (DGCNN reads fewer points than PointNet).
    n = cfg["num_points"] if cfg["headline_backbone"] == "pointnet" else cfg["dgcnn_points"]
    out["3d"]["position_baseline"] = position_baseline(data["clouds_train"], data["clouds_test"], cfg, n)
    out["3d"]["position_baseline"]["num_points"] = n
    out.update(evaluate_2d(pipe, data["images_test"], cfg))
    out["image_source"] = data.get("image_source")
    return out
