"""The "birds" category index: template, deformation basis, skinning, keypoints.

Posing an instance (canonical frame, before the camera)::

    X_d   = X + sum_m c_m D_m(X)                       # deformation (V = T + B c at the vertices)
    j_k'  = j_k + sum_m c_m D_m(j_k)                   # the joints move with the deformation
    X_out = sum_k w_k(X) (R_k(angles) (X_d - j_k') + j_k')   # linear blend skinning

``X`` is a *template* point. The deformation fields ``D_m`` and skinning weights
``w_k`` are smooth functions of the template position; the basis ``B`` and the
per-vertex weights ``skin_weights`` are their values at the template vertices.
The posing functions live in :mod:`.birds_pose`.

Deformation modes (symmetric; coefficient prior: normal with std
``deform_prior_std`` truncated at +-2 std):

==============  =====  ===============================================================
mode            std    what coefficient c = 1 does
==============  =====  ===============================================================
body_length     0.10   the torso (z between the tail and neck joints) 100 % longer
girth           0.10   the torso's cross-section 100 % wider and taller
head_size       0.12   the head (with beak) 100 % larger about its centre
tail_length     0.15   the tail 100 % longer
wing_span       0.12   each wing 100 % longer (span, along x)
neck            0.25   the neck 100 % longer (the head moves along the neck axis)
==============  =====  ===============================================================

Articulation (radians; the priors that draw the angles are in :mod:`.birds_priors`; ``articulation_flip_perm``
and ``articulation_flip_sign`` map the angles of an instance to those of its mirror image):

=================  ===============  ==================================================
joint angle        range (degrees)  positive means
=================  ===============  ==================================================
right_wing_flap     [-35, 100]       the right wing tip goes up (rotation about z, after the sweep)
left_wing_flap    [-35, 100]       the left wing tip goes up
right_wing_sweep    [-15, 100]       the right wing tip goes back (rotation about y)
left_wing_sweep   [-15, 100]       the left wing tip goes back
head_yaw           [-40, 40]        the beak turns to the bird's left (+x), about y
head_pitch         [-20, 25]        the beak goes up, about x
tail_pitch         [-20, 30]        the tail tip goes up, about x
=================  ===============  ==================================================

The wing ranges hold the flight poses (``FLIGHT_RANGES_DEG``: flap [-35, 45], sweep [-15, 30])
and the folded pose of a perched bird (sweep and flap near 90 deg).

Parts (rigid pieces of the skinning): body, head, tail, right_wing, left_wing
(legs belong to the body). "Right" is the bird's own right, x < 0.

Keypoints (16): beak_tip, crown, nape, throat, breast, belly, back, tail_tip and
right/left eye, wing_root, wing_tip, foot. Each is a fixed barycentric blend of
at most three template vertices (``keypoint_weights`` [K,V]): limb tips are the
limbs' tip vertices, the others the template surface point nearest a target,
midline ones taken on the section by x = 0 so that each is its own mirror image.
``keypoint_flip`` swaps right and left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from csmlab.geometry import Mesh, axis_angle_to_matrix, sphere_to_uv

from .birds_shape import BirdSurface, build_bird_surface, smoothstep
from .birds_texture import material_weights
from .meshops import closest_point_on_midline, closest_points_on_mesh

DEFORM_NAMES = ("body_length", "girth", "head_size", "tail_length", "wing_span", "neck")
DEFORM_PRIOR_STD = (0.10, 0.10, 0.12, 0.15, 0.12, 0.25)
DEFORM_TRUNCATION = 2.0  # the prior is truncated at +-2 std

PART_NAMES = ("body", "head", "tail", "right_wing", "left_wing")

JOINT_NAMES = ("right_wing_flap", "left_wing_flap", "right_wing_sweep", "left_wing_sweep",
               "head_yaw", "head_pitch", "tail_pitch")
# The wings' full range spans the flight poses (FLIGHT_RANGES_DEG) and the folded pose of a perched
# bird (sweep and flap near 90 deg: the wing lies back along the body's side); see .birds_priors.
JOINT_RANGES_DEG = ((-35, 100), (-35, 100), (-15, 100), (-15, 100), (-40, 40), (-20, 25), (-20, 30))
FLIGHT_RANGES_DEG = {"right_wing_flap": (-35, 45), "left_wing_flap": (-35, 45),
                     "right_wing_sweep": (-15, 30), "left_wing_sweep": (-15, 30)}
ARTICULATION_FLIP_PERM = (1, 0, 3, 2, 4, 5, 6)
ARTICULATION_FLIP_SIGN = (1.0, 1.0, 1.0, 1.0, -1.0, 1.0, 1.0)

# Pivots (template frame) of the moving parts, and the axes the weights and modes use.
HEAD_JOINT = (0.0, 0.2, 0.33)
HEAD_CENTRE = (0.0, 0.41, 0.55)
NECK_AXIS = (0.0, 0.78, 0.62)
NECK_LENGTH = 0.2
TAIL_JOINT = (0.0, 0.04, -0.36)
TAIL_AXIS = (0.0, 0.124, -0.992)
WING_JOINT = (0.16, 0.07, -0.04)  # left wing; the right one is mirrored
WING_WEIGHT_RAMP = (0.14, 0.3)    # |x| over which a point goes from body to wing
TORSO_Z = (-0.04, -0.32, 0.30)    # torso centre, and the back/front offsets where stretching stops
TORSO_HALF_WIDTH = (0.2, 0.21)    # x and y half-extents that girth scales
SOFT = 0.05                        # width of the soft clamps, in object units

# Keypoints: (name, target point or limb tip). Targets are snapped to the nearest
# template surface point; left-side names are mirrored to make the right ones.
KEYPOINT_TARGETS = (
    ("beak_tip", "tip:head"), ("crown", (0.0, 0.56, 0.52)), ("nape", (0.0, 0.42, 0.4)),
    ("throat", (0.0, 0.26, 0.55)), ("breast", (0.0, 0.0, 0.5)), ("belly", (0.0, -0.25, 0.0)),
    ("back", (0.0, 0.25, -0.1)), ("tail_tip", "tip:tail"),
    ("left_eye", (0.13, 0.45, 0.6)), ("left_wing_root", (0.3, 0.12, 0.02)),
    ("left_wing_tip", "tip:left_wing"), ("left_foot", "tip:left_leg"),
)


def soft_relu(x: torch.Tensor, k: float = SOFT) -> torch.Tensor:
    return k * torch.nn.functional.softplus(x / k)


def soft_clamp(x: torch.Tensor, lo: float, hi: float, k: float = SOFT) -> torch.Tensor:
    """A C-infinity clamp: ~x inside [lo, hi], ~lo below and ~hi above."""
    return lo + soft_relu(x - lo, k) - soft_relu(x - hi, k)


def _vec(v, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(v, dtype=like.dtype, device=like.device)


def skin_weights(X: torch.Tensor) -> torch.Tensor:
    """[...,P] skinning weights (order of PART_NAMES) of template points [...,3]; they sum to 1."""
    x = X[..., 0]
    w_left = smoothstep(*WING_WEIGHT_RAMP, x)
    w_right = smoothstep(*WING_WEIGHT_RAMP, -x)
    rest = 1 - w_left - w_right
    w_head = smoothstep(-0.02, 0.12, (X - _vec(HEAD_JOINT, X)) @ torch.nn.functional.normalize(
        _vec(NECK_AXIS, X), dim=0)) * rest
    w_tail = smoothstep(-0.02, 0.1, (X - _vec(TAIL_JOINT, X)) @ _vec(TAIL_AXIS, X)) * (rest - w_head)
    w_body = rest - w_head - w_tail
    return torch.stack([w_body, w_head, w_tail, w_right, w_left], dim=-1)


def deformation_fields(X: torch.Tensor) -> torch.Tensor:
    """[M,...,3] displacement per unit coefficient of each mode (DEFORM_NAMES) at template points [...,3]."""
    x, y, z = X.unbind(-1)
    zero = torch.zeros_like(x)
    zc, back, front = TORSO_Z
    body_length = torch.stack([zero, zero, soft_clamp(z - zc, back, front)], -1)
    girth = torch.stack([soft_clamp(x, -TORSO_HALF_WIDTH[0], TORSO_HALF_WIDTH[0]),
                         soft_clamp(y, -TORSO_HALF_WIDTH[1], TORSO_HALF_WIDTH[1]), zero], -1)
    w_head = skin_weights(X)[..., 1:2]
    head_size = (X - _vec(HEAD_CENTRE, X)) * w_head
    tail_axis = _vec(TAIL_AXIS, X)
    tail_length = soft_relu((X - _vec(TAIL_JOINT, X)) @ tail_axis)[..., None] * tail_axis
    wing_span = torch.stack([torch.sign(x) * soft_relu(x.abs() - WING_JOINT[0]), zero, zero], -1)
    neck_axis = torch.nn.functional.normalize(_vec(NECK_AXIS, X), dim=0)
    along_neck = (X - _vec(HEAD_JOINT, X)) @ neck_axis
    neck = NECK_LENGTH * smoothstep(0.0, NECK_LENGTH, along_neck)[..., None] * neck_axis
    return torch.stack([body_length, girth, head_size, tail_length, wing_span, neck], dim=0)


def joint_positions(like: torch.Tensor) -> torch.Tensor:
    """[P,3] template pivots of the parts (body's is unused)."""
    wing_right = (-WING_JOINT[0], WING_JOINT[1], WING_JOINT[2])
    return _vec(((0.0, 0.0, TORSO_Z[0]), HEAD_JOINT, TAIL_JOINT, wing_right, WING_JOINT), like)


def part_rotations(articulation: torch.Tensor) -> torch.Tensor:
    """[B,J] joint angles -> [B,P,3,3] rotation of each part (body: identity)."""
    a = articulation
    B = a.shape[0]
    zeros = torch.zeros(B, dtype=a.dtype, device=a.device)

    def rot(axis: int, angle: torch.Tensor) -> torch.Tensor:
        aa = torch.stack([angle if k == axis else zeros for k in range(3)], -1)
        return axis_angle_to_matrix(aa)

    lf, rf, ls, rs, yaw, pitch, tail = a.unbind(-1)
    eye = torch.eye(3, dtype=a.dtype, device=a.device).expand(B, 3, 3)
    head = rot(1, yaw) @ rot(0, -pitch)
    tail_r = rot(0, tail)
    # Sweep first (about y), then flap (about z, the body's long axis): a wing swept back by 90 deg and
    # flapped by 90 deg lies folded along the body's side, its flat side facing out.
    right = rot(2, -lf) @ rot(1, -ls)    # mirror image of the left wing's rotation
    left = rot(2, rf) @ rot(1, rs)
    return torch.stack([eye, head, tail_r, right, left], dim=1)


@dataclass
class BirdCategory:
    """Everything about the category that is shared by all instances (see the module docstring)."""

    name: str
    template: Mesh
    template_sphere: torch.Tensor      # [V,3] unit sphere point of each vertex
    template_uv: torch.Tensor          # [V,2] sphere UV (csmlab.geometry.sphere convention)
    vertex_flip: torch.Tensor          # [V] long, mirror twin of each vertex
    basis: torch.Tensor                # [M,V,3]
    deform_names: list[str]
    deform_prior_std: torch.Tensor     # [M]
    part_names: list[str]
    skin_weights: torch.Tensor         # [V,P]
    vertex_parts: torch.Tensor         # [V] long, argmax of skin_weights
    joint_names: list[str]
    articulation_low: torch.Tensor     # [J] radians
    articulation_high: torch.Tensor    # [J] radians
    articulation_flip_perm: torch.Tensor  # [J] long
    articulation_flip_sign: torch.Tensor  # [J]
    joints: torch.Tensor               # [P,3] template pivots
    keypoint_names: list[str]
    keypoint_flip: torch.Tensor        # [K] long
    keypoint_weights: torch.Tensor     # [K,V], keypoint = keypoint_weights @ verts (3 non-zeros per row)
    vertex_materials: torch.Tensor     # [V,len(birds_texture.MATERIALS)] one-hot colour class
    surface: BirdSurface               # construction record (limbs, cap coordinates)
    vertex_faces: torch.Tensor         # [V,6] faces incident to each vertex, -1 padded
    sphere_face_inverse: torch.Tensor  # [F,3,3] float64: sphere point -> (unnormalised) face weights

    @property
    def num_deform(self) -> int:
        return self.basis.shape[0]

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def keypoints_template(self) -> torch.Tensor:
        """[K,3] keypoints on the template surface."""
        return self.keypoint_weights @ self.template.verts

    def flip_parameters(self, deform: torch.Tensor, articulation: torch.Tensor):
        """Parameters of the mirror-image instance (x -> -x): deform unchanged, angles permuted and signed."""
        return deform, articulation[..., self.articulation_flip_perm] * self.articulation_flip_sign


def _keypoint_weights(surface: BirdSurface, flip: torch.Tensor):
    verts, faces = surface.mesh.verts.double(), surface.mesh.faces
    V = verts.shape[0]
    names, rows = [], []
    limb_names = [limb.name for limb in surface.limbs]
    for name, target in KEYPOINT_TARGETS:
        row = torch.zeros(V, dtype=torch.float64)
        if isinstance(target, str):  # the tip vertex of a limb: the vertex with the largest t
            limb = limb_names.index(target.split(":")[1])
            t = torch.where(surface.limb_index == limb, surface.limb_t, torch.full((V,), -1.0))
            row[t.argmax()] = 1.0
        elif name.startswith("left"):
            face, bary, _ = closest_points_on_mesh(torch.tensor([target], dtype=torch.float64), verts, faces)
            row.index_add_(0, faces[face[0]], bary[0])
        else:  # a midline keypoint: on the section by x = 0, so it is its own mirror image
            face, bary = closest_point_on_midline(torch.tensor(target, dtype=torch.float64), verts, faces)
            row.index_add_(0, faces[face], bary)
        if not name.startswith("left"):
            if not torch.allclose(row, row[flip], atol=1e-9):
                raise RuntimeError(f"midline keypoint {name!r} is not its own mirror image")
            names.append(name)
            rows.append(row)
        else:
            names += [name.replace("left", "right"), name]
            rows += [row[flip], row]
    W = torch.stack(rows).float()
    index = {n: i for i, n in enumerate(names)}
    kp_flip = torch.tensor([index[n.replace("right", "@").replace("left", "right").replace("@", "left")]
                            for n in names], dtype=torch.long)
    return list(names), W, kp_flip


def build_birds() -> BirdCategory:
    """Build the category index (deterministic, no randomness; about 0.1 s)."""
    surface = build_bird_surface()
    T = surface.mesh.verts
    flip = surface.vertex_flip
    weights = skin_weights(T.double()).float()
    basis = deformation_fields(T.double()).float()
    names, kp_weights, kp_flip = _keypoint_weights(surface, flip)
    low = torch.tensor([math.radians(lo) for lo, _ in JOINT_RANGES_DEG])
    high = torch.tensor([math.radians(hi) for _, hi in JOINT_RANGES_DEG])
    return BirdCategory(
        name="birds", template=surface.mesh, template_sphere=surface.sphere,
        template_uv=sphere_to_uv(surface.sphere), vertex_flip=flip, basis=basis,
        deform_names=list(DEFORM_NAMES), deform_prior_std=torch.tensor(DEFORM_PRIOR_STD),
        part_names=list(PART_NAMES), skin_weights=weights, vertex_parts=weights.argmax(1),
        joint_names=list(JOINT_NAMES), articulation_low=low, articulation_high=high,
        articulation_flip_perm=torch.tensor(ARTICULATION_FLIP_PERM),
        articulation_flip_sign=torch.tensor(ARTICULATION_FLIP_SIGN),
        joints=joint_positions(T), keypoint_names=names, keypoint_flip=kp_flip,
        keypoint_weights=kp_weights, vertex_materials=material_weights(surface), surface=surface,
        vertex_faces=_vertex_faces(surface.mesh.faces, T.shape[0]),
        sphere_face_inverse=torch.linalg.inv(surface.sphere.double()[surface.mesh.faces].transpose(1, 2)))


def _vertex_faces(faces: torch.Tensor, num_verts: int, max_valence: int = 6) -> torch.Tensor:
    """[V,max_valence] faces incident to each vertex, padded with -1."""
    out = torch.full((num_verts, max_valence), -1, dtype=torch.long)
    count = torch.zeros(num_verts, dtype=torch.long)
    for f, tri in enumerate(faces.tolist()):
        for v in tri:
            out[v, count[v]] = f
            count[v] += 1
    return out
