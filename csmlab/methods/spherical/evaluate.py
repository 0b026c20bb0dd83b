"""Matching and metrics: nearest-neighbour keypoint transfer with raw features, the sphere, and their fusion.

Protocol (the authors' ``pck_spair_pascal_sphere.py``, on a token grid):

- similarity = cosine of the frozen features, of the sphere points, or the fusion
  ``0.8 * features + 0.2 * sphere`` (their ``mixing_ratio``);
- **PCK@alpha**: keypoints visible in both images; the prediction is the centre of the best target
  token; correct within ``alpha * max(bbox)`` of the target object;
- **KAP@alpha**: every keypoint visible in the source (``csmlab.metrics.kap_entries``);
- **left/right confusion** (``lr_confusion``): of the source foreground tokens off the mirror plane
  (|x| > ``margin`` in template units, ground truth ``surface_xyz``) whose true match is visible in
  the target (a target token on the same side within ``reach`` of the same template point), the
  fraction whose best target match lies off the plane on the *other* side. ``lr_confusion_all``
  counts every lateral token; where the target shows only the other side no answer is right
  there (every visible token is on the other side), which is the case KAP scores instead.

Choices of ours, stated: target candidates are the target's foreground tokens (the authors
score every patch; our sphere is undefined off the mask); a source keypoint is read at the
nearest foreground token (tip keypoints sit on the silhouette), as ``csmlab.metrics.snap_to_mask``;
KAP's distance to a candidate is measured from the token's centre (the script measures it at the
pixel that nearest-neighbour downsampling keeps, the patch's top-left one, while its PCK uses the
centre: half a patch apart). The full recipe (``full.py``) keeps the script's all-patch candidates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from csmlab.metrics import kap, kap_entries, sample_pairs

from .features import token_surface


def token_centres(grid: tuple[int, int], resolution: int) -> torch.Tensor:
    """[h*w,2] pixel (x, y) centres of the tokens, row-major."""
    h, w = grid
    sy, sx = resolution / h, resolution / w
    ys, xs = torch.meshgrid((torch.arange(h) + 0.5) * sy, (torch.arange(w) + 0.5) * sx, indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], -1).double()


def bbox_size(mask: torch.Tensor) -> torch.Tensor:
    """[N] max(width, height) in pixels of each [N,1,H,W] foreground's bounding box."""
    m = mask[:, 0] > 0.5
    rows, cols = m.any(2), m.any(1)

    def extent(a):
        idx = torch.arange(a.shape[1]).expand_as(a)
        return (torch.where(a, idx, -1).amax(1) - torch.where(a, idx, a.shape[1]).amin(1) + 1).clamp_min(1)
    return torch.maximum(extent(rows), extent(cols)).double()


def evaluation_fields(batch: dict, token_mask: torch.Tensor) -> dict:
    """Ground truth the metrics read: keypoints [N,K,3], token template points [N,h*w,3], bbox [N], resolution."""
    grid = tuple(token_mask.shape[-2:])
    out = {"keypoints": batch["keypoints"].double(), "bbox": bbox_size(batch["mask"]),
           "resolution": int(batch["mask"].shape[-1]), "token_mask": token_mask}
    if "surface_xyz" in batch:
        out["surface"] = token_surface(batch["surface_xyz"], batch["mask"], grid)
    return out


def _unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x.double(), dim=-1)


def similarity(parts: list, s: int, t: int, src_tokens: torch.Tensor, tgt_tokens: torch.Tensor) -> torch.Tensor:
    """sum_w w * cos(emb[s, src_tokens], emb[t, tgt_tokens]) over the (weight, [N,h*w,C] embedding) parts."""
    return sum(w * _unit(e[s, src_tokens]) @ _unit(e[t, tgt_tokens]).T for w, e in parts)


