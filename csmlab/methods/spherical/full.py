"""The paper's recipe at full scale: SPair-71k, DINOv2 ViT-B/14 pre-norm patch tokens at 448^2 (32x32).

GPU and data only. :func:`requirements` lists what is missing; :func:`train_full` follows
``train_sph.py`` (18 categories, one-hot category condition, ``azimuth_id`` as the 8 bins, 200 epochs,
batch 64, Adam 1e-3 on the mapper and prototype, DINO frozen) with RandomResizedCrop 0.5-1.5;
:func:`evaluate_full` follows ``pck_spair_pascal_sphere.py``: cosine similarity over all target
patches, fusion 0.8 / 0.2, PCK@alpha*max(bbox) on the pair's keypoints, KAP on the keypoints
visible in the source, per category, averaged with the script's category weights.
Not run in this repository's CI (no GPU, no SPair); written from the authors' code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from csmlab.metrics import kap, kap_entries

from .fit import build
from .losses import spherical_losses

# the evaluation script's per-category weights for SPair-71k (test pairs per category), in SPAIR_CATEGORIES order
SPAIR_WEIGHTS = (690, 650, 702, 702, 870, 644, 564, 600, 646, 640, 600, 600, 702, 650, 862, 664, 756, 692)


def requirements(root=None) -> list[str]:
    """What the full recipe needs and is missing here (empty when it can run)."""
    from csmlab.data.real.layout_wave2 import spair_dir
    from csmlab.nets.weights import weights_path

    missing = []
    if not torch.cuda.is_available():
        missing.append("a CUDA GPU (200 epochs of ViT-B/14 tokens at 448^2 are days on a CPU)")
    d = spair_dir(root)
    if not (d / "PairAnnotation").is_dir():
        missing.append(f"SPair-71k under {d} (python data_scripts/prepare_spair.py, ~230 MB)")
    w = weights_path("dinov2_vitb14", root)
    if not w.exists():
        missing.append(f"DINOv2 ViT-B/14 weights at {w} (python -m csmlab.nets fetch dinov2_vitb14)")
    return missing


def explain_requirements(root=None) -> str:
    miss = requirements(root)
    if not miss:
        return "full-scale Spherical Maps can run here: train_full(cfg) then evaluate_full(...)"
    return "full-scale Spherical Maps needs: " + "; ".join(miss)


def dino_tokens(backbone, images: torch.Tensor) -> torch.Tensor:
    """[B,768,h,w] pre-norm patch tokens (the authors' ``x_prenorm[:, 1:]``) of [B,3,H,W] images in [0,1]."""
    from csmlab.nets.imagenet import imagenet_normalize

    with torch.no_grad():
        return backbone.patch_features(imagenet_normalize(images), norm=False)


def random_resized_crop(images, masks, scale=(0.5, 1.5), generator=None):
    """Zoom each image and mask by a factor in ``scale`` about a random centre (zeros outside the image)."""
    n = images.shape[0]
    s = scale[0] + (scale[1] - scale[0]) * torch.rand(n, generator=generator)
    t = (2 * torch.rand(n, 2, generator=generator) - 1) * (1 - s).abs()[:, None]
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = s
    theta[:, :, 2] = t
    grid = F.affine_grid(theta.to(images), images.shape, align_corners=False)
    return (F.grid_sample(images, grid, align_corners=False),
            F.grid_sample(masks, grid, mode="nearest", align_corners=False))


def _training_images(root, img_size):
    from csmlab.data.real.spair import SPAIR_CATEGORIES, SpairImages, category_split

    items = []
    for cat, pairs in sorted(category_split(root, "trn").items()):
        imgs = SpairImages(root, cat, img_size=img_size)
        names = sorted({p.split("-")[1] for p in pairs} | {p.split("-")[2].split(":")[0] for p in pairs})
        items += [(SPAIR_CATEGORIES.index(cat), imgs, imgs.index_of(n)) for n in names]
    return items


def train_full(cfg: dict, root=None, device="cuda", progress: bool = True, backbone=None):
    """Train the mapper and prototype on SPair-71k trn images; returns (model, backbone).

    ``backbone=None`` loads the official DINOv2 ViT-B/14 (and first checks :func:`requirements`);
    tests pass a tiny ViT to run the same code on a fixture.
    """
    from tqdm.auto import tqdm

    from csmlab.nets import pretrained

    if backbone is None:
        miss = requirements(root)
        if miss:
            raise ValueError("cannot run the full recipe: missing " + "; ".join(miss))
        backbone = pretrained("dinov2_vitb14", root=root, device=device, freeze=True)
    model = build(cfg).to(device)
    opt = torch.optim.Adam(list(model.mapper.parameters()) + list(model.prototype.parameters()), lr=cfg["lr"])
    items = _training_images(root, cfg["resolution"])
    g = torch.Generator().manual_seed(cfg["seed"])
    grid = (cfg["resolution"] // cfg["stride"],) * 2
    for _ in tqdm(range(cfg["epochs"]), desc="epochs", disable=not progress):
        order = torch.randperm(len(items), generator=g).tolist()
        for i in range(0, len(order), cfg["batch_size"]):
            batch = [items[j] for j in order[i:i + cfg["batch_size"]]]
            samples = [imgs[k] for _, imgs, k in batch]
            img = torch.stack([s["image"] for s in samples])
            mask = torch.stack([s["mask"] for s in samples])
            img, mask = random_resized_crop(img, mask, cfg["crop_scale"], g)
            img, mask = img.to(device), mask.to(device)
            tok = F.interpolate(mask, grid, mode="nearest")[:, 0] > 0.5
            keep = tok.flatten(1).any(1)
            if not keep.any():
                continue
            feats = dino_tokens(backbone, img[keep])
            cats = torch.tensor([c for c, _, _ in batch], device=device)[keep]
            bins = torch.tensor([s["azimuth_id"] for s in samples], device=device)[keep]
            terms, _ = spherical_losses(model, feats, tok[keep], cats, bins, cfg)
            loss = sum(terms.values())
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval(), backbone


@torch.no_grad()
def evaluate_full(model, backbone, root=None, device="cuda", alphas=(0.1, 0.05, 0.01), fuse: float = 0.8,
                  sphere: bool = True, progress: bool = True, categories=None, img_size: int = 448) -> dict:
    """Per-category and weighted PCK@alpha and KAP@alpha on SPair-71k test pairs (DINO-only features)."""
    from tqdm.auto import tqdm

    from csmlab.data.real.spair import SPAIR_CATEGORIES, SpairPairs

    from .evaluate import token_centres

    sets = [SpairPairs(root, "test", category=c, img_size=img_size) for c in (categories or SPAIR_CATEGORIES)]
    res = {}
    for p in tqdm((ps[i] for ps in sets for i in range(len(ps))), total=sum(map(len, sets)), desc="SPair test pairs",
                  disable=not progress):
        src, trg = p["source"], p["target"]
        img = torch.stack([src["image"], trg["image"]]).to(device)
        feats = dino_tokens(backbone, img)
        h, w = feats.shape[-2:]
        tokens = F.normalize(feats.flatten(2).transpose(1, 2), dim=-1)
        sim = tokens[0] @ tokens[1].T
        if sphere:
            sph = F.normalize(model.mapper(feats.flatten(2).transpose(1, 2), torch.ones(2, h * w, device=device),
                                           (h, w)), dim=-1)
            sim = fuse * sim + (1 - fuse) * sph[0] @ sph[1].T
        centres = token_centres((h, w), img_size).to(device)
        box = trg["bbox"]
        size = float(max(box[2] - box[0], box[3] - box[1]))
        ks, kt = src["keypoints"].to(device).double(), trg["keypoints"].to(device).double()
        vis_s = ks[:, 2] > 0
        col = (ks[vis_s, 0] * w / img_size).long().clamp(0, w - 1)
        row = (ks[vis_s, 1] * h / img_size).long().clamp(0, h - 1)
        s = sim[row * w + col].double()
        r = res.setdefault(p["category"], {"n": 0, **{f"c{a}": 0 for a in alphas}, **{f"e{a}": [] for a in alphas}})
        both = kt[vis_s, 2] > 0
        pred = centres[s.argmax(1)]
        err = (pred - kt[vis_s, :2]).norm(dim=-1)
        r["n"] += int(both.sum())
        for a in alphas:
            r[f"c{a}"] += int(((err < a * size) & both).sum())
            r[f"e{a}"].append(kap_entries(s, centres, kt[vis_s, :2], both, a * size))
    out = {}
    for cat, r in res.items():
        out[cat] = {**{f"pck@{a}": r[f"c{a}"] / max(r["n"], 1) for a in alphas},
                    **{f"kap@{a}": float(kap(r[f"e{a}"])) for a in alphas}}
    weights = {c: SPAIR_WEIGHTS[SPAIR_CATEGORIES.index(c)] for c in out}
    total = sum(weights.values())
    out["weighted"] = {k: sum(out[c][k] * weights[c] for c in weights) / total for k in next(iter(out.values()))}
    return out
