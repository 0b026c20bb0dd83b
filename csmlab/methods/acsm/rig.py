"""The rigged template of ACSM: parts, a hierarchy, fixed vertex membership and recursive transforms.

Each part ``p`` has a pivot ``c_p`` (its joint, in the template frame) and a parent
(the root has none). A part transform is a rotation about its pivot plus a small
translation, ``T_p(x) = R_p (x - c_p) + c_p + t_p``. A vertex of part ``p`` moves by its
part's transform, then by its parent's, and so on to the root:

    x' = T_root( ... T_parent( T_p(x) ) ... )

with every pivot taken in the *rest* template (ACSM's ``recursively_apply_transfroms``
also uses the rest pivots; it applies the ancestors root-first, which agrees with the
order above for hierarchies of depth <= 2 such as the birds' and differs for deeper
chains, where the nearest ancestor must act first). Membership is fixed: one part per
vertex, as ACSM's part files fix it.

Composed, each part's motion is one affine map ``x -> A_p x + b_p`` (:func:`compose`);
posing applies it per vertex (:func:`pose_vertices`).

Two rigs of the synthetic birds (:func:`bird_rig`): ours with five parts (body, head,
tail, right and left wing; the wings and head and tail hang off the body) and ACSM's
bird rig with three (body, head, tail: ACSM's ``part_files/bird.txt``; the wings belong
to the body).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from csmlab.checks import check_tensor

BIRD_PARTS_5 = ("body", "head", "tail", "right_wing", "left_wing")
BIRD_PARTS_3 = ("body", "head", "tail")


@dataclass
class Rig:
    """Parts of a template: ``names`` [P], ``parents`` [P] (-1: root), ``membership`` [V] long, ``pivots`` [P,3].

    ``weights`` [V,P] (optional, rows summing to 1) blends the parts' composed motions per
    vertex instead of the hard membership, as ACSM's ``apply_part_transforms`` blends with
    its membership matrix; the synthetic birds' own skinning weights make the rig pose the
    template exactly as the data generator does (the cycle test).
    """

    names: tuple
    parents: tuple
    membership: torch.Tensor
    pivots: torch.Tensor
    weights: torch.Tensor | None = None

    def __post_init__(self):
        P = len(self.names)
        if len(self.parents) != P:
            raise ValueError(f"parents must have one entry per part ({P}: {list(self.names)}), got {len(self.parents)}")
        check_tensor("pivots", self.pivots, shape="P,3", dims={"P": (P, "names")})
        check_tensor("membership", self.membership, ndim=1, dtypes=(torch.int64, torch.int32), nonempty=True)
        roots = [i for i, q in enumerate(self.parents) if q == -1]
        if len(roots) != 1:
            raise ValueError(f"parents must name exactly one root (-1), got {list(self.parents)}")
        for i, q in enumerate(self.parents):
            if not (q == -1 or 0 <= q < P) or q == i:
                raise ValueError(f"parents[{i}] ({self.names[i]!r}) must be -1 or another part's index in "
                                 f"[0, {P}), got {q}")
        self.order = self._topological_order()
        if self.weights is not None:
            check_tensor("weights", self.weights, shape="V,P", dims={"V": (self.membership.shape[0], "membership"),
                                                                     "P": (P, "names")})
            if (self.weights.sum(-1) - 1).abs().max() > 1e-4:
                raise ValueError("weights must be [V,P] with rows that sum to 1")
        counts = torch.bincount(self.membership.long(), minlength=P)
        if self.membership.min() < 0 or self.membership.max() >= P:
            raise ValueError(f"membership must hold part indices in [0, {P}), got values in "
                             f"[{int(self.membership.min())}, {int(self.membership.max())}]")
        empty = [self.names[i] for i in range(P) if counts[i] == 0]
        if empty:
            raise ValueError(f"every part needs at least one vertex; part(s) {empty} have none")

    def _topological_order(self) -> list[int]:
        """Parts with every parent before its children; a cycle in the hierarchy raises."""
        order, state = [], {}

        def visit(i, path):
            if state.get(i) == "done":
                return
            if i in path:
                cycle = [self.names[j] for j in path[path.index(i):]] + [self.names[i]]
                raise ValueError(f"parents must form a tree; the hierarchy has a cycle: {' -> '.join(cycle)}")
            q = self.parents[i]
            if q != -1:
                visit(q, path + [i])
            state[i] = "done"
            order.append(i)

        for i in range(len(self.names)):
            visit(i, [])
        return order

    @property
    def num_parts(self) -> int:
        return len(self.names)

    def ancestors(self, p: int) -> list[int]:
        """Parent, grandparent, ..., root of part ``p``."""
        out, q = [], self.parents[p]
        while q != -1:
            out.append(q)
            q = self.parents[q]
        return out

    def one_hot(self, dtype=torch.float32) -> torch.Tensor:
        """[V,P] membership as weights."""
        return torch.nn.functional.one_hot(self.membership.long(), self.num_parts).to(dtype)


def bird_rig(category, parts: int = 5, soft: bool = False) -> Rig:
    """The synthetic birds' rig: ``parts=5`` (ours) or ``3`` (ACSM's bird: the wings belong to the body).

    Membership is the category's hard part label per vertex (the argmax of its skinning
    weights), pivots are the category's joints (the body's pivot is its torso joint).
    ``soft=True`` (5 parts) keeps the skinning weights themselves: the generator's own rig.
    """
    if parts not in (3, 5):
        raise ValueError(f"parts must be 5 (body, head, tail, wings) or 3 (ACSM's body, head, tail), got {parts!r}")
    member = category.vertex_parts.long().clone()
    pivots = category.joints.float().clone()
    if parts == 3:
        member = torch.where(member >= 3, torch.zeros_like(member), member)   # wings -> body
        pivots = pivots[:3]
        names = BIRD_PARTS_3
    else:
        names = BIRD_PARTS_5
    weights = category.skin_weights.float().clone() if soft else None
    if soft and parts != 5:
        raise ValueError("soft=True needs parts=5 (the skinning weights are per part of the five-part rig)")
    return Rig(names, (-1,) + (0,) * (len(names) - 1), member, pivots, weights)


def check_transforms(rig: Rig, rotations: torch.Tensor, translations: torch.Tensor | None):
    """rotations [...,P,3,3] and translations [...,P,3] (or None: zero) for the rig's P parts."""
    P = rig.num_parts
    if not isinstance(rotations, torch.Tensor) or rotations.dim() < 3 or rotations.shape[-3:] != (P, 3, 3):
        got = list(rotations.shape) if isinstance(rotations, torch.Tensor) else type(rotations).__name__
        raise ValueError(f"rotations must be [...,{P},3,3] (one per part: {list(rig.names)}), got {got}")
    if translations is None:
        translations = rotations.new_zeros(rotations.shape[:-1])
    if not isinstance(translations, torch.Tensor) or translations.shape != rotations.shape[:-1]:
        got = list(translations.shape) if isinstance(translations, torch.Tensor) else type(translations).__name__
        raise ValueError(f"translations must be {list(rotations.shape[:-1])} (matching rotations), got {got}")
    return translations


