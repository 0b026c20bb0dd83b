"""nvdiffrast's API: nvdiffrast itself on CUDA, compiled (numba) kernels on CPU, a faithful pure-PyTorch twin elsewhere.

Notebook code is nvdiffrast code::

    import csmlab.dr as dr
    ctx = dr.RasterizeCudaContext()            # works on a laptop too
    rast, rast_db = dr.rasterize(ctx, pos, tri, resolution=(H, W))
    color, _ = dr.interpolate(vertex_colors, rast, tri)
    color = dr.antialias(color, rast, pos, tri)

and runs unchanged with ``import nvdiffrast.torch as dr`` on a GPU.

Contract (the same names, signatures, outputs and conventions as ``nvdiffrast.torch``):

- ``pos`` is clip space, [B, V, 4] (instanced mode) or [V, 4] with ``ranges`` [B, 2]
  = (first triangle, count) per image (range mode). ``tri`` is [F, 3] int32.
- ``rasterize`` returns ``rast`` [B, H, W, 4] = (u, v, z/w, triangle_id + 1), all zeros
  where nothing is drawn, and ``rast_db`` [B, H, W, 4] = (du/dX, du/dY, dv/dX, dv/dY)
  in pixels. u weights ``tri[:, 0]``, v weights ``tri[:, 1]``; both are
  perspective-correct. Row 0 is NDC y = -1 (images come out bottom-up); the centre of
  pixel column px is at x = (2 px + 1) / W - 1. The smallest z/w wins; nothing is
  back-face culled; pixels whose z/w is outside [-1, 1] are clipped.
- Gradients reach ``pos`` through u and v (and through ``rast_db`` when ``grad_db``),
  never through z/w or the id.
- ``interpolate(attr, rast, tri, rast_db=None, diff_attrs=None)`` returns ``(out, out_da)``;
  ``out_da`` is an empty [B, H, W, 0] tensor unless ``diff_attrs`` ('all' or indices) is given.
- ``texture`` and ``antialias`` as in nvdiffrast (see :mod:`csmlab.dr.texture_twin` and
  :mod:`csmlab.dr.antialias_twin` for what their twins support).

Dispatch (per call, by the device of the main input tensor):

- CUDA tensor and ``nvdiffrast`` importable -> ``nvdiffrast.torch`` (imported lazily, only
  then). The context must then be a real nvdiffrast context: ``RasterizeCudaContext``
  creates one when it is constructed on a CUDA machine with nvdiffrast installed.
- CUDA tensor without nvdiffrast -> the twin (on the GPU, in PyTorch), with one warning
  telling how to install nvdiffrast (``pip install diffrp-nvdiffrast``, or the official
  ``pip install git+https://github.com/NVlabs/nvdiffrast``).
- CPU tensor and numba importable -> the compiled kernels (:mod:`csmlab.dr.raster_compiled`,
  :mod:`csmlab.dr.interpolate_compiled`, :mod:`csmlab.dr.antialias_compiled`; ``texture`` stays
  on the twin). Same checks, outputs and conventions as the twin, which the tests hold
  them to; hand-written backward passes. Compiled on first use, cached on disk, run in
  numba's own threads: see :mod:`csmlab.dr.kernels` (cache location, ``NUMBA_CACHE_DIR``,
  ``NUMBA_NUM_THREADS``, and ``CSMLAB_DR_NUMBA=0`` to switch them off).
- CPU tensor without numba, and anything else (MPS, ...) -> the twin; on CPU with one
  warning telling how to install numba. ``backend_for(tensor)`` tells which one serves a tensor.

The twin differs from nvdiffrast only where nvdiffrast's output is not pinned down:

- Pixel centres exactly on an edge shared by two triangles go to the nearer one, and on
  exact depth ties to the lower triangle index; nvdiffrast's hardware-style fill rule
  and fixed-point snapping may pick the other one (a fraction of a percent of pixels).
- Triangles are classified as zero-area with a relative tolerance (1e-9) instead of on
  nvdiffrast's snapped fixed-point coordinates; they cover nothing either way.
- The depth test compares z/w + 1 in float32 (resolution ~1.2e-7, like a 24-bit depth
  buffer): surfaces closer than that go to the lower triangle index. The z/w written to
  ``rast`` is exact (float64 depth plane, cast to ``pos.dtype``).
- Pixel centres whose z/w is exactly -1 (on the near plane) or exactly on an edge are kept
  (inclusive tests); a hardware fill rule would keep only one of two triangles sharing
  an edge, the twin gives the pixel to the nearer / lower-index one.
- nvdiffrast adds a 1e-6 epsilon to the edge-function sum in its backward pass only;
  the twin returns the exact derivative.
- ``DepthPeeler`` (:mod:`csmlab.dr.peel`), and ``RasterizeGLContext`` (nvdiffrast 0.3's OpenGL
  context, with ``output_db`` and ``mode``) for code written for it. Not provided: triangle
  ids above 2**24 in float32 (exact ids up to 16.7M triangles), and whatever the
  texture/antialias twins list as left out.
- The twin also accepts float64 inputs (for ``torch.autograd.gradcheck``) and int64 ``tri``.

How the twin works: :mod:`csmlab.dr.zbuffer` (visibility by homogeneous edge
functions on tiles and a scatter-min z-buffer, no gradients), :mod:`csmlab.dr.raster`
(differentiable barycentrics for the visible pixels only, closed-form backward) and
:mod:`csmlab.dr.interpolation`. It runs on any device PyTorch supports (on CUDA too,
without nvdiffrast), in float32 or float64. Speed on CPU (one thread, batch of 8,
1280-face sphere at 128x128): roughly 25 ms for rasterize forward + backward, about
10x the CPU time of Mesa llvmpipe's id + depth pass, and several times the compiled
kernels' time; see ``benchmarks/raster.py``.

How the GPU path works: on a CUDA tensor with nvdiffrast installed, each call is
forwarded unchanged to ``nvdiffrast.torch`` (its CUDA rasterizer through
``RasterizeCudaContext``; outputs, gradients and error checks are nvdiffrast's own, so
inputs must then be float32 / int32 and contiguous, as nvdiffrast requires).
"""

