"""Full-scale To The Point on CUB-200-2011 (the README's recipe): template, data, evaluation, requirements.

- **template**: CMR's SfM mean bird as an icosphere pushed onto its hull (``csm.template.sfm_template``,
  the template CSM's full recipe uses too). TTP's own ``meshes/bird_v2.obj`` ships with their code, not
  with CMR's cachedir, so it is not read here; :class:`CubBird` carries what TTP's objective needs of it.
- **keypoint vertices**: one template vertex per CUB keypoint (TTP's ``kp_dict``), chosen mirror-consistently
  (:func:`symmetric_keypoint_vertices`), so that a mirrored image's keypoints (``flip_train``) land on the
  mirror twins of the vertices; ``CubBird.keypoints_template`` holds those vertices' positions.
- **data**: CMR's train split read lazily (a batch is drawn by index, CMR's 5 % box jitter, as TTP's
  ``data/cub.py``), and the test split stacked for evaluation. The SfM cameras are dropped from the
  training batches: they live in CMR's frame, not the template's, and TTP does not train on them.
- **evaluation**: TTP's ``benchmark/evaluate.py``: the mean mask IoU of the solved shape's silhouette,
  and keypoint PCK@0.1 of the projected keypoint vertices (error over the longer side of the bird's box,
  PCK per keypoint over the images where it is visible, then the mean over keypoints), and the same for
  the regressed points of those vertices (their "Regression" line).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from csmlab.geometry import Mesh, ndc_to_pixel, ortho_project

# TTP's CUB numbers (NeurIPS 2021). Not entered: the paper could not be opened here, and a number that cannot
# be cited is not typed in. None prints as "not verified".
PAPER = {"mask_iou": None, "keypoint_pck": None,
         "source": "Kokkinos & Kokkinos, NeurIPS 2021, the CUB table (not verified here: no access to the paper)"}
CMR_JITTER = 0.05   # CMR's jitter_frac, which TTP's data/cub.py inherits


@dataclass
class CubBird:
    """What TTP's objective reads of a category (``TTPObjective``), for CUB's mean bird."""

    name: str
    template: Mesh
    vertex_flip: torch.Tensor         # [V] long: each vertex's mirror twin
    keypoints_template: torch.Tensor  # [15,3] the SfM keypoints, canonical frame
    keypoint_flip: torch.Tensor       # [15] long: CUB's left/right permutation
    keypoint_names: tuple
    basis: torch.Tensor               # [0,V,3]: no ground-truth basis exists for real birds


def cub_category(root=None, subdiv: int = 3) -> CubBird:
    """CMR's SfM mean bird as TTP's template (needs CMR's ``sfm/anno_train.mat`` under the data root)."""
    from csmlab.data.real.cub import CUB_FLIP_PERM, CUB_KEYPOINT_NAMES, sfm_mean_shape

    from ..csm.template import sfm_template

    t = sfm_template(root, subdiv=subdiv)
    keypoints, _ = sfm_mean_shape(root)
    flip = torch.tensor(CUB_FLIP_PERM, dtype=torch.long)
    chosen = symmetric_keypoint_vertices(t.template.verts.float(), t.vertex_flip.long(), keypoints.float(), flip)
    return CubBird("cub_sfm", t.template, t.vertex_flip.long(), t.template.verts[chosen].float(), flip,
                   tuple(CUB_KEYPOINT_NAMES), torch.zeros(0, t.template.num_verts, 3))


def symmetric_keypoint_vertices(verts: torch.Tensor, vertex_flip: torch.Tensor, keypoints: torch.Tensor,
                                keypoint_flip: torch.Tensor) -> torch.Tensor:
    """[K] template vertices for ``keypoints`` [K,3] with ``vertex_flip[v_k] == v_{keypoint_flip[k]}``.

    A keypoint on the midline (its own mirror) takes the nearest vertex that is its own twin; a left/right
    pair takes the vertex nearest the mean of the one and the mirror image of the other, and its twin. The plain
    nearest vertex of a midline keypoint can sit just off the plane, and its twin is then another vertex.
    """
    mirror = torch.tensor([-1.0, 1.0, 1.0], dtype=verts.dtype)
    on_plane = torch.nonzero(vertex_flip == torch.arange(len(vertex_flip)))[:, 0]
    out = torch.full((keypoints.shape[0],), -1, dtype=torch.long)
    for k in range(keypoints.shape[0]):
        j = int(keypoint_flip[k])
        if out[k] >= 0:
            continue
        if j == k:
            pool = on_plane if len(on_plane) else torch.arange(len(verts))
            out[k] = pool[(verts[pool] - keypoints[k]).norm(dim=-1).argmin()]
        else:
            target = 0.5 * (keypoints[k] + keypoints[j] * mirror)
            out[k] = (verts - target).norm(dim=-1).argmin()
            out[j] = vertex_flip[out[k]]
    return out


def category_for(cfg: dict, root=None):
    """The template a config trains on: CUB's mean bird for ``data="cub"``, else the synthetic category."""
    if cfg.get("data") == "cub":
        return cub_category(root)
    from csmlab.data.synthetic import get_category

    return get_category(cfg["category"])


def cub_splits(cfg: dict, root=None):
    """(lazy train dataset, stacked test split) of CUB with CMR's annotations at ``cfg['resolution']``."""
    from csmlab.data.real.cub import CubDataset

    from .fit_e2e import stack_samples

    train = CubDataset(root, "train", img_size=cfg["resolution"], jitter_frac=CMR_JITTER, seed=cfg["seed"])
    test = CubDataset(root, cfg.get("test_split", "test"), img_size=cfg["resolution"])
    n_test = len(test) if cfg.get("n_test") is None else min(int(cfg["n_test"]), len(test))
    samples = [test[i] for i in range(n_test)]
    stacked = without_cameras(stack_samples(samples))
    stacked["bbox"] = torch.stack([torch.as_tensor(s["bbox"], dtype=torch.float32) for s in samples])
    return train, stacked


def without_cameras(batch: dict) -> dict:
    """The batch without CMR's SfM cameras (another frame than the template's; TTP does not train on them)."""
    return {k: v for k, v in batch.items() if not k.startswith("cam_")}


def is_lazy(data) -> bool:
    """True for an indexable dataset of sample dicts (CUB), read a batch at a time instead of stacked."""
    return (hasattr(data, "__getitem__") and hasattr(data, "__len__") and not hasattr(data, "batch")
            and not isinstance(data, (dict, list, tuple)))


def lazy_batch_sampler(dataset, batch_size: int, seed: int, device: torch.device):
    """``iteration -> batch`` read from ``dataset``: indices from a generator seeded by (seed, iteration); the
    dataset's epoch (its jitter's seed) advances once per pass over the data."""
    from .fit_e2e import stack_samples

    n = len(dataset)
    if batch_size > n:
        raise ValueError(f"batch_size ({batch_size}) is larger than the training set ({n})")
    per_epoch = max(n // batch_size, 1)

    def batch_fn(iteration: int) -> dict:
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(iteration // per_epoch)
        g = torch.Generator().manual_seed(seed * 1_000_003 + iteration)
        idx = torch.randperm(n, generator=g)[:batch_size].tolist()
        batch = without_cameras(stack_samples([dataset[i] for i in idx]))
        return {k: v.to(device) for k, v in batch.items()}

    return batch_fn


def keypoint_pck(pred: torch.Tensor, keypoints: torch.Tensor, bbox: torch.Tensor, threshold: float = 0.1) -> float:
    """TTP's PCK: ``pred`` [N,K,2] and ``keypoints`` [N,K,3] (x, y, visible) in pixels, ``bbox`` [N,4] (x1, y1,
    x2, y2). A keypoint is correct when its error is below ``threshold`` x the box's longer side; the PCK of
    each keypoint is over the images where it is visible, and the result is their mean."""
    if pred.dim() != 3 or pred.shape[-1] != 2 or keypoints.shape[:2] != pred.shape[:2] or keypoints.shape[-1] != 3:
        raise ValueError(f"pred must be [N,K,2] and keypoints [N,K,3] with the same N, K; got {list(pred.shape)} "
                         f"and {list(keypoints.shape)}")
    if bbox.shape != (pred.shape[0], 4):
        raise ValueError(f"bbox must be [{pred.shape[0]},4], got {list(bbox.shape)}")
    side = torch.maximum(bbox[:, 2] - bbox[:, 0], bbox[:, 3] - bbox[:, 1])
    err = (pred - keypoints[..., :2]).norm(dim=-1) / side[:, None]
    vis = keypoints[..., 2] > 0.5
    seen = vis.sum(0)
    if not bool((seen > 0).any()):
        raise ValueError("no keypoint is visible in any image: PCK is undefined")
    per_keypoint = ((err < threshold) & vis).sum(0)[seen > 0] / seen[seen > 0]
    return float(per_keypoint.float().mean())


@torch.no_grad()
def evaluate_cub(model, data: dict, cfg: dict, category, threshold: float = 0.1) -> dict:
    """Mean mask IoU and keypoint PCK@``threshold`` (projected and regressed) on a :func:`cub_splits` test dict."""
    from csmlab.metrics import mask_iou

    from .evaluate_e2e import predict
    from .fit_e2e import keypoint_vertices

    for key in ("image", "mask", "keypoints", "bbox"):
        if key not in data:
            raise ValueError(f"data must hold {key!r} (cub_splits' test dict)")
    pred = predict(model, data["image"], cfg)
    kv = keypoint_vertices(category)
    S = data["image"].shape[-1]
    projected = ortho_project(pred["verts"][:, kv].double(), pred["scale"].double(), pred["rotation"].double(),
                              pred["trans"].double()).float()
    return {"mask_iou": float(mask_iou(pred["silhouette"], data["mask"]).mean()),
            "keypoint_pck": keypoint_pck(ndc_to_pixel(projected, S, S), data["keypoints"], data["bbox"], threshold),
            "keypoint_pck_regressed": keypoint_pck(ndc_to_pixel(pred["points"][:, kv], S, S), data["keypoints"],
                                                   data["bbox"], threshold),
            "n_images": int(data["image"].shape[0]), "threshold": threshold}


def requirements(cfg: dict, root=None) -> list[str]:
    """What a full-scale run of ``cfg`` still needs, one sentence each (empty: ready to run)."""
    needs = []
    if not torch.cuda.is_available():
        needs.append("a CUDA GPU with nvdiffrast (the recipe renders 256 px silhouettes and textures of 8 birds "
                     "and their mirror images per step, for 200 epochs)")
    if cfg.get("encoder_weights") == "imagenet":
        from csmlab.nets import missing_weights

        needs.append(missing_weights("resnet18", root))
    if cfg.get("data") == "cub":
        from csmlab.data.real.cub import missing_cub

        needs.append(missing_cub(root))
    return [n for n in needs if n]