def local_affine(rig: Rig, rotations: torch.Tensor, translations: torch.Tensor):
    """Each part's own transform as ``x -> R x + (c - R c + t)``: (A [...,P,3,3], b [...,P,3])."""
    c = rig.pivots.to(rotations)
    b = c - torch.einsum("...pij,pj->...pi", rotations, c) + translations
    return rotations, b


def compose(rig: Rig, rotations: torch.Tensor, translations: torch.Tensor | None = None):
    """Global motion of every part, its own transform followed by its ancestors': (A [...,P,3,3], b [...,P,3]).

    ``G_p = G_parent o T_p`` (the root: ``G_root = T_root``), computed parents first.
    """
    translations = check_transforms(rig, rotations, translations)
    A_loc, b_loc = local_affine(rig, rotations, translations)
    A, b = [None] * rig.num_parts, [None] * rig.num_parts
    for p in rig.order:
        q = rig.parents[p]
        if q == -1:
            A[p], b[p] = A_loc[..., p, :, :], b_loc[..., p, :]
        else:
            A[p] = A[q] @ A_loc[..., p, :, :]
            b[p] = torch.einsum("...ij,...j->...i", A[q], b_loc[..., p, :]) + b[q]
    return torch.stack(A, -3), torch.stack(b, -2)


def pose_vertices(rig: Rig, verts: torch.Tensor, rotations: torch.Tensor,
                  translations: torch.Tensor | None = None) -> torch.Tensor:
    """Rest vertices [V,3] -> posed vertices [...,V,3]: each vertex moved by its part's composed motion."""
    check_tensor("verts", verts, shape="V,3", dims={"V": (rig.membership.shape[0], "rig.membership")})
    A, b = compose(rig, rotations, translations)
    if rig.weights is not None:   # blend the parts' motions per vertex (linear blend skinning)
        w = rig.weights.to(A)
        return torch.einsum("vp,...pij,vj->...vi", w, A, verts.to(A)) + torch.einsum("vp,...pi->...vi", w, b)
    m = rig.membership.to(verts.device).long()
    return torch.einsum("...vij,vj->...vi", A[..., m, :, :], verts.to(A)) + b[..., m, :]


def identity_transforms(rig: Rig, batch_shape=(), dtype=torch.float32):
    """Zero articulation: identity rotations [...,P,3,3] and zero translations [...,P,3]."""
    R = torch.eye(3, dtype=dtype).expand(*batch_shape, rig.num_parts, 3, 3).clone()
    return R, torch.zeros(*batch_shape, rig.num_parts, 3, dtype=dtype)