from __future__ import annotations

import importlib
import warnings

import torch

from csmlab.dr.antialias_twin import antialias_construct_topology_hash_torch, antialias_torch
from csmlab.dr.checks import check_tensor
from csmlab.dr.interpolation import interpolate_torch
from csmlab.dr.kernels import numba_available, numba_enabled, switched_off
from csmlab.dr.mipmap import texture_construct_mip as _texture_construct_mip_torch
from csmlab.dr.raster import rasterize_torch
from csmlab.dr.texture_twin import texture_torch

__all__ = ["RasterizeContext", "RasterizeCudaContext", "rasterize", "interpolate", "texture", "antialias",
           "antialias_construct_topology_hash", "backend_for", "nvdiffrast_available", "numba_available",
           "numba_enabled", "rasterize_torch", "interpolate_torch"]
__all__ += ["texture_construct_mip", "DepthPeeler", "RasterizeGLContext"]

INSTALL_HINT = ("install nvdiffrast for the fast GPU path: `pip install diffrp-nvdiffrast` "
                "(prebuilt wheels) or the official `pip install git+https://github.com/NVlabs/nvdiffrast`")

_nvdr_module = None          # nvdiffrast.torch once imported, False when it is not importable
_warned_missing = False
_warned_no_numba = False


def _nvdiffrast():
    """``nvdiffrast.torch`` or None; imported once, and only when a CUDA tensor asks for it."""
    global _nvdr_module
    if _nvdr_module is None:
        try:
            _nvdr_module = importlib.import_module("nvdiffrast.torch")
        except Exception:  # ImportError, or a broken build raising at import time
            _nvdr_module = False
    return _nvdr_module or None


def nvdiffrast_available() -> bool:
    """True when CUDA is available and ``nvdiffrast.torch`` imports."""
    return torch.cuda.is_available() and _nvdiffrast() is not None


def _warn_missing_once() -> None:
    global _warned_missing
    if not _warned_missing:
        _warned_missing = True
        warnings.warn(f"csmlab.dr: CUDA tensors but nvdiffrast is not importable; using the slower "
                      f"PyTorch twin. To fix, {INSTALL_HINT}.", RuntimeWarning, stacklevel=3)


def _warn_no_numba_once() -> None:
    global _warned_no_numba
    if not _warned_no_numba:
        _warned_no_numba = True
        warnings.warn("csmlab.dr: numba is not available; CPU tensors use the slower PyTorch twin. "
                      "To fix, `pip install numba`.", RuntimeWarning, stacklevel=3)


def backend_for(tensor: torch.Tensor) -> str:
    """'nvdiffrast', 'numba' or 'torch': the backend that serves an op whose main input is ``tensor``."""
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"backend_for expects a torch.Tensor, got {type(tensor).__name__}")
    if tensor.is_cuda:
        if _nvdiffrast() is not None:
            return "nvdiffrast"
        _warn_missing_once()
    elif tensor.device.type == "cpu":
        if numba_enabled():
            return "numba"
        if not switched_off():   # numba missing, not a user's choice: say how to get the fast path
            _warn_no_numba_once()
    return "torch"


