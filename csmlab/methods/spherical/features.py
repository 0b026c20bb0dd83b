"""Frozen feature sources phi(I, x) for the CPU scales, and the token grid they live on.

At full scale the features are DINOv2 ViT-B/14 patch tokens before the final norm (``full.py``).
A CPU has no DINO, so two sources stand in, each on a grid of ``resolution / stride`` tokens:

- **(a) a label-free feature network** (:class:`FeatureNet`, :func:`train_feature_net`): a small
  CNN trained on the synthetic bird *images only* by dense contrastive learning under augmentation
  (random resized crop, horizontal flip, colour jitter). Two views of one image are encoded; each
  foreground token of view 1 must pick its own location in view 2 among the other tokens of that
  image (InfoNCE). Masks only choose which tokens to sample; no keypoint, camera or surface label is
  used. Like DINO's training, the flip augmentation asks for flip-equivariant features, which is
  where left/right confusion comes from.
- **(b) a controlled stand-in** (:func:`standin_features`): *not* learned, built from the ground
  truth ``surface_xyz`` as random Fourier features of (|x|, y, z) plus noise. The |x| folds the
  left/right symmetry in on purpose, so a left wing and a right wing get the same feature: DINO's
  known failure, in a form that can be inspected. It is labelled a stand-in wherever it is used.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from csmlab.checks import FLOAT_DTYPES, check_number, check_tensor


def token_grid(resolution: int, stride: int) -> tuple[int, int]:
    """(h, w) of the token grid of a square image; the resolution must be a multiple of the stride."""
    check_number("stride", stride, low=1, integer=True)
    if resolution % stride:
        raise ValueError(f"the image resolution ({resolution}) must be a multiple of stride ({stride})")
    return resolution // stride, resolution // stride


def check_feature_map(feats: torch.Tensor, images: torch.Tensor, stride: int) -> None:
    """``feats`` [B,D,H/stride,W/stride] must belong to ``images`` [B,3,H,W]; ValueError naming both otherwise."""
    check_tensor("images", images, shape="B,3,H,W", dtypes=FLOAT_DTYPES)
    check_tensor("feats", feats, ndim=4, dtypes=FLOAT_DTYPES)
    B, _, H, W = images.shape
    want = (B, H // stride, W // stride)
    if (feats.shape[0], feats.shape[2], feats.shape[3]) != want or H % stride or W % stride:
        raise ValueError(f"feats must be a feature map of the images: [B={B}, D, {H // stride}, {W // stride}] "
                         f"for images of {H}x{W} at stride {stride}, got feats {list(feats.shape)}")


def token_mask(mask: torch.Tensor, grid: tuple[int, int], name: str = "mask") -> torch.Tensor:
    """[B,h,w] bool: a token is foreground when more than half of its pixels are; empty masks are refused."""
    check_tensor(name, mask, shape="B,1,H,W")
    if mask.flatten(1).amax(1).min() <= 0:
        empty = (mask.flatten(1).amax(1) <= 0).nonzero().flatten().tolist()
        raise ValueError(f"{name} is empty (no foreground pixel) for image(s) {empty[:10]}")
    tok = F.adaptive_avg_pool2d(mask.float(), grid)[:, 0] > 0.5
    if not tok.flatten(1).any(1).all():
        small = (~tok.flatten(1).any(1)).nonzero().flatten().tolist()
        raise ValueError(f"{name} covers no token of the {grid[0]}x{grid[1]} grid for image(s) {small[:10]} "
                         f"(object smaller than half a token)")
    return tok


def token_surface(surface_xyz: torch.Tensor, mask: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """[B,h*w,3] mean template point of each token's foreground pixels (0 where a token has none)."""
    m = mask.float()
    num = F.adaptive_avg_pool2d(surface_xyz * m, grid)
    den = F.adaptive_avg_pool2d(m, grid).clamp_min(1e-6)
    return (num / den).flatten(2).transpose(1, 2)


def standin_features(surface_xyz: torch.Tensor, mask: torch.Tensor, stride: int, dim: int = 32,
                     noise: float = 0.3, frequency: float = 3.0, seed: int = 0,
                     noise_seed: int | None = None) -> torch.Tensor:
    """STAND-IN features [B,dim,h,w] from ground truth: cos(W (|x|, y, z) + b) + noise, symmetry folded in.

    Background pixels get noise only. ``seed`` draws the feature function (W, b); ``noise_seed``
    (default ``seed``) the noise. Training and test sets must share ``seed``: a mapper trained on
    one random function means nothing on another (the first medium run drew W per set).
    """
    check_tensor("surface_xyz", surface_xyz, shape="B,3,H,W", dtypes=FLOAT_DTYPES)
    check_tensor("mask", mask, shape=f"{surface_xyz.shape[0]},1,{surface_xyz.shape[2]},{surface_xyz.shape[3]}")
    grid = token_grid(surface_xyz.shape[-1], stride)
    g = torch.Generator().manual_seed(seed)
    proj = torch.randn(dim, 3, generator=g) * frequency
    phase = torch.rand(dim, 1, 1, generator=g) * 2 * math.pi
    if noise_seed is not None and noise_seed != seed:      # noise_seed == seed keeps the one stream of old
        g = torch.Generator().manual_seed(noise_seed)
    folded = torch.cat([surface_xyz[:, :1].abs(), surface_xyz[:, 1:]], 1)
    f = torch.cos(torch.einsum("dc,bchw->bdhw", proj, folded) + phase) * mask
    f = F.adaptive_avg_pool2d(f, grid)
    return f + noise * torch.randn(f.shape, generator=g)


