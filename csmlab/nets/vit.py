"""DINOv2 ViT-S/14 and ViT-B/14 in the official layout (facebookresearch/dinov2), without xFormers.

Names and shapes follow ``dinov2/models/vision_transformer.py`` as built by
``dinov2/hub/backbones.py`` (``img_size=518``, ``patch_size=14``,
``init_values=1.0``, MLP feed-forward, ``block_chunks=0``, no register tokens),
so the official ``dinov2_vit{s,b}14_pretrain.pth`` load with ``strict=True``:

- ``patch_embed.proj`` (a 14x14 stride-14 convolution), ``cls_token`` [1,1,D],
  ``pos_embed`` [1, 1 + 37*37, D] (for 518 px), ``mask_token`` [1, D];
- ``blocks.N.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma}``;
- ``norm`` (LayerNorm, eps 1e-6 everywhere).

Position embeddings are resized bicubically to other grids exactly as DINOv2 does
(``interpolate_offset=0.1``: a scale factor of (grid + 0.1) / 37, no antialias).
Inputs are ImageNet-normalised images (:func:`csmlab.nets.imagenet_normalize`)
whose height and width are multiples of 14.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class PatchEmbed(nn.Module):
    """[B,3,H,W] -> [B, (H/p)(W/p), D] through one p x p stride-p convolution."""

    def __init__(self, patch_size: int, embed_dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(3, embed_dim, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with one fused ``qkv`` projection (q, k, v blocks of D rows, heads contiguous)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim must be a multiple of num_heads, got dim={dim}, num_heads={num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)   # softmax(q k^T / sqrt(head_dim)) v
        return self.proj(y.transpose(1, 2).reshape(B, N, C))


class LayerScale(nn.Module):
    """Per-channel scale ``gamma`` of a residual branch (CaiT's LayerScale)."""

    def __init__(self, dim: int, init_value: float = 1.0):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + ls1(attn(norm1 x))``, then ``x + ls2(mlp(norm2 x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoViT(nn.Module):
    """DINOv2's vision transformer. ``forward(x)`` returns DINOv2's ``forward_features`` dict.

    Keys: ``x_norm_clstoken`` [B,D], ``x_norm_patchtokens`` [B,N,D] (after the final
    norm), ``x_prenorm`` [B,1+N,D] (class token first, before the final norm) and
    ``masks``; N = (H/14)(W/14) patches in row-major order.
    """

    def __init__(self, embed_dim: int, depth: int, num_heads: int, patch_size: int = 14, img_size: int = 518,
                 mlp_ratio: float = 4.0, interpolate_offset: float = 0.1):
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size must be a multiple of patch_size, got {img_size} and {patch_size}")
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.interpolate_offset = interpolate_offset
        grid = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, embed_dim))
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)   # DINOv2's initialisation, for training from scratch
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Patch grid (rows, columns) of an image; ValueError unless both sides divide by the patch size."""
        p = self.patch_size
        if height % p or width % p or height < p or width < p:
            raise ValueError(f"image height and width must be positive multiples of the patch size {p}, got "
                             f"{height}x{width} (nearest: {max(p, round(height / p) * p)}x"
                             f"{max(p, round(width / p) * p)})")
        return height // p, width // p

    def interpolate_pos_encoding(self, rows: int, cols: int) -> torch.Tensor:
        """[1, 1 + rows*cols, D]: the stored embedding resized to a rows x cols grid (bicubic, as DINOv2)."""
        n = self.pos_embed.shape[1] - 1
        m = math.isqrt(n)
        if rows == cols == m:
            return self.pos_embed
        cls_pos, patch_pos = self.pos_embed[:, :1].float(), self.pos_embed[:, 1:].float()
        grid = patch_pos.reshape(1, m, m, -1).permute(0, 3, 1, 2)
        if self.interpolate_offset:
            # DINOv2 keeps a historical +0.1 on the scale factor (dino issue #8); its source indices follow it.
            scale = ((rows + self.interpolate_offset) / m, (cols + self.interpolate_offset) / m)
            grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=False)
        else:
            grid = F.interpolate(grid, size=(rows, cols), mode="bicubic", antialias=False)
        if grid.shape[-2:] != (rows, cols):
            raise RuntimeError(f"position embedding resized to {tuple(grid.shape[-2:])}, not {(rows, cols)}")
        patch_pos = grid.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)
        return torch.cat([cls_pos, patch_pos], 1).to(self.pos_embed.dtype)

    def prepare_tokens(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
            got = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a [B,3,H,W] image tensor, got {got}")
        rows, cols = self.grid(x.shape[-2], x.shape[-1])
        tokens = self.patch_embed(x)
        if masks is not None:
            if masks.shape != tokens.shape[:2] or masks.dtype != torch.bool:
                raise ValueError(f"masks must be a bool [B,N] = {list(tokens.shape[:2])} tensor, got "
                                 f"{list(masks.shape)} {masks.dtype}")
            tokens = torch.where(masks[..., None], self.mask_token.to(tokens.dtype)[None], tokens)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], 1)
        return tokens + self.interpolate_pos_encoding(rows, cols)

    def forward(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        tokens = self.prepare_tokens(x, masks)
        for block in self.blocks:
            tokens = block(tokens)
        normed = self.norm(tokens)
        return {"x_norm_clstoken": normed[:, 0], "x_norm_patchtokens": normed[:, 1:], "x_prenorm": tokens,
                "masks": masks}

    def patch_features(self, x: torch.Tensor, norm: bool = True) -> torch.Tensor:
        """Patch tokens as a feature map [B, D, H/14, W/14] (normed, or before the final norm)."""
        rows, cols = self.grid(x.shape[-2], x.shape[-1])
        out = self.forward(x)
        tokens = out["x_norm_patchtokens"] if norm else out["x_prenorm"][:, 1:]
        return tokens.transpose(1, 2).reshape(x.shape[0], self.embed_dim, rows, cols)


def dinov2_vits14() -> DinoViT:
    """DINOv2 ViT-S/14: D = 384, 12 blocks, 6 heads."""
    return DinoViT(embed_dim=384, depth=12, num_heads=6)


def dinov2_vitb14() -> DinoViT:
    """DINOv2 ViT-B/14: D = 768, 12 blocks, 12 heads."""
    return DinoViT(embed_dim=768, depth=12, num_heads=12)
