"""Pictures for notebook 05 (Unsup3D): factor grids, depth surfaces, and the relighting explorer."""

from __future__ import annotations

import math

import numpy as np
import torch

from .csm import metrics_table, plot_losses
from .images import image_grid
from .output import show_in

__all__ = ["show_factors", "depth_points", "depth_surface_figure", "RelightExplorer", "plot_losses", "metrics_table"]


def _depth_vis(depth: torch.Tensor, lo: float = 0.9, hi: float = 1.1) -> torch.Tensor:
    return ((depth - lo) / (hi - lo)).clamp(0, 1)


def show_factors(image: torch.Tensor, out: dict, n: int = 4, title: str | None = None):
    """Rows of [input, albedo, canonical depth, shading, reconstruction, flipped reconstruction, sigma].

    ``out`` is the output of ``Unsup3D(...)(image)`` (its first half is the unflipped reconstruction).
    Depth is shown on [0.9, 1.1] (dark = near), sigma on [0, its max].
    """
    B = image.shape[0]
    n = min(n, B)
    cols, titles = [], []
    sigma = out.get("sigma")
    smax = float(sigma[:n].detach().max()) if sigma is not None else 1.0
    for i in range(n):
        row = [image[i], out["albedo"][i].clamp(0, 1), _depth_vis(out["canon_depth"][i]),
               out["recon"]["shading"][i].clamp(0, 1), out["recon"]["image"][i].clamp(0, 1),
               out["recon"]["image"][B + i].clamp(0, 1)]
        names = ["input", "albedo", "canonical depth", "shading", "reconstruction", "flipped recon."]
        if sigma is not None:
            row.append(sigma[i] / smax)
            names.append(f"sigma (max {smax:.2f})")
        cols += row
        titles += names if i == 0 else [""] * len(names)
    return image_grid(cols, titles=titles, ncols=len(cols) // n, size=1.7, suptitle=title)


def depth_points(depth: torch.Tensor) -> np.ndarray:
    """[1,S,S] (or [S,S]) depth -> [S*S,3] camera-frame points (x right, y up, z towards the viewer)."""
    from csmlab.data.synthetic.faces_geometry import depth_to_points

    d = depth.reshape(1, 1, *depth.shape[-2:]).float()
    return depth_to_points(d)[0].reshape(3, -1).T.numpy()


def _surface_mesh(depth, colours=None, name="depth", color="lightsteelblue"):
    import plotly.graph_objects as go

    from csmlab.methods.unsup3d.renderer import grid_faces

    p = depth_points(depth)
    f = grid_faces(depth.shape[-1]).numpy()
    kw = {}
    if colours is not None:
        c = (np.clip(colours.reshape(3, -1).T.numpy(), 0, 1) * 255).astype(int)
        kw["vertexcolor"] = [f"rgb({r},{g},{b})" for r, g, b in c]
    else:
        kw["color"] = color
    return go.Mesh3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], i=f[:, 0], j=f[:, 1], k=f[:, 2], name=name,
                     flatshading=False, lighting={"ambient": 0.5, "diffuse": 0.8}, **kw)


_SCENE = dict(aspectmode="data", camera={"eye": {"x": 0.0, "y": 0.0, "z": 1.6}, "up": {"x": 0, "y": 1, "z": 0}},
              xaxis={"visible": False}, yaxis={"visible": False}, zaxis={"visible": False})


