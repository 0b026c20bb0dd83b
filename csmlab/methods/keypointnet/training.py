"""Training: the 3D keypoint model (saliency + embedding) on annotated clouds, the viewpoint CNN on renders.

``make_data(cfg)`` builds the synthetic data of rung B (``RUNG``): annotated
bird clouds in KeypointNet's layout with the rung's articulation prior (training
clouds from this method's seed, test clouds the shapes of the first birds of the
benchmark split), training images of the rung's priors and the benchmark split.
``fit(cfg, data)`` trains everything and returns a :class:`KeypointPipeline` and one
:class:`csmlab.train.History` per stage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from csmlab.data.kpnet_layout import check_annotations, keypoint_table
from csmlab.data.synthetic import get_category, make_dataset, make_pointclouds, rung_priors
from csmlab.data.synthetic.benchmark import BENCHMARK_SEED
from csmlab.data.synthetic.pointcloud_annotations import keypointnet_records
from csmlab.train import History

from .losses import feature_transform_regularizer, keypoint_embeddings, online_contrastive_loss, saliency_loss
from .networks import KeypointModel
from .viewpoint import ViewpointNet, viewpoint_loss


@dataclass
class KeypointPipeline:
    """The trained stages: 3D models by backbone name, their mean keypoint embeddings, the viewpoint CNN."""

    models: dict = field(default_factory=dict)      # backbone -> KeypointModel (eval mode)
    means: dict = field(default_factory=dict)       # backbone -> [K,D] mean embedding of each semantic id
    viewpoint: ViewpointNet | None = None
    cfg: dict = field(default_factory=dict)
    keypoint_names: list = field(default_factory=list)


RUNG = "B"   # the benchmark rung whose shape and view priors every stage trains and is scored on


def cloud_split(n: int, num_points: int, seed: int, articulation: str = "full") -> dict:
    """Annotated clouds: ``points`` [n,N,3], ``records`` (KeypointNet layout), ``table`` [n,K], plus the raw dict."""
    clouds = make_pointclouds(n, num_points, seed, articulation)
    records = keypointnet_records(clouds)
    k = check_annotations(records, clouds["points"], len(clouds["keypoint_names"]))
    return {"points": clouds["points"], "records": records, "table": keypoint_table(records, k), "clouds": clouds}


def image_split(cfg: dict, root=None, progress: bool = True) -> tuple:
    """(train, test, description): training birds drawn like rung B, and the shared benchmark split (rung B).

    Training images: ``make_dataset`` with this method's seed and the rung's priors. Test
    images: ``benchmark_split("birds", "B")``, capped to ``cfg['n_images_test']`` birds when
    that is set (the smoke preset evaluates on the first few).
    """
    from csmlab.data.synthetic import benchmark_split, rung_priors

    res, s = cfg["resolution"], cfg["seed"]
    train = make_dataset("birds", cfg["n_images_train"], res, seed=1000 + s, root=root, progress=progress,
                         **rung_priors(RUNG))
    test = benchmark_split("birds", rung=RUNG, resolution=res, root=root)
    n = cfg.get("n_images_test")
    if n is not None and n < len(test):
        test = Subset(test, n)
    return train, test, f"benchmark_split(birds, rung B, {res}px){'' if n is None or n >= 300 else f', first {n}'}"


class Subset:
    """The first n samples of a dataset, with the same ``batch`` and ``len`` interface."""

    def __init__(self, dataset, n: int):
        self.dataset, self.n = dataset, int(n)

    def __len__(self) -> int:
        return self.n

    def batch(self, indices):
        idx = list(indices)
        if any(not 0 <= i < self.n for i in idx):
            raise IndexError(f"indices must be in [0, {self.n})")
        return self.dataset.batch(idx)


def rung_clouds(cfg: dict) -> dict:
    """``clouds_train`` and ``clouds_test`` (:func:`cloud_split`) of the rung's shapes: training birds from this
    method's seed, test birds the first ones of the benchmark split (its seed and priors give its images' shapes)."""
    s, art = cfg["seed"], rung_priors(RUNG)["articulation"]
    return {"clouds_train": cloud_split(cfg["n_clouds_train"], cfg["num_points"], 100 + s, art),
            "clouds_test": cloud_split(cfg["n_clouds_test"], cfg["num_points"], BENCHMARK_SEED, art)}


def make_data(cfg: dict, root=None, progress: bool = True, train_images: bool = True) -> dict:
    """Clouds (train / test) and images (train / the benchmark split); ``train_images=False`` skips rendering
    the training images (evaluation needs only the test images)."""
    train_img, test_img, source = image_split(cfg, root, progress) if train_images else (None, None, None)
    if not train_images:
        from csmlab.data.synthetic import benchmark_split
        test_img = benchmark_split("birds", rung=RUNG, resolution=cfg["resolution"], root=root)
        n = cfg.get("n_images_test")
        test_img = Subset(test_img, n) if n is not None and n < len(test_img) else test_img
        source = f"benchmark_split(birds, rung B, {cfg['resolution']}px), {len(test_img)} birds"
    return {**rung_clouds(cfg), "images_train": train_img, "images_test": test_img, "image_source": source}


def subsample(points: torch.Tensor, table: torch.Tensor, num: int, g: torch.Generator):
    """Keep ``num`` points per cloud, always the keypoints; remap the table. (DGCNN's k-NN is quadratic.)"""
    B, N, _ = points.shape
    if num >= N:
        return points, table
    keep = torch.zeros(B, N, dtype=torch.bool)
    b, k = torch.nonzero(table >= 0, as_tuple=True)
    keep[b, table[b, k]] = True
    score = torch.rand(B, N, generator=g) + 2.0 * keep            # keypoints first
    rows = score.topk(num, dim=1).indices.sort(1).values
    new_row = torch.full((B, N), -1, dtype=torch.long)
    new_row.scatter_(1, rows, torch.arange(num).expand(B, -1).contiguous())
    new_table = torch.where(table >= 0, new_row.gather(1, table.clamp_min(0)), table)
    return points.gather(1, rows[..., None].expand(-1, -1, 3)), new_table


def augment(points: torch.Tensor, cfg: dict, g: torch.Generator) -> torch.Tensor:
    """KeypointNet's Gaussian jitter (``add_noise``: sigma, clipped), in object units."""
    noise = (torch.randn(points.shape, generator=g) * cfg["noise_sigma"]).clamp(-cfg["noise_clip"], cfg["noise_clip"])
    return points + noise


def _out_of_time(deadline: float | None) -> bool:
    return deadline is not None and time.time() > deadline


def fit_keypoint_model(cfg: dict, split: dict, backbone: str = "pointnet", progress: bool = True,
                       deadline: float | None = None):
    """Train a :class:`KeypointModel` (saliency + contrastive embedding); returns (model, means, history).

    ``deadline`` (a ``time.time()`` value) stops training early; the history says how far it got.
    """
    g = torch.Generator().manual_seed(cfg["seed"] + (0 if backbone == "pointnet" else 1))
    torch.manual_seed(cfg["seed"])  # the layers' initial weights (local seeding is not offered by nn.Module)
    width = cfg["width"] if backbone == "pointnet" else cfg["dgcnn_width"]
    model = KeypointModel(backbone, cfg["emb_dim"], width, cfg["knn"])
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr_3d"], weight_decay=1e-4)
    iters = cfg["iters_3d"] if backbone == "pointnet" else cfg["dgcnn_iters"]
    n_pts = cfg["num_points"] if backbone == "pointnet" else cfg["dgcnn_points"]
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iters)
    points, table = split["points"], split["table"]
    history = History()
    model.train()
    for it in tqdm(range(iters), desc=f"3D {backbone}", disable=not progress):
        if _out_of_time(deadline):
            break
        idx = torch.randint(len(points), (cfg["batch_3d"],), generator=g)
        pts, tab = subsample(points[idx], table[idx], n_pts, g)
        out = model(augment(pts, cfg, g))
        emb, labels = keypoint_embeddings(out["embedding"], tab)
        terms = {"contrastive": online_contrastive_loss(emb, labels, cfg["margin"]),
                 "saliency": saliency_loss(out["saliency"], tab)}
        if out["trans_feat"] is not None:
            terms["feature_transform"] = feature_transform_regularizer(out["trans_feat"])
        weights = {"contrastive": cfg["w_contrastive"], "saliency": cfg["w_saliency"],
                   "feature_transform": cfg["w_feature_transform"]}
        loss = sum(weights[k] * v for k, v in terms.items())
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        history.log(it, {**terms, "total": loss})
    model.eval()
    return model, mean_embeddings(model, points, table, n_pts), history


