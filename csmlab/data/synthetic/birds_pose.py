"""Posing bird instances: template points -> instance points in the canonical frame.

See :mod:`.birds_template` for the model (deformation fields, skinning) and the
category index. Four ways in:

- :func:`pose_vertices` -- the template vertices (``V = T + B c``, then skinning);
- :func:`pose_keypoints` -- the keypoints, as fixed barycentric blends of the
  posed vertices, so they lie exactly on the instance's surface;
- :func:`pose_surface_points` -- any template *surface* points given with their
  sphere UV (a pixel's ``surface_xyz`` and ``surface_uv``), exactly, through
  their face and barycentrics;
- :func:`pose_points` -- any template points through the smooth fields (exact
  at the vertices, within ~0.03 object units of the mesh inside faces near joints).
"""

from __future__ import annotations

import torch

from csmlab.geometry import uv_to_sphere

from .birds_template import BirdCategory, deformation_fields, part_rotations, skin_weights


def _check_params(category: BirdCategory, deform: torch.Tensor, articulation: torch.Tensor) -> None:
    M, J = category.num_deform, category.num_joints
    if not isinstance(deform, torch.Tensor) or deform.dim() != 2 or deform.shape[1] != M:
        raise ValueError(f"deform must be a float tensor [B,{M}] ({', '.join(category.deform_names)}), got "
                         f"{list(deform.shape) if isinstance(deform, torch.Tensor) else type(deform).__name__}")
    if not isinstance(articulation, torch.Tensor) or articulation.shape != (deform.shape[0], J):
        got = list(articulation.shape) if isinstance(articulation, torch.Tensor) else type(articulation).__name__
        raise ValueError(f"articulation must be a float tensor [B,{J}] with B={deform.shape[0]} "
                         f"({', '.join(category.joint_names)}), got {got}")


def pose_points(category: BirdCategory, points: torch.Tensor, deform: torch.Tensor,
                articulation: torch.Tensor) -> torch.Tensor:
    """Template points [B,N,3] (or [N,3], shared) -> instance points [B,N,3] in the canonical frame."""
    _check_params(category, deform, articulation)
    B = deform.shape[0]
    if points.dim() not in (2, 3) or points.shape[-1] != 3 or (points.dim() == 3 and points.shape[0] != B):
        raise ValueError(f"points must be [N,3] or [B,N,3] with B={B}, got {list(points.shape)}")
    X = points.to(deform.dtype)
    return _pose(category, X, deformation_fields(X), skin_weights(X), deform, articulation)


def _pose(category: BirdCategory, X: torch.Tensor, fields: torch.Tensor, weights: torch.Tensor,
          deform: torch.Tensor, articulation: torch.Tensor) -> torch.Tensor:
    """Deform then skin points X ([N,3] shared or [B,N,3]) with their fields [M,(B,)N,3] and weights [(B,)N,P]."""
    shared = X.dim() == 2
    Xd = X + (torch.einsum("bm,mnc->bnc", deform, fields) if shared
              else torch.einsum("bm,mbnc->bnc", deform, fields))
    joints = category.joints.to(X)                                        # [P,3]
    joints_d = joints[None] + torch.einsum("bm,mpc->bpc", deform, deformation_fields(joints))
    R = part_rotations(articulation.to(X.dtype))                          # [B,P,3,3]
    # Blend the rigid motions first: x -> sum_p w_p (R_p (x - j_p) + j_p) = A x + b.
    offset = joints_d - torch.einsum("bpij,bpj->bpi", R, joints_d)        # [B,P,3]
    eq = "np,bpij->bnij" if shared else "bnp,bpij->bnij"
    A = torch.einsum(eq, weights, R)
    b = torch.einsum(eq.replace("ij", "i"), weights, offset)
    return torch.einsum("bnij,bnj->bni", A, Xd) + b


def pose_vertices(category: BirdCategory, deform: torch.Tensor, articulation: torch.Tensor) -> torch.Tensor:
    """[B,V,3] instance vertices (canonical frame, before the camera): ``T + B c``, then skinning."""
    _check_params(category, deform, articulation)
    T = category.template.verts.to(deform.dtype)
    return _pose(category, T, category.basis.to(T), category.skin_weights.to(T), deform, articulation)


