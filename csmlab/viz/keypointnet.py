"""Pictures for notebook 07 (KeypointNet): the pipeline diagram, PCA colours of embeddings, the explorer.

Both panels of the explorer live in ``ipywidgets.Output`` widgets whose ``outputs`` state is
set by :func:`csmlab.viz.output.show_in`: the 3D panel is the plotly figure's own mimebundle
(``FigureWidget`` would need the ``anywidget`` package, which the environment does not have),
the 2D panel a matplotlib PNG.
"""

from __future__ import annotations

import numpy as np
import torch

from .images import show_image
from .output import show_in


def pipeline_diagram():
    """Fig. 2 of the paper as boxes and arrows: (a) shape, (b) viewpoint, (c) 3D embeddings, (d) projection."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    fig, ax = plt.subplots(figsize=(9.5, 3.2))
    boxes = {"image": (0.02, 0.40, "RGB image\n+ mask"), "a": (0.26, 0.68, "(a) 3D shape\n(template / oracle)"),
             "b": (0.26, 0.10, "(b) viewpoint CNN\n24 az + 12 el bins"),
             "c": (0.52, 0.68, "(c) dense embeddings\nPointNet / DGCNN\n(contrastive, 3D keypoints)"),
             "d": (0.78, 0.40, "(d) projection\nz-buffer visibility\n+ silhouette refinement")}
    w, h = 0.2, 0.24
    for x, y, text in boxes.values():
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.01", fc="#eef3fb", ec="#35608f"))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=8.5)

    def arrow(a, b):
        (xa, ya, _), (xb, yb, _) = boxes[a], boxes[b]
        ax.annotate("", xy=(xb, yb + h / 2), xytext=(xa + w, ya + h / 2),
                    arrowprops=dict(arrowstyle="->", color="#35608f", lw=1.5))

    for a, b in (("image", "a"), ("image", "b"), ("a", "c"), ("c", "d"), ("b", "d")):
        arrow(a, b)
    ax.text(0.52, 0.2, "KeypointNet annotations\n(sparse 3D keypoints)", ha="center", fontsize=8, style="italic")
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    return fig


def pca_colours(embeddings: list) -> list:
    """RGB in [0,1] for lists of [N,D] embeddings, from one shared 3-component PCA (comparable across clouds)."""
    flat = torch.cat([torch.as_tensor(e).reshape(-1, e.shape[-1]) for e in embeddings]).double()
    mean = flat.mean(0)
    _, _, v = torch.linalg.svd(flat - mean, full_matrices=False)
    proj = (flat - mean) @ v[:3].T
    lo, hi = proj.amin(0), proj.amax(0)
    rgb = ((proj - lo) / (hi - lo).clamp_min(1e-12)).float()
    return list(rgb.split([e.reshape(-1, e.shape[-1]).shape[0] for e in embeddings]))


def clouds_figure(clouds: list, colours: list, titles=None, height: int = 340, size: float = 2.0):
    """Several coloured point clouds side by side (plotly subplots with equal axes, +y up)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    n = len(clouds)
    fig = make_subplots(rows=1, cols=n, specs=[[{"type": "scene"}] * n], subplot_titles=titles)
    for i, (p, c) in enumerate(zip(clouds, colours)):
        p, c = np.asarray(p), np.asarray(c)
        fig.add_trace(go.Scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers",
                                   marker=dict(size=size, color=[f"rgb({r*255:.0f},{g*255:.0f},{b*255:.0f})"
                                                                 for r, g, b in c])), row=1, col=i + 1)
    scene = dict(aspectmode="data", camera=dict(up=dict(x=0, y=1, z=0), eye=dict(x=1.4, y=0.8, z=1.4)),
                 xaxis_visible=False, yaxis_visible=False, zaxis_visible=False)
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=30, b=0), showlegend=False,
                      **{f"scene{'' if i == 0 else i + 1}": scene for i in range(n)})
    return fig


def plot_confusion(true_bins, pred_bins, n_bins: int = 24, ax=None, title: str | None = None):
    """Row-normalised confusion matrix of azimuth bins (true rows, predicted columns)."""
    import matplotlib.pyplot as plt

    t, p = np.asarray(true_bins), np.asarray(pred_bins)
    m = np.zeros((n_bins, n_bins))
    np.add.at(m, (t, p), 1)
    m = m / np.maximum(m.sum(1, keepdims=True), 1)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3.6))
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    ax.set_xlabel("predicted azimuth bin")
    ax.set_ylabel("true azimuth bin")
    ax.set_title(title or "azimuth confusion")
    plt.colorbar(im, ax=ax, fraction=0.046)
    return ax