def nearest_fg_token(xy: torch.Tensor, fg: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Index of the foreground token whose centre is nearest to each [K,2] pixel position."""
    idx = torch.nonzero(fg)[:, 0]
    return idx[torch.cdist(xy.double(), centres[idx]).argmin(1)]


def lr_confusion_counts(parts, s, t, data, margin: float = 0.1, reach: float = 0.15) -> dict:
    """Counts of lateral source tokens of the pair (s, t) matched to the other side; see the module docstring.

    ``visible``: only tokens whose true match is visible in the target (a target token on the same
    side within ``reach`` of the same template point); ``all``: every lateral token.
    """
    fg_s, fg_t = data["token_mask"][s].flatten(), data["token_mask"][t].flatten()
    xs, xt = data["surface"][s], data["surface"][t]
    src = torch.nonzero(fg_s & (xs[:, 0].abs() > margin))[:, 0]
    tgt = torch.nonzero(fg_t)[:, 0]
    counts = {"visible": [0, 0], "all": [0, 0]}
    if src.numel() == 0 or tgt.numel() == 0:
        return counts
    best = tgt[similarity(parts, s, t, src, tgt).argmax(1)]
    confused = (torch.sign(xt[best, 0]) != torch.sign(xs[src, 0])) & (xt[best, 0].abs() > margin)
    same_side = torch.sign(xs[src, 0])[:, None] == torch.sign(xt[tgt, 0])[None]
    eligible = (same_side & (torch.cdist(xs[src].double(), xt[tgt].double()) < reach)).any(1)
    counts["all"] = [int(confused.sum()), int(src.numel())]
    counts["visible"] = [int((confused & eligible).sum()), int(eligible.sum())]
    return counts


def score_pairs(methods: dict, data: dict, pairs: torch.Tensor, alphas=(0.1, 0.05), confusion: bool = True) -> dict:
    """PCK@alpha, KAP@alpha and left/right confusion of each method over the pairs.

    methods: {name: [(weight, [N,h*w,C] token embeddings), ...]} (one part: plain cosine; two: a fusion).
    data: :func:`evaluation_fields` (with ``surface`` for the confusion).
    """
    tok = data["token_mask"]
    grid = tuple(tok.shape[-2:])
    centres = token_centres(grid, data["resolution"])
    kps, bbox = data["keypoints"], data["bbox"]
    out = {}
    for name, parts in methods.items():
        correct = {a: 0 for a in alphas}
        n_both, entries = 0, {a: [] for a in alphas}
        conf = {"visible": [0, 0], "all": [0, 0]}
        for s, t in pairs.tolist():
            fg_t = tok[t].flatten()
            cand = torch.nonzero(fg_t)[:, 0]
            vis_s = kps[s, :, 2] > 0.5
            if vis_s.any():
                src = nearest_fg_token(kps[s, vis_s, :2], tok[s].flatten(), centres)
                sim = similarity(parts, s, t, src, cand)
                vis_t = kps[t, vis_s, 2] > 0.5
                pred = centres[cand[sim.argmax(1)]]
                err = (pred - kps[t, vis_s, :2]).norm(dim=-1)
                for a in alphas:
                    correct[a] += int(((err <= a * bbox[t]) & vis_t).sum())   # csmlab.metrics.pck; the script uses <
                    entries[a].append(kap_entries(sim, centres[cand], kps[t, vis_s, :2], vis_t, float(a * bbox[t])))
                n_both += int(vis_t.sum())
            if confusion and "surface" in data:
                for key, (c, e) in lr_confusion_counts(parts, s, t, data).items():
                    conf[key][0] += c
                    conf[key][1] += e
        row = {}
        for a in alphas:
            row[f"pck@{a}"] = correct[a] / max(n_both, 1)
            row[f"kap@{a}"] = float(kap(entries[a])) if entries[a] else float("nan")
        if confusion and "surface" in data:
            row["lr_confusion"] = conf["visible"][0] / max(conf["visible"][1], 1)
            row["lr_confusion_all"] = conf["all"][0] / max(conf["all"][1], 1)
            row["lr_tokens"] = conf["visible"][1]
        out[name] = row
    return out


def method_table(feats: torch.Tensor, sphere: torch.Tensor | None, fuse: float = 0.8) -> dict:
    """{raw, sphere, fused} similarity specs from [N,D,h,w] features and [N,h*w,3] sphere points."""
    tokens = feats.flatten(2).transpose(1, 2)
    methods = {"raw features": [(1.0, tokens)]}
    if sphere is not None:
        methods["sphere"] = [(1.0, sphere)]
        methods["fused"] = [(fuse, tokens), (1 - fuse, sphere)]
    return methods


def true_sphere(data: dict) -> torch.Tensor:
    """[N,h*w,3] the ground-truth sphere map (template points of the tokens, normalised; 0 off the mask)."""
    return F.normalize(data["surface"].float(), dim=-1) * data["token_mask"].flatten(1)[..., None]


def oracle_metrics(data: dict, n_pairs: int, seed: int = 0, alphas=(0.1, 0.05), fuse: float = 0.8) -> dict:
    """The ceiling of this evaluation: the true sphere map alone and fused with the features (same pairs)."""
    tokens, sph = data["feats"].flatten(2).transpose(1, 2), true_sphere(data)
    methods = {"true sphere": [(1.0, sph)], "fused with true sphere": [(fuse, tokens), (1 - fuse, sph)]}
    return score_pairs(methods, data, sample_pairs(data["feats"].shape[0], n_pairs, seed), alphas)


def evaluate(model, data: dict, n_pairs: int = 300, seed: int = 0, alphas=(0.1, 0.05), fuse: float = 0.8) -> dict:
    """Metrics of raw features, sphere and fused matching on ``data`` (``prepare`` + ``evaluation_fields``)."""
    from .fit import sphere_tokens

    for key in ("feats", "keypoints", "token_mask", "bbox", "resolution"):
        if key not in data:
            raise ValueError(f"data must hold {key!r} (prepare() and evaluation_fields()), got keys {sorted(data)}")
    sph = sphere_tokens(model, data) if model is not None else None
    pairs = sample_pairs(data["feats"].shape[0], n_pairs, seed)
    return score_pairs(method_table(data["feats"], sph, fuse), data, pairs, alphas)
