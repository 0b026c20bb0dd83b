"""KeypointNet's 3D benchmark metrics (``benchmark_scripts/metrics.py`` and ``utils.gen_geo_dists``).

- Geodesic distance: shortest paths on the 20-nearest-neighbour graph of the cloud,
  edges weighted by their length, undirected (``kneighbors_graph(pc, 20,
  mode='distance')`` + ``graph_shortest_path``), here with ``scipy``. Points the graph
  does not connect are at distance ``inf``. Only the rows asked for are computed
  (every metric below needs the distances from the ground-truth keypoints only).
- Saliency mIoU at threshold t: over all models, ``(npos - fn) / (npos + fp)``, where a
  predicted keypoint is a false positive if no ground-truth keypoint is within t, and a
  ground-truth keypoint is a false negative if no prediction is within t.
- Saliency mAP at threshold t: every point is a detection scored by its saliency; in
  descending score order a detection is a true positive if its geodesically nearest
  ground-truth keypoint is closer than t and not yet taken (else a false positive);
  AP is the VOC area under the precision envelope.
- Correspondence PCK: fraction of annotated keypoints whose prediction is closer than t
  (geodesic), per model, averaged over models, for t = 0.00, 0.01, ..., 0.10.

All comparisons are strict (``<``), as in the official code, so PCK and mAP at t = 0 are 0.
The benchmark's thresholds are in the units of ShapeNet's models (bounding-box diagonal 1):
pass clouds scaled that way (:func:`normalize_diagonal`).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import shortest_path
from scipy.spatial import cKDTree

from csmlab.data.kpnet_layout import check_cloud

THRESHOLDS = tuple(round(0.01 * i, 2) for i in range(11))


def normalize_diagonal(points: torch.Tensor) -> torch.Tensor:
    """Scale a cloud [N,3] (or batch [B,N,3]) so that its bounding-box diagonal is 1."""
    check_cloud(points)
    diag = (points.amax(-2) - points.amin(-2)).norm(dim=-1, keepdim=True)[..., None]
    if (diag <= 0).any():
        raise ValueError("points collapse to a single location: the bounding-box diagonal is 0")
    return points / diag


def knn_graph(points: np.ndarray, k: int = 20) -> csr_matrix:
    """Sparse [N,N] graph linking each point to its k nearest neighbours, weighted by distance."""
    n = len(points)
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, {n - 1}] for a cloud of {n} points, got {k}")
    dist, idx = cKDTree(points).query(points, k=k + 1)
    rows = np.repeat(np.arange(n), k)
    # Drop each point's own entry (column 0; duplicated points may swap places with it).
    keep = idx[:, 1:].reshape(-1) != rows
    return csr_matrix((dist[:, 1:].reshape(-1)[keep], (rows[keep], idx[:, 1:].reshape(-1)[keep])), shape=(n, n))


def geodesic_distances(points, sources=None, k: int = 20) -> np.ndarray:
    """Geodesic distances on the k-NN graph: [len(sources), N] (all rows when ``sources`` is None)."""
    pts = check_cloud(torch.as_tensor(points), "points")
    if pts.dim() != 2:
        raise ValueError(f"points must be one cloud [N,3], got {list(pts.shape)}")
    graph = knn_graph(pts.double().numpy(), k)
    idx = None if sources is None else np.asarray(sources, dtype=np.int64).reshape(-1)
    if idx is not None and ((idx < 0) | (idx >= len(pts))).any():
        raise ValueError(f"sources must index the {len(pts)} points, got {idx.tolist()}")
    return shortest_path(graph, method="D", directed=False, indices=idx)


def saliency_miou(pred: list, gt: list, geo: list, threshold: float) -> float:
    """mIoU of predicted keypoint sets. pred[m], gt[m]: point indices; geo[m]: [len(gt[m]), N] distances."""
    npos = fp = fn = 0
    for p, g, d in zip(pred, gt, geo):
        p, g = np.asarray(p, dtype=np.int64), np.asarray(g, dtype=np.int64)
        npos += len(g)
        dist = np.asarray(d)[:, p]                         # [G, P]
        fp += int(np.all(dist > threshold, axis=0).sum()) if len(g) else len(p)
        fn += int(np.all(dist > threshold, axis=1).sum())
    return (npos - fn) / max(npos + fp, np.finfo(np.float64).eps)


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope, summed where the recall changes (VOC's 'correct AP')."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def saliency_map(scores: list, gt: list, geo: list, threshold: float) -> float:
    """mAP of saliency scores. scores[m]: [N] per point; gt[m]: indices; geo[m]: [len(gt[m]), N]."""
    model, point, conf = [], [], []
    for m, s in enumerate(scores):
        s = np.asarray(s, dtype=np.float64)
        model.append(np.full(len(s), m))
        point.append(np.arange(len(s)))
        conf.append(s)
    model, point, conf = np.concatenate(model), np.concatenate(point), np.concatenate(conf)
    order = np.argsort(-conf, kind="stable")
    model, point = model[order], point[order]
    npos = sum(len(g) for g in gt)
    nearest = np.full(len(model), -1)
    dmin = np.full(len(model), np.inf)
    for m, d in enumerate(geo):
        sel = model == m
        if len(gt[m]):
            d = np.asarray(d)[:, point[sel]]               # [G, detections of m]
            nearest[sel], dmin[sel] = d.argmin(0), d.min(0)
    hit = dmin < threshold
    key = model * (max((len(g) for g in gt), default=0) + 1) + nearest
    tp = np.zeros(len(model))
    first = np.unique(np.where(hit, key, -1), return_index=True)[1]  # first detection of each (model, gt)
    first = first[hit[first]]
    tp[first] = 1.0
    tp_c, fp_c = np.cumsum(tp), np.cumsum(1.0 - tp)
    recall = tp_c / float(max(npos, 1))
    precision = tp_c / np.maximum(tp_c + fp_c, np.finfo(np.float64).eps)
    return voc_ap(recall, precision)


def correspondence_pck(gt_index, pred_index, geo: list, thresholds=THRESHOLDS) -> np.ndarray:
    """[len(thresholds)] PCK. gt_index, pred_index: [n,K] (-1: not annotated); geo[m]: [K, N] rows of gt_index[m].

    Row k of ``geo[m]`` holds the distances from keypoint k of model m (any values where it is absent).
    """
    gt_index, pred_index = np.asarray(gt_index), np.asarray(pred_index)
    if gt_index.shape != pred_index.shape or gt_index.ndim != 2:
        raise ValueError(f"gt_index and pred_index must both be [n,K], got {gt_index.shape} and {pred_index.shape}")
    pcks = []
    for m in range(len(gt_index)):
        valid = np.nonzero(gt_index[m] >= 0)[0]
        if len(valid) == 0:
            continue
        d = np.asarray(geo[m])[valid, pred_index[m, valid]]
        pcks.append([np.mean(d < t) for t in thresholds])
    if not pcks:
        raise ValueError("no model has an annotated keypoint: correspondence PCK is undefined")
    return np.mean(np.asarray(pcks), 0)