def pose_keypoints(category: BirdCategory, deform: torch.Tensor, articulation: torch.Tensor,
                   verts: torch.Tensor | None = None) -> torch.Tensor:
    """[B,K,3] instance keypoints: the keypoint weights applied to the posed vertices.

    They lie exactly on the instance's (piecewise-linear) surface. Pass ``verts``
    from :func:`pose_vertices` to skip posing again.
    """
    if verts is None:
        verts = pose_vertices(category, deform, articulation)
    return torch.einsum("kv,bvc->bkc", category.keypoint_weights.to(verts.dtype), verts)


def locate_on_template(category: BirdCategory, surface_xyz: torch.Tensor, surface_uv: torch.Tensor):
    """Face and barycentrics of template surface points, e.g. a sample's ``surface_xyz`` and ``surface_uv``.

    surface_xyz [...,3] and surface_uv [...,2] -> (face [...] long, bary [...,3]).
    The sphere UV picks the face: the icosphere faces around the three vertices
    whose sphere points are nearest are tested (a point's face is spanned by
    the cone of its three sphere points); the barycentrics are then solved in
    the template from ``surface_xyz`` (least squares in the face's plane).
    """
    if surface_xyz.shape[-1] != 3 or surface_uv.shape[-1] != 2 or surface_xyz.shape[:-1] != surface_uv.shape[:-1]:
        raise ValueError(f"surface_xyz [...,3] and surface_uv [...,2] must share their leading shape, got "
                         f"{list(surface_xyz.shape)} and {list(surface_uv.shape)}")
    lead = surface_xyz.shape[:-1]
    xyz, uv = surface_xyz.reshape(-1, 3).double(), surface_uv.reshape(-1, 2).double()
    P = category.template_sphere.double()
    faces = category.template.faces
    p = uv_to_sphere(uv)
    near = (p @ P.T).topk(3, dim=1).indices                                  # [N,3]
    cand = category.vertex_faces[near].flatten(1)                            # [N,18], -1 = none
    valid = cand >= 0
    cand = cand.clamp_min(0)
    w = torch.einsum("nkij,nj->nki", category.sphere_face_inverse[cand], p)
    w = w / w.sum(-1, keepdim=True)
    score = torch.where(valid, w.min(-1).values, torch.full_like(w[..., 0], -float("inf")))
    face = cand.gather(1, score.argmax(1, keepdim=True))[:, 0]
    T = category.template.verts.double()[faces[face]]                        # [N,3,3]
    e1, e2, r = T[:, 1] - T[:, 0], T[:, 2] - T[:, 0], xyz - T[:, 0]
    G = torch.stack([torch.stack([(e1 * e1).sum(-1), (e1 * e2).sum(-1)], -1),
                     torch.stack([(e1 * e2).sum(-1), (e2 * e2).sum(-1)], -1)], -2)
    rhs = torch.stack([(e1 * r).sum(-1), (e2 * r).sum(-1)], -1)
    vw = torch.linalg.solve(G, rhs)
    bary = torch.stack([1 - vw[:, 0] - vw[:, 1], vw[:, 0], vw[:, 1]], -1)
    return face.reshape(lead), bary.to(surface_xyz.dtype).reshape(lead + (3,))


def pose_surface_points(category: BirdCategory, surface_xyz: torch.Tensor, surface_uv: torch.Tensor,
                        deform: torch.Tensor, articulation: torch.Tensor,
                        verts: torch.Tensor | None = None) -> torch.Tensor:
    """Exact instance points [B,N,3] of template *surface* points [B,N,3] with sphere UV [B,N,2].

    Each point keeps its face and barycentrics (:func:`locate_on_template`) on
    the posed mesh, so a pixel's ``surface_xyz``/``surface_uv`` lands exactly on
    the surface point the pixel shows. :func:`pose_points` instead evaluates
    the smooth deformation and skinning fields at the point, which agrees at the
    vertices and differs inside faces by the fields' curvature (up to ~0.03
    object units near the joints).
    """
    if verts is None:
        verts = pose_vertices(category, deform, articulation)
    face, bary = locate_on_template(category, surface_xyz, surface_uv)
    corners = category.template.faces[face]                                   # [B,N,3]
    B = verts.shape[0]
    picked = torch.gather(verts, 1, corners.reshape(B, -1, 1).expand(-1, -1, 3)).reshape(corners.shape + (3,))
    return (bary.to(verts.dtype)[..., None] * picked).sum(-2)