class RasterizeContext:
    """A rasterizer context that picks its backend.

    ``device`` (None, str, int or torch.device): None means CUDA when available, else CPU.
    On CUDA with nvdiffrast installed it wraps ``nvdiffrast.torch.RasterizeCudaContext``
    (``.nvdr``); otherwise ``.nvdr`` is None and every call uses the twin.
    """

    def __init__(self, device=None):
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if isinstance(device, int):
            device = torch.device("cuda", device)
        try:
            self.device = torch.device(device)
        except (TypeError, RuntimeError) as err:
            raise ValueError(f"device must be None, an int, a str or a torch.device, got {device!r}") from err
        self.nvdr = None
        if self.device.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(f"device={device!r} asks for CUDA but torch.cuda.is_available() is False")
            nvdr = _nvdiffrast()
            if nvdr is not None:
                self.nvdr = self._nvdiffrast_context(nvdr)
            else:
                _warn_missing_once()

    output_db = True  # nvdiffrast's CUDA context always outputs rast_db

    def _nvdiffrast_context(self, nvdr):
        return nvdr.RasterizeCudaContext(device=self.device)

    @property
    def backend(self) -> str:
        if self.nvdr is not None:
            return "nvdiffrast"
        return "numba" if self.device.type == "cpu" and numba_enabled() else "torch"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={str(self.device)!r}, backend={self.backend!r})"


class RasterizeCudaContext(RasterizeContext):
    """``nvdiffrast.torch.RasterizeCudaContext(device=None)``; a twin context where CUDA or
    nvdiffrast is missing, so nvdiffrast-style code runs unchanged on a laptop."""


class RasterizeGLContext(RasterizeContext):
    """``nvdiffrast.torch.RasterizeGLContext(output_db=True, mode='automatic', device=None)``.

    nvdiffrast's OpenGL rasterizer context (nvdiffrast 0.3 and earlier; later releases removed
    it), so that code written for it runs unchanged: on CPU a twin context; on CUDA with
    nvdiffrast, nvdiffrast's GL context where the installed version has one, else its CUDA
    context. With ``output_db=False``, ``rasterize`` returns an empty [B, H, W, 0] ``rast_db``
    and computes no gradients through it, as nvdiffrast does. ``mode='manual'`` enables
    ``set_context`` / ``release_context`` (no-ops without an OpenGL context).
    """

    def __init__(self, output_db=True, mode="automatic", device=None):
        if output_db is not True and output_db is not False:
            raise ValueError(f"output_db must be True or False, got {output_db!r}")
        if mode not in ("automatic", "manual"):
            raise ValueError(f"mode must be 'automatic' or 'manual', got {mode!r}")
        self.output_db, self.mode = output_db, mode
        super().__init__(device)

    def _nvdiffrast_context(self, nvdr):
        if hasattr(nvdr, "RasterizeGLContext"):
            return nvdr.RasterizeGLContext(output_db=self.output_db, mode=self.mode, device=self.device)
        return nvdr.RasterizeCudaContext(device=self.device)

    def _check_manual(self, what):
        if self.mode != "manual":
            raise ValueError(f"{what}() needs a context created with mode='manual', got mode={self.mode!r}")

    def set_context(self):
        self._check_manual("set_context")
        if hasattr(self.nvdr, "set_context"):
            self.nvdr.set_context()

    def release_context(self):
        self._check_manual("release_context")
        if hasattr(self.nvdr, "release_context"):
            self.nvdr.release_context()


def _without_db(result, glctx):
    """(rast, rast_db) with rast_db emptied to [B, H, W, 0] where ``glctx.output_db`` is False."""
    rast, rast_db = result
    if glctx.output_db or rast_db.shape[-1] == 0:
        return rast, rast_db
    return rast, rast_db.detach()[..., :0]


