"""Correspondence problems for the TTP solver: random deformable point sets, corruption, and NDC conversion.

A *problem* is a plain dict (batched; pixels follow csmlab's image convention,
x right, y down, pixel centres at +0.5):

==============  ===============  ==========================================================
key             shape            meaning
==============  ===============  ==========================================================
points          [B,N,2] float    2D point of template vertex i, pixels
visibility      [B,N] float      1 where vertex i is seen, else 0 (the solver's weight v_i)
template        [N,3]            template vertices T
basis           [M,N,3]          deformation basis B (M may be 0)
faces           [F,3] long       template faces (for drawing), optional
image_size      (H, W)
camera          dict             ground truth: rotation [B,3,3], scale [B], trans [B,2] (NDC)
deform          [B,M]            ground-truth coefficients
articulation    [B,J]            ground-truth joint angles (not part of the linear model), optional
outlier         [B,N] bool       points replaced by :func:`corrupt`, optional
points_clean    [B,N,2] float    the points before :func:`corrupt`, optional
images          [B,3,H,W]        the rendered images, optional
==============  ===============  ==========================================================

The synthetic birds are turned into problems by :mod:`.birds`.
"""

from __future__ import annotations

import torch

from ...geometry import icosphere, ndc_to_pixel, ortho_project, pixel_to_ndc, random_rotation, vertex_normals


def _check_problem(problem: dict) -> None:
    for key in ("points", "visibility", "template", "image_size"):
        if key not in problem:
            raise ValueError(f"problem lacks {key!r}; it has {sorted(problem)}")
    p = problem["points"]
    if not (isinstance(p, torch.Tensor) and p.dim() == 3 and p.shape[-1] == 2):
        raise ValueError(f"problem['points'] must be [B,N,2] pixels, got {getattr(p, 'shape', type(p))}")
    if problem["visibility"].shape != p.shape[:2]:
        raise ValueError(f"problem['visibility'] must be [B,N] = {list(p.shape[:2])}, "
                         f"got {list(problem['visibility'].shape)}")


def points_ndc(problem: dict) -> torch.Tensor:
    """[B,N,2] the problem's points in NDC (the solver's units)."""
    _check_problem(problem)
    H, W = problem["image_size"]
    return pixel_to_ndc(problem["points"], H, W)


def project_px(verts: torch.Tensor, rotation: torch.Tensor, scale: torch.Tensor, trans: torch.Tensor,
               image_size) -> torch.Tensor:
    """[B,N,3] points under NDC cameras -> [B,N,2] pixels."""
    H, W = image_size
    return ndc_to_pixel(ortho_project(verts, scale, rotation, trans), H, W)


def random_problem(batch: int, n_basis: int = 6, subdiv: int = 3, image_size: int = 128, seed: int = 0,
                   dtype=torch.float64, deform_std: float = 1.0) -> dict:
    """A random deformable object seen by random cameras: a development stand-in for the birds.

    The template is a bumpy ellipsoid (an icosphere, 642 vertices at ``subdiv=3``);
    each basis shape is a smooth random displacement field (random quadratic
    polynomials of the position, scaled so its largest displacement is 0.1);
    coefficients are N(0, deform_std^2); rotations are uniform on SO(3), scales in
    [0.9, 1.3] and translations in [-0.1, 0.1] NDC. A vertex is visible when its
    normal faces the camera.
    """
    if batch < 1 or n_basis < 0:
        raise ValueError(f"need batch >= 1 and n_basis >= 0, got {batch}, {n_basis}")
    gen = torch.Generator().manual_seed(seed)
    sphere = icosphere(subdiv)
    p = sphere.verts.to(dtype)
    bumps = 1 + 0.08 * torch.sin(3 * p[:, :1] + 1) * torch.cos(2 * p[:, 1:2])
    template = p * torch.tensor([0.6, 0.35, 0.45], dtype=dtype) * bumps
    # Quadratic functions only: a linear displacement field would be a rotation or scale in disguise.
    feats = torch.cat([p[:, [0]] * p, p[:, [1]] * p[:, 1:], p[:, 2:] ** 2], dim=1)  # 6 smooth functions
    coef = torch.randn(n_basis, feats.shape[1], 3, generator=gen, dtype=dtype)
    basis = torch.einsum("nf,mfk->mnk", feats, coef)
    basis = 0.1 * basis / basis.norm(dim=-1).amax(-1).clamp_min(1e-12)[:, None, None]
    deform = deform_std * torch.randn(batch, n_basis, generator=gen, dtype=dtype)
    rotation = random_rotation(batch, generator=gen, dtype=dtype)
    scale = 0.9 + 0.4 * torch.rand(batch, generator=gen, dtype=dtype)
    trans = 0.2 * torch.rand(batch, 2, generator=gen, dtype=dtype) - 0.1
    verts = template + torch.einsum("bm,mnk->bnk", deform, basis)
    normals = vertex_normals(verts, sphere.faces)
    visibility = ((normals @ rotation[:, 2, :, None])[..., 0] > 0).to(dtype)
    size = (image_size, image_size)
    return {"points": project_px(verts, rotation, scale, trans, size), "visibility": visibility,
            "template": template, "basis": basis, "faces": sphere.faces, "image_size": size,
            "camera": {"rotation": rotation, "scale": scale, "trans": trans}, "deform": deform}


