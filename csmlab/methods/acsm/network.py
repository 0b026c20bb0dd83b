"""ACSM's networks: CSM's U-Net (pixel -> UV), the camera hypotheses and, per hypothesis, the part transforms.

As in ACSM's ``nnutils/camera.py`` (``MultiCamPredictor``), one encoder feeds the camera
hypotheses and, for every hypothesis, a transform for every part:

- rotation, ``rotation="axis"`` (ACSM's ``single_axis_pred``): a learnable axis per
  (hypothesis, part), initialised to x = (1, 0, 0), and an angle ``atan2(v_1, v_0)`` of a
  predicted 2-vector whose bias starts at (1, 0), i.e. angle 0; ``rotation="quat"``: a
  predicted quaternion, bias (1, 0, 0, 0); ``rotation="joints"`` (ours, not ACSM's): the
  rig's own joint axes (``joints.joint_angles_to_rotations``) with one bounded angle per
  joint, ``centre + half * tanh(.)`` inside the category's joint range, starting at the
  rest pose (0) or at ``joint_start`` (e.g. the rung-B prior's folded wings: ACSM's bird
  template is CUB's mean shape, a perched bird, and masks of side views hardly see a wing
  move, so the start is what the wings keep).
  ACSM's free axis and the quaternion can turn a part about any axis, so on masks they
  also explain what the camera should (the medium fine-tune's camera error rose); the
  joint head can only do what the skeleton can;
- translation ``0.1 x`` a linear output (ACSM's ``Transform``).

The output layers start at zero weights, so an untrained head predicts the rest pose
exactly and a network initialised from a CSM checkpoint (``load_csm_weights``) starts as
that rigid model.

The template lookup of an *articulated* template: every texel of the UV table keeps its
face and barycentrics, so posing the vertices poses the table (:meth:`ACSMNet.posed_table`),
and a pixel's UV is looked up in the posed table of each hypothesis.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from csmlab.geometry.uvmap import TemplateUV
from csmlab.nets.camera_head import CameraHead
from csmlab.nets.unet import UNet, surface_map

from .joints import joint_angles_to_rotations, quaternion_rotation, single_axis_rotation
from .rig import Rig, pose_vertices

ROTATIONS = ("axis", "quat", "joints")


class PartHead(nn.Module):
    """Pooled features [B,C] -> per hypothesis and part: ``rotations`` [B,K,P,3,3], ``translations`` [B,K,P,3]."""

    def __init__(self, features: int, n_hypotheses: int, n_parts: int, rotation: str = "axis", hidden: int = 64,
                 part_names=None, joint_limits=None, joint_start=None):
        super().__init__()
        if rotation not in ROTATIONS:
            raise ValueError(f"rotation must be one of {ROTATIONS}, got {rotation!r}")
        self.K, self.P, self.rotation = n_hypotheses, n_parts, rotation
        self.r = {"axis": 2, "quat": 4, "joints": 0}[rotation]
        self.mlp = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(inplace=True))
        self.out = nn.Linear(hidden, n_hypotheses * n_parts * (self.r + 3))
        nn.init.zeros_(self.out.weight)
        bias = torch.zeros(n_hypotheses, n_parts, self.r + 3)
        bias[..., 0] = 1.0                       # (1, 0) -> angle 0; (1, 0, 0, 0) -> identity quaternion
        self.out.bias.data.copy_(bias.flatten())
        if rotation == "axis":
            axis = torch.zeros(n_hypotheses, n_parts, 3)
            axis[..., 0] = 1.0                   # ACSM's initial axis
            self.axis = nn.Parameter(axis)
        if rotation == "joints":
            self._init_joints(hidden, part_names, joint_limits, joint_start)

    def _init_joints(self, hidden: int, part_names, joint_limits, joint_start) -> None:
        if part_names is None or len(part_names) != self.P:
            raise ValueError(f"rotation='joints' needs part_names, one per part ({self.P}), got {part_names!r}")
        lo, hi = joint_limits if joint_limits is not None else (None, None)
        if not (isinstance(lo, torch.Tensor) and isinstance(hi, torch.Tensor) and lo.shape == hi.shape == (7,)
                and bool((lo < 0).all() and (hi > 0).all())):
            raise ValueError("rotation='joints' needs joint_limits (low [7], high [7]) in radians around 0 "
                             f"(the category's articulation range), got {joint_limits!r}")
        self.part_names = tuple(part_names)
        self.register_buffer("joint_centre", ((lo + hi) / 2).float())
        self.register_buffer("joint_half", ((hi - lo) / 2).float())
        self.joint_out = nn.Linear(hidden, self.K * 7)
        nn.init.zeros_(self.joint_out.weight)
        # tanh's argument starts at the start pose (default 0, the rest pose), not at the middle of the range.
        start = torch.zeros(7) if joint_start is None else joint_start
        if not (isinstance(start, torch.Tensor) and start.shape == (7,)
                and bool(((start > lo) & (start < hi)).all())):
            raise ValueError(f"joint_start must be [7] angles (radians) strictly inside joint_limits, got {start!r}")
        self.register_buffer("joint_start", start.float().clone(), persistent=False)   # old checkpoints still load
        self.joint_out.bias.data.copy_(torch.atanh((self.joint_start - self.joint_centre) / self.joint_half)
                                       .repeat(self.K))

    def forward(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = self.mlp(h)
        out = self.out(hidden).reshape(h.shape[0], self.K, self.P, self.r + 3)
        rot, trans = out[..., :self.r], 0.1 * out[..., self.r:]
        if self.rotation == "joints":
            x = self.joint_out(hidden).reshape(h.shape[0], self.K, 7)
            angles = self.joint_centre + self.joint_half * torch.tanh(x)
            return {"rotations": joint_angles_to_rotations(angles, self.part_names), "translations": trans,
                    "joint_angles": angles}
        if self.rotation == "axis":
            v = F.normalize(rot, dim=-1, eps=1e-6)
            angle = torch.atan2(v[..., 1], v[..., 0])
            R = single_axis_rotation(self.axis.expand_as(trans), angle)
            return {"rotations": R, "translations": trans, "angle": angle}
        return {"rotations": quaternion_rotation(F.normalize(rot, dim=-1, eps=1e-6)), "translations": trans}


def lookup_tables(tables: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of N UV tables [N,3,Hu,Wu] at UV [N,H,W,2] -> [N,H,W,3] (``TemplateUV.uv_to_points``'s rule)."""
    hu, wu = tables.shape[-2:]
    padded = torch.cat([tables[..., -1:], tables, tables[..., :1]], dim=-1)   # u wraps around the seam
    x = torch.remainder(uv[..., 0], 1.0) * wu + 0.5
    y = uv[..., 1] * hu - 0.5
    grid = torch.stack([x / (wu + 1) * 2 - 1, y / (hu - 1) * 2 - 1], -1).to(tables.dtype)
    out = F.grid_sample(padded, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.permute(0, 2, 3, 1)


class ACSMNet(nn.Module):
    """U-Net surface map + camera hypotheses + part transforms on a rigged template.

    ``forward(img)`` returns CSM's outputs (``sphere``, ``uv``, ``points`` (rest template),
    ``mask_logit``, ``scale``, ``quat``, ``trans``, ``logits``, ``prob``) and ``rotations``
    [B,K,P,3,3], ``translations`` [B,K,P,3] (``angle`` [B,K,P] with the single-axis head).
    """

    def __init__(self, template_uv: TemplateUV, rig: Rig, n_hypotheses: int = 8, unet_base: int = 16,
                 unet_depth: int = 4, cam_base: int = 16, cam_down: int = 4, init_scale: float = 0.7,
                 max_elevation_deg: float = 40.0, max_roll_deg: float = 20.0, stem_stride: int = 1,
                 rotation: str = "axis", part_hidden: int = 64, joint_limits=None, joint_start=None):
        super().__init__()
        if not isinstance(template_uv, TemplateUV) or not isinstance(rig, Rig):
            raise ValueError(f"template_uv must be a TemplateUV and rig a Rig, got {type(template_uv).__name__}, "
                             f"{type(rig).__name__}")
        if rig.membership.shape[0] != template_uv.verts.shape[0]:
            raise ValueError(f"rig.membership must have one entry per template vertex ({template_uv.verts.shape[0]}), "
                             f"got {rig.membership.shape[0]}")
        self.template, self.rig = template_uv, rig
        self.unet = UNet(3, 4, unet_base, unet_depth, stem_stride=stem_stride)
        self.camera = CameraHead(n_hypotheses, cam_base, cam_down, init_scale, 0.0, max_elevation_deg, max_roll_deg)
        feat = self.camera.mlp[0].in_features
        self.parts = PartHead(feat, n_hypotheses, rig.num_parts, rotation, part_hidden, rig.names, joint_limits,
                              joint_start)
        hu, wu = template_uv.uv_map.shape[1:]
        v = (torch.arange(hu, dtype=torch.float64) + 0.5) / hu
        u = (torch.arange(wu, dtype=torch.float64) + 0.5) / wu
        texel_uv = torch.stack(torch.meshgrid(u, v, indexing="xy"), -1).reshape(-1, 2)
        face, bary = template_uv.uv_to_face_bary(texel_uv.float())
        # texel <- vertex weights as a sparse [Hu*Wu, V] matrix: posing the table is one sparse product.
        rows = torch.arange(hu * wu).repeat_interleave(3)
        self.register_buffer("texel_weights", torch.sparse_coo_tensor(
            torch.stack([rows, template_uv.faces[face].reshape(-1)]), bary.float().reshape(-1),
            (hu * wu, template_uv.verts.shape[0]), check_invariants=True).coalesce())
        self.table_size = (hu, wu)

    @property
    def n_hypotheses(self) -> int:
        return self.camera.n

    def surface(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        if not isinstance(img, torch.Tensor) or img.dim() != 4 or img.shape[1] != 3:
            raise ValueError(f"img must be a [B,3,H,W] tensor, got "
                             f"{list(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__}")
        return surface_map(self.unet(img), self.template)

    def forward(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.camera.features(img)
        return {**self.surface(img), **self.camera.from_features(h), **self.parts(h)}

    def pose(self, rotations: torch.Tensor, translations: torch.Tensor | None = None) -> torch.Tensor:
        """Posed template vertices [...,V,3] for part transforms [...,P,3,3] (and [...,P,3])."""
        return pose_vertices(self.rig, self.template.verts, rotations, translations)

    def posed_table(self, verts: torch.Tensor) -> torch.Tensor:
        """Posed vertices [N,V,3] -> their UV tables [N,3,Hu,Wu] (each texel keeps its face and barycentrics)."""
        N, V = verts.shape[:2]
        flat = verts.permute(1, 0, 2).reshape(V, N * 3)
        table = torch.sparse.mm(self.texel_weights.to(verts.dtype), flat)          # [Hu*Wu, N*3]
        return table.reshape(*self.table_size, N, 3).permute(2, 3, 0, 1)

    def articulated_points(self, uv: torch.Tensor, verts: torch.Tensor) -> torch.Tensor:
        """UV images [B,2,H,W] and posed vertices [B,K,V,3] -> articulated template points [B,K,H,W,3]."""
        B, K = verts.shape[:2]
        tables = self.posed_table(verts.reshape(B * K, *verts.shape[2:]))
        grid = uv.permute(0, 2, 3, 1)[:, None].expand(B, K, *uv.shape[2:], 2).reshape(B * K, *uv.shape[2:], 2)
        return lookup_tables(tables, grid).reshape(B, K, *uv.shape[2:], 3)


def surface_points_exact(template_uv: TemplateUV, uv: torch.Tensor, verts: torch.Tensor) -> torch.Tensor:
    """UV [N,2] on a posed template [V,3] -> [N,3], through the exact face and barycentrics (no table)."""
    face, bary = template_uv.uv_to_face_bary(uv)
    return (bary[..., None] * verts[template_uv.faces[face]]).sum(-2)


def load_csm_weights(model: ACSMNet, path) -> list[str]:
    """Initialise the U-Net and camera head from a CSM checkpoint (``csm_medium.pt``); returns the loaded keys.

    The file is read as plain tensors (``csmlab.train`` checkpoint layout, float16 weights).
    The camera head's initial scale comes from the file too. ACSM's own schedule reaches
    the same state (a rigid model, after its pose and articulation warm-ups) before the
    parts are switched on.
    """
    from csmlab.train import load_checkpoint

    ckpt = load_checkpoint(path)
    if ckpt.get("format") != "csmlab.csm/1":
        raise ValueError(f"path must be a CSM pretrained file (format 'csmlab.csm/1'), got {ckpt.get('format')!r}")
    state = ckpt["weights"]
    model.camera.init_scale = float(ckpt["init_scale"])
    own = model.state_dict()
    picked = {k: v.to(own[k].dtype) for k, v in state.items()
              if k.startswith(("unet.", "camera.")) and k in own and own[k].shape == v.shape}
    missing = [k for k in own if k.startswith(("unet.", "camera.")) and k not in picked]
    if missing:
        raise ValueError(f"the CSM checkpoint {path} does not match this network: {len(missing)} weights "
                         f"missing or of another shape, e.g. {missing[:3]}")
    model.load_state_dict(picked, strict=False)
    return sorted(picked)
