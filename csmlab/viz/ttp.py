"""Pictures for notebook 01 (To The Point): reprojection overlays, fitted meshes, curves, and an explorer.

Points are pixels (x right, y down, centres at +0.5) and images top-row-first,
as in :mod:`csmlab.viz.images`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..geometry import azel_to_matrix, ndc_to_pixel, ortho_clip, ortho_project, vertex_normals
from .images import show_image
from .output import show_in
from .scene import mesh_trace, ortho_camera_traces, points_trace, scene_figure


def _np(x) -> np.ndarray:
    return x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)


def plot_reprojection(ax, points, fitted, visibility=None, image=None, outlier=None, image_size=None,
                      title: str | None = None, max_lines: int = 400):
    """Target points (dots), their reprojection (crosses) and the error between them (lines).

    points, fitted: [N,2] pixels; visibility: [N] (hidden points are not drawn);
    outlier: [N] bool, drawn in red. ``image`` [3,H,W] goes underneath; without it the
    axes span ``image_size`` (H, W).
    """
    p, f = _np(points), _np(fitted)
    if p.shape != f.shape or p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"points and fitted must both be [N,2], got {p.shape} and {f.shape}")
    vis = np.ones(len(p), bool) if visibility is None else _np(visibility) > 0
    out = np.zeros(len(p), bool) if outlier is None else _np(outlier) > 0
    if image is not None:
        show_image(ax, image)
        H, W = image.shape[-2:]
    elif image_size is not None:
        H, W = image_size
    else:
        raise ValueError("give image or image_size to set the axes")
    idx = np.flatnonzero(vis)
    if len(idx) > max_lines:  # keep the picture legible: a fixed, even subsample
        idx = idx[np.linspace(0, len(idx) - 1, max_lines).round().astype(int)]
    from matplotlib.collections import LineCollection
    ax.add_collection(LineCollection(np.stack([p[idx], f[idx]], 1), colors="yellow", linewidths=0.6, zorder=3))
    inl, bad = idx[~out[idx]], idx[out[idx]]
    ax.scatter(p[inl, 0], p[inl, 1], s=4, c="cyan", zorder=4, label="target")
    ax.scatter(p[bad, 0], p[bad, 1], s=6, c="red", zorder=4, label="outlier")
    ax.scatter(f[idx, 0], f[idx, 1], s=8, c="black", marker="x", linewidths=0.6, zorder=5, label="reprojection")
    ax.set_xlim(0, W)
    ax.set_ylim(H, 0)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=9)


def render_mesh_overlay(image, verts, faces, rotation, scale, trans, color=(1.0, 0.55, 0.1), alpha: float = 0.55):
    """The mesh ``verts`` [V,3] seen by a camera (s, R [3,3], t NDC), Lambert-shaded, blended over ``image``.

    Returns a [3,H,W] image in [0,1]; rendered with ``csmlab.render`` (so it is exactly
    the rasterizer the course uses, nvdiffrast's conventions).
    """
    from ..render import interpolate_image, rasterize_mesh

    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be [3,H,W], got {list(image.shape)}")
    H, W = image.shape[-2:]
    V = verts.float()[None]
    R = rotation.float()[None]
    pos = ortho_clip(V, scale.float().reshape(1), R, trans.float().reshape(1, 2))
    r = rasterize_mesh(pos, faces, (H, W))
    normals = vertex_normals(V, faces) @ R.transpose(1, 2)
    n = torch.nn.functional.normalize(interpolate_image(r, normals)[0], dim=0)
    light = torch.nn.functional.normalize(torch.tensor([0.3, 0.4, 1.0]), dim=0)
    shade = (0.35 + 0.65 * (n * light[:, None, None]).sum(0).clamp_min(0))[None]
    colour = torch.tensor(color)[:, None, None] * shade
    mask = r.mask[0]
    return (image.float() * (1 - alpha * mask) + alpha * mask * colour).clamp(0, 1)


def plot_error_curves(ax, noise_levels, curves: dict, ylabel: str = "median rotation error (deg)",
                      xlabel: str = "noise (px)", title: str | None = None):
    """One line per entry of ``curves`` (name -> values at ``noise_levels``), log-scaled y when it helps."""
    x = _np(noise_levels)
    for name, values in curves.items():
        ax.plot(x, _np(values), marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title is not None:
        ax.set_title(title, fontsize=10)


class ReprojectionExplorer:
    """Sliders for the camera (azimuth, elevation, roll, s, t) and the first basis coefficients.

    Each change redraws the reprojection of the deformed template against one
    instance's target points, with the RMS error, beside a plotly 3D view of the
    deformed template and the camera. ``fit()`` moves the sliders to the TTP
    solution. Attributes: ``sliders``, ``rms_px`` (last error), ``widget``.
    """

    def __init__(self, problem: dict, index: int = 0, n_coeffs: int = 3, show_3d: bool = True):
        import ipywidgets as widgets

        self.problem, self.index, self.show_3d = problem, int(index), show_3d
        self.n_coeffs = min(n_coeffs, problem["basis"].shape[0])
        style = dict(continuous_update=False, style={"description_width": "80px"},
                     layout=widgets.Layout(width="300px"))
        self.sliders = {
            "azimuth": widgets.FloatSlider(value=0.0, min=-180, max=180, step=2, description="azimuth°", **style),
            "elevation": widgets.FloatSlider(value=0.0, min=-90, max=90, step=2, description="elevation°", **style),
            "roll": widgets.FloatSlider(value=0.0, min=-180, max=180, step=2, description="roll°", **style),
            "scale": widgets.FloatSlider(value=0.8, min=0.2, max=1.6, step=0.01, description="s", **style),
            "tx": widgets.FloatSlider(value=0.0, min=-0.5, max=0.5, step=0.01, description="t_x", **style),
            "ty": widgets.FloatSlider(value=0.0, min=-0.5, max=0.5, step=0.01, description="t_y", **style),
        }
        for m in range(self.n_coeffs):
            self.sliders[f"c{m}"] = widgets.FloatSlider(value=0.0, min=-0.5, max=0.5, step=0.01,
                                                        description=f"c_{m}", **style)
        for s in self.sliders.values():
            s.observe(lambda _change: self._redraw(), names="value")
        self._button = widgets.Button(description="fit (TTP solve)")
        self._button.on_click(lambda _b: self.fit())
        self._plot, self._scene = widgets.Output(), widgets.Output()
        self._holding = False
        self.rms_px = float("nan")
        controls = widgets.VBox(list(self.sliders.values()) + [self._button])
        self.widget = widgets.HBox([controls, self._plot] + ([self._scene] if show_3d else []))
        self._redraw()

    def camera(self):
        """(R [3,3], s [], t [2], c [M]) from the sliders."""
        v = {k: s.value for k, s in self.sliders.items()}
        R = azel_to_matrix(*(torch.tensor(math.radians(v[k]), dtype=torch.float64)
                             for k in ("azimuth", "elevation", "roll")))
        c = torch.zeros(self.problem["basis"].shape[0], dtype=torch.float64)
        for m in range(self.n_coeffs):
            c[m] = v[f"c{m}"]
        return R, torch.tensor(v["scale"], dtype=torch.float64), torch.tensor([v["tx"], v["ty"]],
                                                                                dtype=torch.float64), c

    def verts(self, coeffs) -> torch.Tensor:
        return self.problem["template"].double() + torch.einsum("m,mnk->nk", coeffs, self.problem["basis"].double())

    def set(self, **values) -> None:
        """Move several sliders, redrawing once (angles in degrees)."""
        self._holding = True
        try:
            for k, v in values.items():
                if k not in self.sliders:
                    raise ValueError(f"unknown slider {k!r}; sliders: {sorted(self.sliders)}")
                self.sliders[k].value = float(np.clip(v, self.sliders[k].min, self.sliders[k].max))
        finally:
            self._holding = False
        self._redraw()

    def fit(self) -> None:
        """Solve this instance with the TTP solver and move the sliders there."""
        from ..geometry import matrix_to_azel
        from ..methods.ttp import points_ndc, solve, subset

        one = subset(self.problem, [self.index])
        res = solve(points_ndc(one), one["visibility"], one["template"], one["basis"])
        az, el, roll = (math.degrees(float(a)) for a in matrix_to_azel(res.rotation[0].double()))
        values = dict(azimuth=az, elevation=el, roll=roll, scale=float(res.scale[0]), tx=float(res.trans[0, 0]),
                      ty=float(res.trans[0, 1]))
        values.update({f"c{m}": float(res.coeffs[0, m]) for m in range(self.n_coeffs)})
        self.set(**values)

    def _redraw(self) -> None:
        if self._holding:
            return
        import matplotlib.pyplot as plt

        R, s, t, c = self.camera()
        V = self.verts(c)
        H, W = self.problem["image_size"]
        fitted = ndc_to_pixel(ortho_project(V[None], s.reshape(1), R[None], t[None]), H, W)[0]
        target = self.problem["points"][self.index].double()
        vis = self.problem["visibility"][self.index] > 0
        self.rms_px = float(((fitted - target)[vis] ** 2).sum(-1).mean().sqrt())
        image = self.problem["images"][self.index] if "images" in self.problem else None
        fig, ax = plt.subplots(figsize=(3.6, 3.6))
        plot_reprojection(ax, target, fitted, vis, image=image, image_size=(H, W),
                          title=f"RMS reprojection error {self.rms_px:.2f} px")
        show_in(self._plot, fig)
        if self.show_3d:
            traces = [mesh_trace(V, self.problem["faces"], opacity=0.9),
                      points_trace(V[vis], size=1.5, colors="darkorange", name="visible targets")]
            traces += ortho_camera_traces(R, scale=float(s), trans=t, distance=1.5, depth=1.5)
            show_in(self._scene, scene_figure(traces, height=360, width=420))

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
