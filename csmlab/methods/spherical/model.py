"""The sphere mapper and the spherical prototype (the heads of the authors' ``dino_mapper.py``).

Read from VICO-UoE/SphericalMaps, ``dino_mapper.py`` (``DINOMapper``, ``ConditionalPrototypes``):

- **Sphere mapper**: ``Linear(D, D/2) -> GELU -> transformer Block(D/2, heads D/2/64) -> Linear(D/2, 3)``,
  normalised to the unit sphere and multiplied by the foreground mask (background tokens are 0).
- **Spherical prototype** S_Z: ``Linear(3, D)`` then cross-attention blocks (depth 2) whose keys and
  values are the category (a one-hot, ``cond_bottleneck=0`` = no projection). The authors build the
  block list as ``[CABlock(...)] * depth``: one block object twice, so the two blocks *share* weights;
  we keep that.

One change for our features: DINO's patch tokens carry its positional embeddings, so the
mapper's attention knows where each token is. Our CPU feature sources carry no position, and a
permutation-equivariant head cannot map two identical features (a left and a right wing of the
stand-in) to different points; ``position=True`` appends each token's (row, column) in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from csmlab.checks import FLOAT_DTYPES, check_tensor


class Mlp(nn.Sequential):
    def __init__(self, dim: int, hidden: int):
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class Block(nn.Module):
    """Pre-norm self-attention block (timm's ``Block``, ``qkv_bias=False``, MLP ratio 4)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim, bias=False), nn.Linear(dim, dim)
        self.mlp = Mlp(dim, 4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C)
        x = x + self.proj(y)
        return x + self.mlp(self.norm2(x))


class CrossBlock(nn.Module):
    """Pre-norm cross-attention block: queries from the sphere tokens, keys/values from the condition."""

    def __init__(self, dim: int, cond_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim, bias=False)
        self.k, self.v = nn.Linear(cond_dim, dim, bias=False), nn.Linear(cond_dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.mlp = Mlp(dim, 4 * dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        h = self.heads

        def split(t):
            return t.reshape(t.shape[0], t.shape[1], h, C // h).transpose(1, 2)
        y = F.scaled_dot_product_attention(split(self.q(self.norm1(x))), split(self.k(cond)), split(self.v(cond)))
        x = x + self.proj(y.transpose(1, 2).reshape(B, N, C))
        return x + self.mlp(self.norm2(x))


class SphereMapper(nn.Module):
    """Frozen features [B,N,D] (+ token positions) -> unit sphere points [B,N,3], zero off the mask."""

    def __init__(self, feat_dim: int, hidden: int | None = None, heads: int | None = None, position: bool = True):
        super().__init__()
        hidden = hidden or feat_dim // 2
        heads = heads or max(1, hidden // 64)
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
        self.position = position
        self.inp = nn.Linear(feat_dim + (2 if position else 0), hidden)
        self.block = Block(hidden, heads)
        self.out = nn.Linear(hidden, 3)

    def forward(self, feats: torch.Tensor, mask: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        x = feats
        if self.position:
            x = torch.cat([x, token_coords(grid, x.device, x.dtype).expand(x.shape[0], -1, -1)], -1)
        sph = self.out(self.block(F.gelu(self.inp(x))))
        return F.normalize(sph, dim=-1) * mask[..., None].to(sph.dtype)


class SphericalPrototype(nn.Module):
    """S_Z: sphere point (+ category one-hot) -> feature space; one cross-attention block applied ``depth`` times."""

    def __init__(self, feat_dim: int, n_cats: int = 1, depth: int = 2, head_dim: int = 64):
        super().__init__()
        self.n_cats, self.depth = n_cats, depth
        self.proj = nn.Linear(3, feat_dim)
        self.block = CrossBlock(feat_dim, n_cats, max(1, feat_dim // head_dim))   # shared, as the authors'

    def forward(self, sph: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        cond = F.one_hot(category.long(), self.n_cats).to(sph.dtype)[:, None]        # [B,1,n_cats]
        x = self.proj(sph)
        for _ in range(self.depth):
            x = self.block(x, cond)
        return x


def token_coords(grid: tuple[int, int], device=None, dtype=torch.float32) -> torch.Tensor:
    """[1, h*w, 2] (row, column) of each token in [0, 1], row-major: the authors' ``linspace(0, 1, h)`` grid."""
    h, w = grid
    rows = torch.linspace(0, 1, h, device=device, dtype=dtype)[:, None].expand(h, w)
    cols = torch.linspace(0, 1, w, device=device, dtype=dtype)[None, :].expand(h, w)
    return torch.stack([rows, cols], -1).reshape(1, h * w, 2)


class SphericalMapModel(nn.Module):
    """Sphere mapper + spherical prototype over a frozen feature source of ``feat_dim`` channels."""

    def __init__(self, feat_dim: int, n_cats: int = 1, hidden: int | None = None, heads: int | None = None,
                 position: bool = True, proto_depth: int = 2, proto_head_dim: int = 64):
        super().__init__()
        self.feat_dim, self.n_cats = feat_dim, n_cats
        self.mapper = SphereMapper(feat_dim, hidden, heads, position)
        self.prototype = SphericalPrototype(feat_dim, n_cats, proto_depth, proto_head_dim)

    def forward(self, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """feats [B,D,h,w] frozen feature map, mask [B,h,w] token foreground -> sphere [B,h*w,3]."""
        check_tensor("feats", feats, shape=f"B,{self.feat_dim},h,w", dtypes=FLOAT_DTYPES)
        B, _, h, w = feats.shape
        check_tensor("mask", mask, shape=f"{B},{h},{w}")
        return self.mapper(feats.flatten(2).transpose(1, 2), mask.reshape(B, h * w), (h, w))
