"""Pictures and explorers for end-to-end To The Point (notebook 03).

3D panels are plotly figures whose own mimebundle is put in an ``ipywidgets.Output``'s
``outputs`` state (``FigureWidget`` needs ``anywidget``, which this environment does not
have); 2D pictures are PNG bytes in an ``ipywidgets.Image``. Both are widget state, so
they show the same in a browser and in a headless run.
"""

from __future__ import annotations

import io

import numpy as np
import torch

from .scene import mesh_trace


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _ndc_to_px(points: torch.Tensor, size: int) -> np.ndarray:
    p = points.detach().cpu().double().numpy()
    return np.stack([(p[..., 0] + 1) * size / 2, (1 - p[..., 1]) * size / 2], -1)


def draw_reconstruction(ax, image, points, visibility, silhouette=None, reprojected=None, title=None):
    """One image with its regressed points (coloured by visibility), the solved silhouette's outline
    (white) and the reprojected solved shape (red dots)."""
    img = image.detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy()
    size = img.shape[0]
    ax.imshow(img, extent=(0, size, size, 0))
    if silhouette is not None:
        ax.contour(np.arange(size) + 0.5, np.arange(size) + 0.5, silhouette.detach().cpu()[0].numpy(), [0.5],
                   colors="white", linewidths=1.0)
    uv = _ndc_to_px(points, size)
    ax.scatter(uv[:, 0], uv[:, 1], c=visibility.detach().cpu().numpy(), cmap="viridis", vmin=0, vmax=1, s=2)
    if reprojected is not None:
        rp = _ndc_to_px(reprojected, size)
        ax.scatter(rp[::6, 0], rp[::6, 1], c="red", s=1)
    ax.set(xlim=(0, size), ylim=(size, 0), xticks=[], yticks=[])
    if title:
        ax.set_title(title, fontsize=8)


def reconstruction_grid(images, pred: dict, n: int = 6, titles=None):
    """A row of :func:`draw_reconstruction` panels for the first ``n`` images of a prediction dict."""
    import matplotlib.pyplot as plt

    from csmlab.geometry import ortho_project

    n = min(n, images.shape[0])
    fig, axes = plt.subplots(1, n, figsize=(2.0 * n, 2.2), squeeze=False)
    rep = ortho_project(pred["verts"][:n], pred["scale"][:n], pred["rotation"][:n], pred["trans"][:n])
    for i, ax in enumerate(axes[0]):
        draw_reconstruction(ax, images[i], pred["points"][i], pred["visibility"][i], pred["silhouette"][i], rep[i],
                            None if titles is None else titles[i])
    fig.tight_layout()
    return fig


def vertex_error_figure(verts, faces, error, title: str | None = None, height: int = 380):
    """Plotly: the mesh coloured by a per-vertex error (template units)."""
    from .scene import scene_figure

    trace = mesh_trace(verts, faces, intensity=torch.as_tensor(error), colorscale="Inferno", name="error")
    trace.update(showscale=True, colorbar=dict(title="error", thickness=12))
    return scene_figure([trace], title=title, height=height)


class MeshPanel:
    """An ``ipywidgets.Output`` showing one plotly mesh; :meth:`set_verts` redraws it from the controls."""

    def __init__(self, faces, height: int = 360, title: str | None = None):
        import ipywidgets as W

        self.faces, self.height, self.title = faces, height, title
        self.widget = W.Output()

    def set_verts(self, verts) -> None:
        import json

        from .scene import scene_figure

        fig = scene_figure([mesh_trace(verts.detach().cpu(), self.faces, color="lightsteelblue")], title=self.title,
                           height=self.height)
        # plotly's own mimebundle (what its "plotly_mimetype" renderer sends), built here so that it does
        # not depend on an IPython shell being active when a control changes
        self.widget.outputs = ({"output_type": "display_data", "metadata": {},
                                "data": {"application/vnd.plotly.v1+json": {**json.loads(fig.to_json()), "config": {}},
                                         "text/plain": f"<plotly mesh: {self.title}>"}},)