def corrupt(problem: dict, noise_px: float = 0.0, outlier_frac: float = 0.0, seed: int = 0) -> dict:
    """A copy of ``problem`` with Gaussian noise (std ``noise_px`` pixels per coordinate) on every point
    and a fraction ``outlier_frac`` of the *visible* points replaced by uniform positions in the image.

    ``outlier`` [B,N] marks the replaced points and ``points_clean`` keeps the uncorrupted
    points. The ground truth is unchanged.
    """
    _check_problem(problem)
    if noise_px < 0 or not (0 <= outlier_frac <= 1):
        raise ValueError(f"need noise_px >= 0 and 0 <= outlier_frac <= 1, got {noise_px}, {outlier_frac}")
    gen = torch.Generator().manual_seed(seed)
    pts = problem["points"]
    H, W = problem["image_size"]
    noisy = pts + noise_px * torch.randn(pts.shape, generator=gen, dtype=pts.dtype)
    visible = problem["visibility"] > 0
    outlier = (torch.rand(pts.shape[:2], generator=gen, dtype=pts.dtype) < outlier_frac) & visible
    anywhere = torch.rand(pts.shape, generator=gen, dtype=pts.dtype) * torch.tensor([W, H], dtype=pts.dtype)
    out = dict(problem)
    out["points_clean"] = problem.get("points_clean", pts)
    out["points"] = torch.where(outlier[..., None], anywhere, noisy)
    out["outlier"] = outlier
    return out


def subset(problem: dict, index) -> dict:
    """The instances ``index`` (slice, list or tensor) of a batched problem; shared fields are kept."""
    _check_problem(problem)
    B = problem["points"].shape[0]
    out = {}
    for key, val in problem.items():
        if key == "camera":
            out[key] = {k: v[index] for k, v in val.items()}
        elif isinstance(val, torch.Tensor) and key not in ("template", "basis", "faces") and val.shape[:1] == (B,):
            out[key] = val[index]
        else:
            out[key] = val
    return out


def deformation_observability(problem: dict) -> torch.Tensor:
    """[B] how well the visible points determine every deformation coefficient, at the true camera.

    The smallest eigenvalue of the visibility-weighted Gram matrix Gamma Gamma^T (the
    ridge solve's matrix) over its largest. It is 0 when some basis shape moves only
    hidden points -- e.g. the birds' head modes seen from behind and below, with the
    head occluded -- or only along the line of sight: no data then fix that
    coefficient, and the ridge sets it to 0 whatever its true value.
    """
    _check_problem(problem)
    cam = problem["camera"]
    basis = problem["basis"].to(cam["rotation"].dtype)
    sR = cam["scale"][:, None, None] * cam["rotation"][:, :2]                      # [B,2,3]
    motion = torch.einsum("bkj,mnj->bmnk", sR, basis)                                # [B,M,N,2]
    w = problem["visibility"].to(motion.dtype)
    gram = torch.einsum("bn,bmnk,bpnk->bmp", w, motion, motion)
    ev = torch.linalg.eigvalsh(gram)
    return ev[:, 0].clamp_min(0) / ev[:, -1].clamp_min(torch.finfo(ev.dtype).tiny)