@torch.no_grad()
def embed(model: KeypointModel, points: torch.Tensor, batch: int = 16) -> dict:
    """Eval-mode saliency probabilities [B,N] and embeddings [B,N,D], in batches."""
    model.eval()
    sal, emb = [], []
    for i in range(0, len(points), batch):
        out = model(points[i:i + batch])
        sal.append(out["saliency"].softmax(-1)[..., 1])
        emb.append(out["embedding"])
    return {"saliency": torch.cat(sal), "embedding": torch.cat(emb)}


def mean_embeddings(model, points, table, num_points: int | None = None) -> torch.Tensor:
    """[K,D] mean embedding of each semantic id over the annotated clouds (the demo's stored embeddings)."""
    if num_points is not None and num_points < points.shape[1]:
        points, table = subsample(points, table, num_points, torch.Generator().manual_seed(0))
    emb = embed(model, points)["embedding"]
    K = table.shape[1]
    means = torch.zeros(K, emb.shape[-1])
    for k in range(K):
        b = torch.nonzero(table[:, k] >= 0)[:, 0]
        means[k] = emb[b, table[b, k]].mean(0)
    return means


def fit_viewpoint(cfg: dict, dataset, progress: bool = True, deadline: float | None = None):
    """Train the viewpoint CNN on the images' true azimuth and elevation; returns (net, history)."""
    g = torch.Generator().manual_seed(cfg["seed"] + 7)
    torch.manual_seed(cfg["seed"] + 7)
    net = ViewpointNet(cfg["view_base"], downsample=cfg["view_downsample"])
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr_view"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg["lr_view"] * 3, total_steps=cfg["iters_view"])
    history = History()
    net.train()
    for it in tqdm(range(cfg["iters_view"]), desc="viewpoint", disable=not progress):
        if _out_of_time(deadline):
            break
        idx = torch.randint(len(dataset), (cfg["batch_view"],), generator=g)
        batch = dataset.batch(idx.numpy())
        az_logits, el_logits = net(batch["image"])
        terms = viewpoint_loss(az_logits, el_logits, batch["viewpoint"][:, 0], batch["viewpoint"][:, 1])
        loss = terms["azimuth"] + terms["elevation"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        history.log(it, {**terms, "total": loss})
    net.eval()
    return net, history


# Shares of a wall-clock budget per stage (what is left after training goes to evaluation).
BUDGET_SHARES = {"pointnet": 0.22, "dgcnn": 0.13, "viewpoint": 0.45}


def fit(cfg: dict, data: dict, progress: bool = True, budget_s: float | None = None) -> tuple[KeypointPipeline, dict]:
    """Train every stage; returns the pipeline and ``{stage: History}``.

    ``budget_s`` caps the wall-clock time: each stage may use its share (``BUDGET_SHARES``)
    plus whatever earlier stages left unused, and stops early when it runs out.
    """
    start = time.time()
    used = 0.0

    def deadline(stage):
        return None if budget_s is None else start + used + BUDGET_SHARES[stage] * budget_s
    pipe = KeypointPipeline(cfg=dict(cfg), keypoint_names=list(get_category("birds").keypoint_names))
    histories = {}
    for backbone in cfg["backbones"]:
        model, means, hist = fit_keypoint_model(cfg, data["clouds_train"], backbone, progress, deadline(backbone))
        pipe.models[backbone], pipe.means[backbone], histories[backbone] = model, means, hist
        used += BUDGET_SHARES[backbone] * (budget_s or 0)
    pipe.viewpoint, histories["viewpoint"] = fit_viewpoint(cfg, data["images_train"], progress, deadline("viewpoint"))
    return pipe, histories