class KeypointExplorer:
    """Choose a keypoint name and an image; see the embedding similarity on the cloud and on the image.

    ``similarity = exp(-||h(x) - mu_k||^2 / tau)`` (tau: the median squared distance), on
    the cloud (plotly FigureWidget, coloured in place) and splatted onto the image through
    the camera of the chosen refinement step (the step slider replays the silhouette fit).
    ``project(image, step)`` must return ``(pixel_index [H,W], visible [N], keypoint_xy or None,
    silhouette [H,W])`` for the shape's points (see notebook 07).
    ``state`` records what the panels show (for tests and headless runs).
    """

    def __init__(self, images, keypoints, points, embedding, means, names, project, n_steps: int, kp_name=None):
        import ipywidgets as widgets

        self.images, self.keypoints, self.points, self.embedding = images, keypoints, points, embedding
        self.means, self.names, self.project = means, list(names), project
        common = dict(continuous_update=False, style={"description_width": "80px"})
        self.controls = {
            "keypoint": widgets.Dropdown(options=self.names, value=kp_name or self.names[-3], description="keypoint"),
            "image": widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="image", **common),
            "step": widgets.IntSlider(value=n_steps, min=0, max=n_steps, description="refine step", **common),
        }
        self._scene_out, self._image_out = widgets.Output(), widgets.Output()
        for c in self.controls.values():
            c.observe(lambda _change: self.update(), names="value")
        self.widget = widgets.VBox([widgets.HBox(list(self.controls.values())),
                                    widgets.HBox([self._scene_out, self._image_out])])
        self.state: dict = {}
        self.update()

    def similarity(self, b: int, k: int) -> torch.Tensor:
        d = (self.embedding[b] - self.means[k]).pow(2).sum(-1)
        return torch.exp(-d / d.median().clamp_min(1e-12))

    def update(self) -> None:
        import matplotlib.pyplot as plt

        b, step = self.controls["image"].value, self.controls["step"].value
        k = self.names.index(self.controls["keypoint"].value)
        sim = self.similarity(b, k)
        pix, visible, kp_xy, sil = self.project(b, step, k)
        show_in(self._scene_out, self.scene_figure(b, sim))
        heat = torch.where(pix >= 0, sim[pix.clamp_min(0)], torch.full(pix.shape, float("nan")))
        fig, ax = plt.subplots(figsize=(3.4, 3.4))
        show_image(ax, self.images[b], title=f"{self.names[k]}, step {step}")
        H, W = pix.shape
        ax.imshow(heat.numpy(), cmap="inferno", alpha=0.6, vmin=0, vmax=1, extent=(0, W, H, 0),
                  interpolation="nearest")
        ax.contour(np.asarray(sil), levels=[0.5], colors="cyan", linewidths=0.8, extent=(0, W, 0, H), origin="upper")
        gt = self.keypoints[b, k]
        ax.scatter([gt[0]], [gt[1]], marker="o", s=50, facecolors="none", edgecolors="lime",
                   label="truth" + ("" if gt[2] > 0.5 else " (hidden)"))
        if kp_xy is not None:
            ax.scatter([kp_xy[0]], [kp_xy[1]], marker="+", s=80, c="red", label="prediction")
        ax.legend(loc="lower right", fontsize=6)
        ax.set_xticks([])
        ax.set_yticks([])
        self.state = {"image": b, "keypoint": k, "step": step, "visible": int(visible.sum()),
                      "heat_pixels": int(torch.isfinite(heat).sum())}
        show_in(self._image_out, fig)

    def scene_figure(self, b: int, sim: torch.Tensor):
        """The cloud of image ``b`` coloured by the similarity ``sim`` [N] (plotly)."""
        import plotly.graph_objects as go

        p = np.asarray(self.points[b])
        fig = go.Figure(go.Scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers",
                                     marker=dict(size=2.5, color=sim.numpy(), cmin=0, cmax=1, colorscale="Inferno")))
        fig.update_layout(height=320, width=380, margin=dict(l=0, r=0, t=0, b=0),
                          scene=dict(aspectmode="data", camera=dict(up=dict(x=0, y=1, z=0))))
        return fig

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