def _gn(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c), c)


class FeatureNet(nn.Module):
    """A small CNN: [B,3,H,W] images -> [B,dim,H/4,W/4] features (two stride-2 convs, then dilated context convs)."""

    stride = 4

    def __init__(self, dim: int = 32, width: int = 32):
        super().__init__()
        self.dim = dim
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 4, stride=2, padding=1), _gn(w), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), _gn(2 * w), nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, padding=2, dilation=2), _gn(2 * w), nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, padding=4, dilation=4), _gn(2 * w), nn.ReLU(),
            nn.Conv2d(2 * w, dim, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_tensor("images", images, shape="B,3,H,W", dtypes=FLOAT_DTYPES)
        return self.body(images * 2 - 1)


def _random_views(n: int, g: torch.Generator, min_scale: float = 0.6):
    """[n,2,3] affine maps (output NDC -> input NDC) of random resized crops, half of them flipped."""
    s = min_scale + (1 - min_scale) * torch.rand(n, generator=g)
    t = (1 - s)[:, None] * (2 * torch.rand(n, 2, generator=g) - 1)
    flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = s * flip, s
    theta[:, :, 2] = t
    return theta


def _jitter(img: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n = img.shape[0]
    bright = 1 + 0.4 * (torch.rand(n, 1, 1, 1, generator=g) - 0.5)
    mix = torch.eye(3) + 0.15 * torch.randn(n, 3, 3, generator=g)          # colour jitter as a channel mix
    return (torch.einsum("nij,njhw->nihw", mix, img) * bright).clamp(0, 1)


def dense_contrastive_loss(net: FeatureNet, images: torch.Tensor, masks: torch.Tensor, g: torch.Generator,
                           n_tokens: int = 48, temperature: float = 0.1) -> torch.Tensor:
    """InfoNCE between two augmented views: each sampled token must find its own location among its image's."""
    n, _, H, W = images.shape
    views, thetas = [], []
    for _ in range(2):
        theta = _random_views(n, g)
        grid = F.affine_grid(theta, (n, 3, H, W), align_corners=False)
        views.append(_jitter(F.grid_sample(images, grid, align_corners=False, padding_mode="border"), g))
        thetas.append(theta)
    f1, f2 = (F.normalize(net(v), dim=1) for v in views)
    h, w = f1.shape[-2:]
    # sample foreground points in the original image (NDC), find them in each view
    fg = F.adaptive_avg_pool2d(masks.float(), (h, w)).flatten(1) > 0.5
    ys, xs = torch.meshgrid(torch.linspace(-1 + 1 / h, 1 - 1 / h, h), torch.linspace(-1 + 1 / w, 1 - 1 / w, w),
                            indexing="ij")
    cells = torch.stack([xs.flatten(), ys.flatten()], -1)
    weights = fg.float() + 1e-6
    pick = torch.multinomial(weights, n_tokens, replacement=False, generator=g)
    pts = cells[pick]                                                        # [n,T,2] original NDC
    sampled = []
    for f, theta in zip((f1, f2), thetas):
        A, b = theta[:, :, :2], theta[:, :, 2]
        local = torch.linalg.solve(A, (pts - b[:, None]).transpose(1, 2)).transpose(1, 2)   # view NDC
        sampled.append(F.grid_sample(f, local[:, :, None], align_corners=False)[..., 0].transpose(1, 2))
    logits = torch.einsum("ntd,nsd->nts", sampled[0], sampled[1]) / temperature
    target = torch.arange(n_tokens).expand(n, -1)
    return F.cross_entropy(logits.reshape(-1, n_tokens), target.reshape(-1))


def train_feature_net(images: torch.Tensor, masks: torch.Tensor, iters: int, batch_size: int = 16,
                      dim: int = 32, width: int = 32, lr: float = 2e-3, seed: int = 0, progress: bool = True):
    """Train :class:`FeatureNet` label-free on [N,3,H,W] images (masks pick the tokens). Returns (net, losses)."""
    from tqdm.auto import tqdm

    check_tensor("images", images, shape="N,3,H,W", dtypes=FLOAT_DTYPES)
    check_tensor("masks", masks, shape=f"{images.shape[0]},1,{images.shape[2]},{images.shape[3]}")
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = FeatureNet(dim, width)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    for _ in tqdm(range(iters), desc="feature net (label-free)", disable=not progress):
        idx = torch.randint(images.shape[0], (batch_size,), generator=g)
        loss = dense_contrastive_loss(net, images[idx], masks[idx], g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return net.eval(), losses


@torch.no_grad()
def encode(net: FeatureNet, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """[N,dim,h,w] frozen features of [N,3,H,W] images."""
    return torch.cat([net(images[i:i + batch_size]) for i in range(0, images.shape[0], batch_size)])