def basis_modes_widget(template, faces, basis, limit: float = 3.0):
    """A slider per basis mode (coefficient in [-limit, limit]) and the mesh T + sum_k c_k B_k, updated in place."""
    import ipywidgets as W

    K = basis.shape[0]
    panel = MeshPanel(faces, title="T + B c")
    sliders = [W.FloatSlider(value=0.0, min=-limit, max=limit, step=limit / 50, description=f"c{k}",
                             continuous_update=False) for k in range(K)]

    def update(_=None):
        c = torch.tensor([s.value for s in sliders], dtype=basis.dtype)
        panel.set_verts(template + torch.einsum("k,knc->nc", c, basis))

    for s in sliders:
        s.observe(update, "value")
    update()
    return W.HBox([W.VBox(sliders), panel.widget])


class TTPExplorer:
    """Pick a test image: its regressed correspondences, the solved camera and the deformed mesh.

    Moving the basis coefficients or the ARAP weight shows the energy the solver trades
    off: the visibility-weighted reprojection error of (u, v) against T + B c under the
    solved camera, and weight x ARAP(T + B c). ``select(index)`` does the same from code.
    """

    def __init__(self, model, images: torch.Tensor, solver, limit: float = 3.0):
        import ipywidgets as W

        self.model, self.images, self.solver = model, images, solver
        self.template, self.faces = model.template, model.faces
        K = model.basis.shape[0]
        self.index = W.IntSlider(value=0, min=0, max=images.shape[0] - 1, description="image",
                                 continuous_update=False)
        self.coeffs = [W.FloatSlider(value=0.0, min=-limit, max=limit, step=limit / 50, description=f"c{k}",
                                     continuous_update=False) for k in range(K)]
        self.weight = W.FloatLogSlider(value=3.0, base=10, min=-2, max=2, description="ARAP wt",
                                       continuous_update=False)
        self.picture = W.Image(format="png", width=300)
        self.energy = W.HTML()
        self.mesh = MeshPanel(self.faces, height=320, title="solved shape (canonical frame)")
        self.index.observe(lambda ch: self.select(ch["new"]), "value")
        for s in self.coeffs:
            s.observe(lambda _: self._update_shape(), "value")
        self.weight.observe(lambda _: self._update_energy(), "value")
        self.widget = W.VBox([W.HBox([self.index, self.weight]),
                              W.HBox([self.picture, self.mesh.widget, W.VBox(self.coeffs + [self.energy])])])
        self.select(0)

    @torch.no_grad()
    def select(self, index: int) -> None:
        self.out = self.model(self.images[index:index + 1], self.solver, "none")
        self._quiet = True
        for s, c in zip(self.coeffs, self.out["coeffs"][0].tolist()):
            s.value = float(max(s.min, min(s.max, c)))
        self._quiet = False
        self._update_shape()

    def verts(self) -> torch.Tensor:
        c = torch.tensor([s.value for s in self.coeffs], dtype=self.template.dtype)
        return self.template + torch.einsum("k,knc->nc", c, self.model.basis.detach())

    def _update_shape(self) -> None:
        if getattr(self, "_quiet", False):
            return
        import matplotlib.pyplot as plt

        from csmlab.geometry import ortho_project

        V = self.verts()
        self.mesh.set_verts(V)
        o = self.out
        rep = ortho_project(V[None], o["scale"], o["rotation"], o["trans"])[0]
        fig, ax = plt.subplots(figsize=(3, 3))
        draw_reconstruction(ax, self.images[self.index.value], o["points"][0], o["visibility"][0], None, rep,
                            "regressed (colour: visibility), reprojected (red)")
        self.picture.value = _png(fig)
        self._update_energy()

    @torch.no_grad()
    def _update_energy(self) -> None:
        from csmlab.geometry import arap_energy, ortho_project

        V = self.verts()
        o = self.out
        rep = ortho_project(V[None], o["scale"], o["rotation"], o["trans"])[0]
        vis = o["visibility"][0]
        e_rep = float((vis * ((rep - o["points"][0]) ** 2).sum(-1)).sum() / vis.sum())
        e_arap = float(arap_energy(V[None], self.template, self.faces)[0])
        self.energy.value = (f"<pre>reprojection {e_rep:.5f}\nARAP         {e_arap:.6f}\n"
                             f"total        {e_rep + self.weight.value * e_arap:.5f}</pre>")
