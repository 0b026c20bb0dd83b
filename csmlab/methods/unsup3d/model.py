"""The Unsup3D model (``unsup3d/model.py``): five networks, the factor rescalers, both reconstructions.

``Unsup3D(cfg)(image)`` follows the authors' ``forward``:

- the input image [B,3,S,S] in [0, 1] is mapped to [-1, 1], as the paper's nets see it;
- **depth**: the depth net's raw map minus its per-image mean, ``tanh``, rescaled to
  [min_depth, max_depth]; the two left and two right columns are set to the border depth
  ``0.7 max + 0.3 min`` (their ``depth_border``; ``cfg['border_depth']`` sets it, as their option does);
- **albedo**: ``tanh``, mapped to [0, 1];
- **light**: ambient and diffuse ``(1 + x) / 2`` in [0, 1], direction ``(dx, dy, 1)`` normalised;
- **view**: rotations ``x * 60`` degrees, translations ``x * 0.1`` (``xy_translation_range``) and
  ``x * z_translation_range``; the paper's order (rx, ry, rz) = (pitch, yaw, roll), so that
  ``R = Rz Ry Rx`` as in ``get_rotation_matrix``;
- **confidence**: Softplus sigma maps (photometric at full resolution, perceptual at 1/4);
- the canonical depth and albedo are stacked with their horizontal flips (or not, for the
  ablations ``flip_depth`` / ``flip_albedo``), and both halves are rendered with the same
  light and view (:func:`.renderer.reconstruct`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .networks import ConfNet, EDDeconv, Encoder
from .renderer import INVALID_DEPTH, check_image, reconstruct

MODEL_KEYS = ("resolution", "nf", "zdim", "nf_encoder", "nf_conf", "zdim_conf", "min_depth", "max_depth",
              "xyz_rotation_range", "xy_translation_range", "z_translation_range", "use_conf", "use_light",
              "flip_depth", "flip_albedo")
# The authors' light ranges (``min_amb_light`` ... in ``model.py``; their syncar recipe sets
# ``min_diff_light: 0.5``). Optional, with the authors' defaults, so older checkpoints still load.
LIGHT_RANGE_DEFAULTS = {"min_amb_light": 0.0, "max_amb_light": 1.0, "min_diff_light": 0.0, "max_diff_light": 1.0}
# The authors' ``border_depth`` (None: their default 0.7 max + 0.3 min; their syncar recipe sets 1.08).
OPTIONAL_DEFAULTS = {**LIGHT_RANGE_DEFAULTS, "border_depth": None}


class Unsup3D(nn.Module):
    """The photo-geometric autoencoder; ``cfg`` holds at least :data:`MODEL_KEYS`."""

    def __init__(self, cfg: dict):
        super().__init__()
        missing = [k for k in MODEL_KEYS if k not in cfg]
        if missing:
            raise ValueError(f"cfg is missing the model keys {missing}")
        self.cfg = {k: cfg[k] for k in MODEL_KEYS}
        self.cfg.update({k: cfg.get(k, v) for k, v in OPTIONAL_DEFAULTS.items()})
        bd = self.cfg["border_depth"]
        if bd is not None and not cfg["min_depth"] <= bd <= cfg["max_depth"]:
            raise ValueError(f"border_depth must be None or lie in [min_depth, max_depth], got {bd!r}")
        for kind in ("amb", "diff"):
            lo, hi = self.cfg[f"min_{kind}_light"], self.cfg[f"max_{kind}_light"]
            if not 0.0 <= lo <= hi <= 1.0:
                raise ValueError(f"min_{kind}_light and max_{kind}_light must satisfy 0 <= min <= max <= 1, "
                                 f"got {lo!r} and {hi!r}")
        S, nf, z = cfg["resolution"], cfg["nf"], cfg["zdim"]
        self.netD = EDDeconv(3, 1, zdim=z, nf=nf, resolution=S, activation=None)
        self.netA = EDDeconv(3, 3, zdim=z, nf=nf, resolution=S)
        self.netL = Encoder(3, 4, nf=cfg["nf_encoder"], resolution=S)
        self.netV = Encoder(3, 6, nf=cfg["nf_encoder"], resolution=S)
        self.netC = ConfNet(3, zdim=cfg["zdim_conf"], nf=cfg["nf_conf"], resolution=S) if cfg["use_conf"] else None

    @property
    def resolution(self) -> int:
        return self.cfg["resolution"]

    @property
    def border_depth(self) -> float:
        if self.cfg["border_depth"] is not None:
            return float(self.cfg["border_depth"])
        return 0.7 * self.cfg["max_depth"] + 0.3 * self.cfg["min_depth"]

    def depth_from_raw(self, raw: torch.Tensor) -> torch.Tensor:
        """[B,1,S,S] raw depth-net output -> canonical depth (mean-subtracted, tanh, rescaled, border set)."""
        return self.set_border(self.rescaled_depth(raw))

    def rescaled_depth(self, raw: torch.Tensor) -> torch.Tensor:
        """The depth before the border is set: mean-subtracted, ``tanh``, rescaled to [min_depth, max_depth]."""
        lo, hi = self.cfg["min_depth"], self.cfg["max_depth"]
        d = (raw - raw.mean(dim=(1, 2, 3), keepdim=True)).tanh()
        return (1 + d) / 2 * hi + (1 - d) / 2 * lo

    def set_border(self, d: torch.Tensor) -> torch.Tensor:
        """The two left and two right columns set to the border depth (the paper's ``depth_border``)."""
        border = torch.zeros_like(d[:1])
        border[..., :2] = 1
        border[..., -2:] = 1
        return d * (1 - border) + border * self.border_depth

    def light_from_raw(self, raw: torch.Tensor) -> dict:
        """[B,4] tanh outputs -> {ambient, diffuse in their ranges (default [0, 1]), direction (dx, dy, 1)/norm}."""
        c = self.cfg
        rescale = lambda x, lo, hi: (1 + x) / 2 * hi + (1 - x) / 2 * lo  # noqa: E731  (the paper's rescalers)
        direction = torch.cat([raw[:, 2:], torch.ones_like(raw[:, :1])], 1)
        return {"ambient": rescale(raw[:, 0], c["min_amb_light"], c["max_amb_light"]),
                "diffuse": rescale(raw[:, 1], c["min_diff_light"], c["max_diff_light"]),
                "direction": nn.functional.normalize(direction, dim=1)}

    def view_from_raw(self, raw: torch.Tensor) -> dict:
        """[B,6] tanh outputs (rx, ry, rz, tx, ty, tz) -> {rotation (yaw, pitch, roll), trans}."""
        rot = raw[:, :3] * math.radians(self.cfg["xyz_rotation_range"])
        trans = torch.cat([raw[:, 3:5] * self.cfg["xy_translation_range"],
                           raw[:, 5:] * self.cfg["z_translation_range"]], 1)
        return {"rotation": torch.stack([rot[:, 1], rot[:, 0], rot[:, 2]], 1), "trans": trans}

    def factors(self, image: torch.Tensor) -> dict:
        """The encoders only: canonical depth, albedo, light, view and sigma maps of [B,3,S,S] images in [0, 1]."""
        check_image("image", image, channels=3, resolution=self.resolution)
        x = image * 2 - 1
        free = self.rescaled_depth(self.netD(x))
        # canon_depth_free: before the border clamp, where the paper computes its depth smoothness term.
        out = {"canon_depth": self.set_border(free), "canon_depth_free": free,
               "albedo": self.netA(x) / 2 + 0.5,
               "light": self.light_from_raw(self.netL(x)) if self.cfg["use_light"] else None,
               "view": self.view_from_raw(self.netV(x))}
        if self.netC is not None:
            sigma_l1, sigma_perc = self.netC(x)
            out.update(sigma=sigma_l1[:, :1], sigma_flip=sigma_l1[:, 1:],
                       sigma_perc=sigma_perc[:, :1], sigma_perc_flip=sigma_perc[:, 1:])
        return out

    def forward(self, image: torch.Tensor) -> dict:
        """Factors and both reconstructions; the second half of every rendered batch is the flipped one.

        Returns the :meth:`factors` and, stacked [2B,...] (reconstruction, flipped reconstruction):
        ``depth2`` / ``albedo2`` (the canonical maps rendered), ``recon`` (renderer outputs) and
        ``mask_both`` (pixels valid in both reconstructions, no gradient, [2B,1,S,S]).
        """
        f = self.factors(image)
        B = image.shape[0]
        depth, albedo = f["canon_depth"], f["albedo"]
        depth2 = torch.cat([depth, depth.flip(3) if self.cfg["flip_depth"] else depth], 0)
        albedo2 = torch.cat([albedo, albedo.flip(3) if self.cfg["flip_albedo"] else albedo], 0)
        twice = lambda d: {k: torch.cat([v, v], 0) for k, v in d.items()}  # noqa: E731
        recon = reconstruct(depth2, albedo2, twice(f["light"]) if f["light"] is not None else None, twice(f["view"]))
        valid = (recon["depth"] < INVALID_DEPTH).to(image.dtype)
        both = (valid[:B] * valid[B:]).repeat(2, 1, 1, 1).detach()
        recon["image"] = recon["image"] * both
        return {**f, "depth2": depth2, "albedo2": albedo2, "recon": recon, "mask_both": both}