def depth_surface_figure(pred_depth: torch.Tensor, gt_depth: torch.Tensor, mask: torch.Tensor | None = None,
                         titles=("predicted", "ground truth"), height: int = 380):
    """Plotly: two 3D surfaces side by side (input-view depths [1,S,S]; off-``mask`` pixels dropped)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, specs=[[{"type": "scene"}, {"type": "scene"}]], subplot_titles=list(titles))
    for col, depth in enumerate((pred_depth, gt_depth), start=1):
        d = depth.clone().float()
        if mask is not None:   # hide the background: move it onto the face's median depth, drawn grey
            d = torch.where(mask > 0, d, d[mask > 0].median() if (mask > 0).any() else d.mean())
        fig.add_trace(_surface_mesh(d, name=titles[col - 1]), row=1, col=col)
    fig.update_layout(height=height, margin={"l": 0, "r": 0, "t": 30, "b": 0}, showlegend=False,
                      scene=_SCENE, scene2=_SCENE)
    return fig


class RelightExplorer:
    """Relight and rotate one reconstruction: light (dx, dy) sliders, a yaw slider, a flipped toggle.

    Both panels live in ``ipywidgets.Output`` widgets whose ``outputs`` state is replaced on every
    change (:func:`csmlab.viz.output.show_in`): the 2D panel (the relit canonical image and the image
    seen at the chosen yaw) and the 3D panel (the plotly figure's own mimebundle: the predicted
    surface turned by the yaw and coloured by the relit image). Plotly's ``FigureWidget`` would need
    anywidget, which is not a dependency. Both follow the controls in a browser and run headless.
    ``render(dx, dy, yaw_deg, flipped)`` returns the pictures without the widget; ``figure`` is the
    last 3D figure drawn.
    """

    def __init__(self, factors: dict, index: int = 0, show_3d: bool = True):
        import ipywidgets as widgets

        self.depth = factors["canon_depth"][index:index + 1].detach()
        self.albedo = factors["albedo"][index:index + 1].detach()
        light = factors.get("light")
        self.ambient = float(light["ambient"][index]) if light is not None else 0.5
        self.diffuse = float(light["diffuse"][index]) if light is not None else 0.5
        d = light["direction"][index] if light is not None else torch.tensor([0.0, 0.0, 1.0])
        common = dict(continuous_update=False, style={"description_width": "70px"})
        self.controls = {
            "dx": widgets.FloatSlider(value=float(d[0] / d[2]), min=-1.5, max=1.5, step=0.1, description="light dx",
                                      **common),
            "dy": widgets.FloatSlider(value=float(d[1] / d[2]), min=-1.5, max=1.5, step=0.1, description="light dy",
                                      **common),
            "yaw": widgets.FloatSlider(value=0.0, min=-60, max=60, step=5, description="yaw (deg)", **common),
            "flipped": widgets.ToggleButton(value=False, description="flipped"),
        }
        self.show_3d = show_3d
        self._out, self._scene_out = widgets.Output(), widgets.Output()
        self.figure = None
        for c in self.controls.values():
            c.observe(lambda _change: self.update(), names="value")
        panels = [self._out] + ([self._scene_out] if show_3d else [])
        self.widget = widgets.VBox([widgets.HBox(list(self.controls.values())), widgets.HBox(panels)])
        self.last: dict = {}
        self.update()

    def render(self, dx: float, dy: float, yaw_deg: float, flipped: bool) -> dict:
        """The relit canonical image and its view at ``yaw_deg`` (the mirrored depth and albedo if ``flipped``)."""
        from csmlab.methods.unsup3d.renderer import reconstruct

        depth, albedo = (self.depth.flip(3), self.albedo.flip(3)) if flipped else (self.depth, self.albedo)
        direction = torch.nn.functional.normalize(torch.tensor([[dx, dy, 1.0]]), dim=1)
        light = {"ambient": torch.tensor([self.ambient]), "diffuse": torch.tensor([self.diffuse]),
                 "direction": direction}
        view = {"rotation": torch.tensor([[math.radians(yaw_deg), 0.0, 0.0]]), "trans": torch.zeros(1, 3)}
        with torch.no_grad():
            return reconstruct(depth, albedo, light, view)

    def surface_figure(self, yaw_deg: float, flipped: bool, colours: torch.Tensor):
        """Plotly: the canonical surface turned by ``yaw_deg``, vertex colours from the relit canonical image."""
        import plotly.graph_objects as go

        from csmlab.data.synthetic.faces import mesh_points
        from csmlab.data.synthetic.faces_geometry import apply_view
        from csmlab.methods.unsup3d.renderer import grid_faces

        depth = self.depth.flip(3) if flipped else self.depth
        pts = apply_view(mesh_points(depth), torch.tensor([[math.radians(yaw_deg), 0.0, 0.0]]),
                         torch.zeros(1, 3))[0].numpy()
        f = grid_faces(depth.shape[-1]).numpy()
        col = (np.clip(colours.reshape(3, -1).T.numpy(), 0, 1) * 255).astype(int)
        mesh = go.Mesh3d(x=pts[:, 0], y=pts[:, 1], z=pts[:, 2], i=f[:, 0], j=f[:, 1], k=f[:, 2],
                         vertexcolor=[f"rgb({a},{b},{g})" for a, b, g in col], name="reconstruction")
        fig = go.Figure(data=[mesh])
        fig.update_layout(height=320, width=360, margin={"l": 0, "r": 0, "t": 0, "b": 0}, scene=_SCENE)
        return fig

    def update(self) -> None:
        import matplotlib.pyplot as plt

        c = {k: w.value for k, w in self.controls.items()}
        r = self.last = self.render(c["dx"], c["dy"], c["yaw"], c["flipped"])
        fig = image_grid([r["canonical_image"][0].clamp(0, 1), r["image"][0].clamp(0, 1)],
                         titles=["relit (canonical)", f"seen at yaw {c['yaw']:.0f} deg"], size=2.4)
        show_in(self._out, fig)
        plt.close(fig)
        if self.show_3d:
            self.figure = self.surface_figure(c["yaw"], c["flipped"], r["canonical_image"][0])
            show_in(self._scene_out, self.figure)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