def rasterize(glctx, pos, tri, resolution, ranges=None, grad_db=True):
    """``nvdiffrast.torch.rasterize``: returns ``(rast, rast_db)``; see the module docstring."""
    if not isinstance(glctx, RasterizeContext):
        raise ValueError(f"glctx must be a csmlab.dr.RasterizeContext / RasterizeCudaContext, "
                         f"got {type(glctx).__name__}")
    check_tensor("pos", pos)
    backend = backend_for(pos)   # asked once per call: it reads the environment
    if backend == "nvdiffrast":
        if glctx.nvdr is None:
            raise ValueError(f"pos is on {pos.device} but glctx was created for {glctx.device} without "
                             f"nvdiffrast; create the context with device='cuda'")
        return _without_db(_nvdiffrast().rasterize(glctx.nvdr, pos, tri, resolution, ranges=ranges,
                                                  grad_db=grad_db), glctx)
    grad_db = grad_db and glctx.output_db
    if backend == "numba":
        from csmlab.dr.raster_compiled import rasterize_compiled

        return _without_db(rasterize_compiled(pos, tri, resolution, ranges=ranges, grad_db=grad_db), glctx)
    return _without_db(rasterize_torch(pos, tri, resolution, ranges=ranges, grad_db=grad_db), glctx)


def interpolate(attr, rast, tri, rast_db=None, diff_attrs=None):
    """``nvdiffrast.torch.interpolate``: returns ``(out, out_da)``; see the module docstring."""
    check_tensor("attr", attr)
    backend = backend_for(attr)
    if backend == "nvdiffrast":
        return _nvdiffrast().interpolate(attr, rast, tri, rast_db=rast_db, diff_attrs=diff_attrs)
    if backend == "numba":
        from csmlab.dr.interpolate_compiled import interpolate_compiled

        return interpolate_compiled(attr, rast, tri, rast_db=rast_db, diff_attrs=diff_attrs)
    return interpolate_torch(attr, rast, tri, rast_db=rast_db, diff_attrs=diff_attrs)


def texture(tex, uv, uv_da=None, mip_level_bias=None, mip=None, filter_mode="auto",
            boundary_mode="wrap", max_mip_level=None):
    """``nvdiffrast.torch.texture``; the twin is :func:`csmlab.dr.texture_twin.texture_torch`."""
    check_tensor("tex", tex)
    if backend_for(tex) == "nvdiffrast":
        return _nvdiffrast().texture(tex, uv, uv_da=uv_da, mip_level_bias=mip_level_bias, mip=mip,
                                     filter_mode=filter_mode, boundary_mode=boundary_mode,
                                     max_mip_level=max_mip_level)
    return texture_torch(tex, uv, uv_da=uv_da, mip_level_bias=mip_level_bias, mip=mip,
                         filter_mode=filter_mode, boundary_mode=boundary_mode,
                         max_mip_level=max_mip_level)


def antialias(color, rast, pos, tri, topology_hash=None, pos_gradient_boost=1.0):
    """``nvdiffrast.torch.antialias``; the twin is :func:`csmlab.dr.antialias_twin.antialias_torch`."""
    check_tensor("color", color)
    backend = backend_for(color)
    if backend == "nvdiffrast":
        return _nvdiffrast().antialias(color, rast, pos, tri, topology_hash=topology_hash,
                                       pos_gradient_boost=pos_gradient_boost)
    if backend == "numba":
        from csmlab.dr.antialias_compiled import antialias_compiled

        return antialias_compiled(color, rast, pos, tri, topology_hash=topology_hash,
                                  pos_gradient_boost=pos_gradient_boost)
    return antialias_torch(color, rast, pos, tri, topology_hash=topology_hash,
                           pos_gradient_boost=pos_gradient_boost)


def antialias_construct_topology_hash(tri):
    """``nvdiffrast.torch.antialias_construct_topology_hash``: build once, pass to ``antialias``.

    The two backends' hashes are not interchangeable; build it from ``tri`` on the device
    the ``antialias`` calls will use.
    """
    check_tensor("tri", tri)
    if backend_for(tri) == "nvdiffrast":
        return _nvdiffrast().antialias_construct_topology_hash(tri)
    return antialias_construct_topology_hash_torch(tri)



def texture_construct_mip(tex, max_mip_level=None, cube_mode=False):
    """``nvdiffrast.torch.texture_construct_mip``: a mip stack to reuse in ``texture(..., mip=)``.

    The two backends' stacks are not interchangeable; build it on the device ``texture`` uses.
    """
    check_tensor("tex", tex)
    if backend_for(tex) == "nvdiffrast":
        return _nvdiffrast().texture_construct_mip(tex, max_mip_level=max_mip_level, cube_mode=cube_mode)
    return _texture_construct_mip_torch(tex, max_mip_level=max_mip_level, cube_mode=cube_mode)


from csmlab.dr.peel import DepthPeeler  # noqa: E402  (needs RasterizeContext defined above)
