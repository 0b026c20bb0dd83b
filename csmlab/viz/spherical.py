"""Pictures for Spherical Maps (notebook 06): sphere maps as colours, the sphere in plotly, a match explorer.

Everything takes plain tensors on a token grid: sphere points [N,h*w,3] (0 off the mask), token
masks [N,h,w], images [N,3,H,W]. Nothing here imports a method package.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .images import show_image
from .output import show_in
from .scene import points_trace, scene_figure


def sphere_colours(sph: torch.Tensor) -> torch.Tensor:
    """RGB in [0,1] of unit vectors: (p + 1) / 2, so opposite points get complementary colours."""
    return ((sph + 1) / 2).clamp(0, 1)


def sphere_map_image(sph: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """[h,w,4] RGBA image of one sphere map (transparent off the mask)."""
    h, w = mask.shape
    rgb = sphere_colours(sph).reshape(h, w, 3).numpy()
    return np.concatenate([rgb, mask.reshape(h, w, 1).float().numpy()], -1)


def show_sphere_maps(images, spheres: dict, masks, n: int = 6, title: str | None = None):
    """A grid: one row of images, then one row per named sphere map drawn as colours over the image."""
    import matplotlib.pyplot as plt

    n = min(n, images.shape[0])
    rows = 1 + len(spheres)
    fig, axes = plt.subplots(rows, n, figsize=(1.7 * n, 1.8 * rows), squeeze=False)
    H, W = images.shape[-2:]
    for j in range(n):
        show_image(axes[0, j], images[j], title=f"image {j}" if j else "image")
        for r, (name, sph) in enumerate(spheres.items(), start=1):
            show_image(axes[r, j], images[j] * 0.35, title=name if j == 0 else None)
            axes[r, j].imshow(sphere_map_image(sph[j], masks[j]), extent=(0, W, H, 0), interpolation="nearest")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _unit_sphere_trace(opacity: float = 0.08):
    import plotly.graph_objects as go

    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 30), np.linspace(0, np.pi, 16))
    return go.Surface(x=np.cos(u) * np.sin(v), y=np.cos(v), z=np.sin(u) * np.sin(v), opacity=opacity,
                      showscale=False, colorscale=[[0, "lightgrey"], [1, "lightgrey"]], hoverinfo="skip")


def sphere_scatter_figure(points: torch.Tensor, colours, labels=None, highlight: dict | None = None,
                          title: str | None = None, height: int = 380):
    """Plotly: the unit sphere with [M,3] points coloured [M,3]; ``highlight`` {name: ([3], css colour)}."""
    traces = [_unit_sphere_trace(), points_trace(points, colours, size=2.5, name="pixels", text=None)]
    if labels is not None:
        traces[-1].hovertext = list(labels)
    for name, (p, colour) in (highlight or {}).items():
        t = points_trace(p.reshape(1, 3), colour, size=9, name=name)
        traces.append(t)
    return scene_figure(traces, title=title, height=height)


class SphereMatchExplorer:
    """Pick a token of image A (sliders); see its match in image B under each similarity, and on the sphere.

    ``methods`` is {name: [(weight, [N,h*w,C] embeddings), ...]} as in
    ``csmlab.methods.spherical.evaluate.score_pairs``; the match is the foreground token of B
    with the highest similarity. The plotly panel shows B's sphere points and A's point.
    """

    COLOURS = ("tab:orange", "tab:cyan", "tab:red", "tab:green")

    def __init__(self, images, masks, methods: dict, sphere, pair=(0, 1), token=None, part_colours=None):
        import ipywidgets as widgets

        self.images, self.masks, self.methods, self.sphere = images, masks, methods, sphere
        self.part_colours = part_colours
        N, h, w = masks.shape
        if sphere.shape != (N, h * w, 3):
            raise ValueError(f"sphere must be [N={N}, {h * w}, 3] like masks {list(masks.shape)}, got "
                             f"{list(sphere.shape)}")
        if token is None:
            ys, xs = torch.nonzero(masks[pair[0]], as_tuple=True)
            token = (int(xs.float().mean()), int(ys.float().mean())) if len(xs) else (w // 2, h // 2)
        common = dict(continuous_update=False, style={"description_width": "60px"})
        self.controls = {
            "a": widgets.BoundedIntText(value=pair[0], min=0, max=N - 1, description="image A", **common),
            "b": widgets.BoundedIntText(value=pair[1], min=0, max=N - 1, description="image B", **common),
            "col": widgets.IntSlider(value=token[0], min=0, max=w - 1, description="column", **common),
            "row": widgets.IntSlider(value=token[1], min=0, max=h - 1, description="row", **common),
        }
        self._images_out, self._scene_out = widgets.Output(), widgets.Output()
        for c in self.controls.values():
            c.observe(lambda _change: self.update(), names="value")
        self.widget = widgets.VBox([widgets.HBox(list(self.controls.values())[:2]),
                                    widgets.HBox(list(self.controls.values())[2:]),
                                    widgets.HBox([self._images_out, self._scene_out])])
        self.result: dict = {}
        self.update()

    def select(self, col: int, row: int, a: int, b: int) -> dict:
        """{method: (column, row) of the best foreground token of B} for token (col, row) of A."""
        N, h, w = self.masks.shape
        if not (0 <= col < w and 0 <= row < h):
            raise ValueError(f"token (column, row) must lie in the {w}x{h} grid, got ({col}, {row})")
        src = row * w + col
        fg = torch.nonzero(self.masks[b].flatten())[:, 0]
        out = {}
        for name, parts in self.methods.items():
            sim = sum(wt * F.normalize(e[b, fg].double(), dim=-1) @ F.normalize(e[a, src].double(), dim=0)
                      for wt, e in parts)
            best = int(fg[sim.argmax()])
            out[name] = (best % w, best // w)
        return out

    def update(self) -> None:
        import matplotlib.pyplot as plt

        a, b, col, row = (self.controls[k].value for k in ("a", "b", "col", "row"))
        self.result = matches = self.select(col, row, a, b)
        N, h, w = self.masks.shape
        H, W = self.images.shape[-2:]
        sy, sx = H / h, W / w
        fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(6.0, 3.1))
        show_image(ax_a, self.images[a], title=f"A = {a}: token ({col}, {row})")
        ax_a.scatter([(col + 0.5) * sx], [(row + 0.5) * sy], s=90, marker="+", c="red", linewidths=2)
        show_image(ax_b, self.images[b], title=f"B = {b}: best match")
        for (name, (c, r)), colour in zip(matches.items(), self.COLOURS):
            ax_b.scatter([(c + 0.5) * sx], [(r + 0.5) * sy], s=70, marker="o", facecolors="none",
                         edgecolors=colour, linewidths=2, label=name)
        ax_b.legend(loc="lower center", fontsize=7, bbox_to_anchor=(0.5, -0.32), ncol=len(matches))
        for ax in (ax_a, ax_b):
            ax.set_xticks([])
            ax.set_yticks([])
        fig.tight_layout()
        show_in(self._images_out, fig)
        fg_b = self.masks[b].flatten()
        pts = self.sphere[b][fg_b]
        colours = self.part_colours[b][fg_b] if self.part_colours is not None else sphere_colours(pts)
        show_in(self._scene_out, sphere_scatter_figure(
            pts, colours, highlight={"A's point": (self.sphere[a, row * w + col], "red")},
            title="B's pixels on the sphere, A's token in red", height=300))

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
