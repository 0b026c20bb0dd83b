"""Pictures of the synthetic categories: ground-truth grids, the template in 3D, a pose explorer.

- :func:`ground_truth_grid` -- samples with their ground truth, one column per sample:
  image with keypoints, mask, surface coordinates as colours, depth (birds), or
  image, canonical albedo, canonical depth and view depth (faces).
- :func:`template_figure` -- plotly: the bird template coloured by part, its
  keypoints and joints, and a slider that shows one appearance and each
  deformation mode at +-2 std.
- :func:`pose_explorer` -- ipywidgets sliders for the deformation coefficients,
  the joint angles and the viewpoint, re-rendering the bird with its keypoints.
- :func:`prior_histograms` -- histograms of the viewpoint priors (azimuth,
  elevation) and of the articulation priors (every joint angle), the priors the
  benchmark rungs draw from.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .images import overlay_keypoints, overlay_mask, overlay_scalar_map, show_image
from .output import show_in
from .scene import mesh_trace, points_trace, scene_figure

PART_COLOURS = np.array([[0.55, 0.6, 0.7], [0.95, 0.6, 0.2], [0.3, 0.7, 0.3], [0.85, 0.25, 0.3], [0.25, 0.45, 0.9]])


def surface_colours(surface_xyz: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[3,H,W] template coordinates -> RGB in [0,1] (x, y, z over the template's box), black off the mask."""
    lo = torch.tensor([-1.0, -0.45, -0.9])[:, None, None]
    hi = torch.tensor([1.0, 0.6, 0.9])[:, None, None]
    return ((surface_xyz - lo) / (hi - lo)).clamp(0, 1) * (mask > 0)


def ground_truth_grid(dataset, indices=range(6), size: float = 2.2):
    """A matplotlib figure: one column per sample, one row per ground-truth field."""
    import matplotlib.pyplot as plt

    indices = list(indices)
    b = dataset.batch(indices)
    birds = dataset.name == "birds"
    rows = (["image + keypoints", "mask", "surface_xyz", "depth"] if birds
            else ["image", "albedo (canonical)", "canonical depth", "view depth"])
    fig, axes = plt.subplots(len(rows), len(indices), figsize=(size * len(indices), size * len(rows)),
                             squeeze=False)
    for c, i in enumerate(indices):
        ax = axes[:, c]
        show_image(ax[0], b["image"][c], title=f"#{i}")
        if birds:
            overlay_keypoints(ax[0], b["keypoints"][c], size=12)
            show_image(ax[1], b["image"][c])
            overlay_mask(ax[1], b["mask"][c], alpha=0.5)
            show_image(ax[2], surface_colours(b["surface_xyz"][c], b["mask"][c]))
            show_image(ax[3], torch.ones(3, *b["mask"].shape[-2:]))
            overlay_scalar_map(ax[3], b["depth"][c], mask=b["mask"][c], cmap="magma", colorbar=False)
        else:
            show_image(ax[1], b["albedo"][c])
            for r, (key, mask) in ((2, ("canonical_depth", "canonical_mask")), (3, ("depth", "mask"))):
                show_image(ax[r], torch.ones(3, *b["mask"].shape[-2:]))
                overlay_scalar_map(ax[r], b[key][c], mask=b[mask][c], cmap="magma", colorbar=False)
        for r, a in enumerate(ax):
            a.set_xticks([])
            a.set_yticks([])
            if c == 0:
                a.set_ylabel(rows[r], fontsize=8)
    fig.tight_layout()
    return fig


def template_figure(category, height: int = 460, seed: int = 0):
    """Plotly figure: the template by part, keypoints, joints; a slider shows an appearance and the basis modes."""
    from csmlab.data.synthetic import pose_vertices
    from csmlab.data.synthetic.birds_scenes import sample_scenes
    from csmlab.data.synthetic.birds_texture import vertex_albedo

    T, F = category.template.verts, category.template.faces
    part_colours = PART_COLOURS[category.vertex_parts.numpy()]
    traces = [mesh_trace(T, F, vertex_colors=part_colours, name="template (parts)"),
              points_trace(category.keypoints_template, colors="black", size=4, name="keypoints",
                           text=list(category.keypoint_names)),
              points_trace(category.joints[1:], colors="red", size=6, name="joints",
                           text=list(category.part_names[1:]))]
    app = {k[4:]: v for k, v in sample_scenes(category, 1, seed).items() if k.startswith("app_")}
    traces.append(mesh_trace(T, F, vertex_colors=vertex_albedo(category, app)[0], name="appearance"))
    traces[-1].visible = False
    M = category.num_deform
    labels = ["parts", f"an appearance (seed {seed})"]
    for m in range(M):
        for sign in (-2.0, 2.0):
            c = torch.zeros(1, M)
            c[0, m] = sign * category.deform_prior_std[m]
            V = pose_vertices(category, c, torch.zeros(1, category.num_joints))[0]
            shift = (V - T).norm(dim=-1)
            traces.append(mesh_trace(V, F, intensity=shift, colorscale="Viridis", name=f"{category.deform_names[m]}"))
            traces[-1].visible = False
            labels.append(f"{category.deform_names[m]} {sign:+.0f} std")
    steps = []
    for k, label in enumerate(labels):
        visible = [False] * len(traces)
        visible[1] = visible[2] = k == 0
        visible[0 if k == 0 else 2 + k] = True   # traces: parts, keypoints, joints, appearance, modes...
        steps.append(dict(method="update", args=[{"visible": visible}], label=label))
    fig = scene_figure(traces, title="synthetic bird template: parts, keypoints, joints, basis", height=height)
    fig.update_layout(sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix="showing: "), pad=dict(t=10))])
    return fig


class PoseExplorer:
    """Sliders for deformation, articulation and view; the bird is re-rendered on each change.

    Attributes: ``sliders`` (name -> FloatSlider), ``image`` (last render, [3,H,W]),
    ``keypoints`` ([K,3]), ``widget`` (the ipywidgets box; displaying the explorer shows it).
    """

    def __init__(self, category, resolution: int = 128, seed: int = 0):
        import ipywidgets as widgets

        from csmlab.data.synthetic.birds_scenes import sample_scenes

        self.category, self.resolution = category, int(resolution)
        self.scene = {k: v[:1].clone() for k, v in sample_scenes(category, 1, seed).items()}
        style = dict(continuous_update=False, style={"description_width": "110px"},
                     layout=widgets.Layout(width="330px"))
        self.sliders = {}
        for m, name in enumerate(category.deform_names):
            std = float(category.deform_prior_std[m])
            self.sliders[name] = widgets.FloatSlider(value=0.0, min=-2 * std, max=2 * std, step=std / 10,
                                                     description=name, readout_format=".2f", **style)
        for j, name in enumerate(category.joint_names):
            lo, hi = (math.degrees(float(v[j])) for v in (category.articulation_low, category.articulation_high))
            self.sliders[name] = widgets.FloatSlider(value=0.0, min=lo, max=hi, step=1.0, description=name + "°",
                                                     readout_format=".0f", **style)
        self.sliders["azimuth"] = widgets.FloatSlider(value=60.0, min=-180, max=180, step=5, description="azimuth°",
                                                      readout_format=".0f", **style)
        self.sliders["elevation"] = widgets.FloatSlider(value=15.0, min=-30, max=30, step=5,
                                                        description="elevation°", readout_format=".0f", **style)
        for s in self.sliders.values():
            s.observe(lambda _change: self.update(), names="value")
        self._out = widgets.Output()
        names = list(self.sliders)
        M = category.num_deform
        columns = [widgets.VBox([self.sliders[n] for n in names[:M]] + [self.sliders[n] for n in names[-2:]]),
                   widgets.VBox([self.sliders[n] for n in names[M:-2]])]
        self.widget = widgets.HBox(columns + [self._out])
        self.image = self.keypoints = None
        self.update()

    def set(self, **values) -> None:
        """Move sliders from code, e.g. ``set(girth=0.1, head_yaw=30)`` (degrees for angles)."""
        for k, v in values.items():
            if k not in self.sliders:
                raise ValueError(f"unknown slider {k!r}; sliders: {sorted(self.sliders)}")
            self.sliders[k].value = v

    def update(self) -> None:
        import matplotlib.pyplot as plt

        from csmlab.data.synthetic.birds_render import render_scenes
        from csmlab.geometry import azel_to_matrix, matrix_to_quaternion

        cat = self.category
        self.scene["deform"] = torch.tensor([[self.sliders[n].value for n in cat.deform_names]])
        self.scene["articulation"] = torch.tensor([[math.radians(self.sliders[n].value) for n in cat.joint_names]])
        az, el = (math.radians(self.sliders[k].value) for k in ("azimuth", "elevation"))
        self.scene["quat"] = matrix_to_quaternion(azel_to_matrix(torch.tensor([az]), torch.tensor([el])))
        self.scene["trans"] = torch.zeros(1, 2)
        self.scene["scale"] = torch.tensor([0.8])
        out = render_scenes(cat, self.scene, self.resolution)
        self.image, self.keypoints = out["image"][0], out["keypoints"][0]
        fig, ax = plt.subplots(figsize=(3.6, 3.6))
        show_image(ax, self.image)
        overlay_keypoints(ax, self.keypoints, names=list(cat.keypoint_names), size=14, fontsize=5)
        ax.set_xticks([])
        ax.set_yticks([])
        show_in(self._out, fig)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def pose_explorer(category, resolution: int = 128, seed: int = 0) -> PoseExplorer:
    """Build a :class:`PoseExplorer` for the birds; put it last in a cell to show it."""
    if getattr(category, "name", None) != "birds":
        raise ValueError(f"category must be the birds index (get_category('birds')), got {category!r:.60}")
    if not isinstance(resolution, int) or resolution < 16:
        raise ValueError(f"resolution must be an int >= 16, got {resolution!r}")
    return PoseExplorer(category, resolution, seed)


PRIOR_COLOURS = {"full": "tab:gray", "cub": "tab:orange", "rest": "tab:blue"}


def prior_histograms(category, n: int = 20_000, seed: int = 0, size: float = 2.3):
    """A matplotlib figure: azimuth and elevation under each ``views`` prior (first row) and every
    joint angle under each ``articulation`` prior (next rows), ``n`` draws each, in degrees.

    The draws come from the samplers the datasets use (:mod:`csmlab.data.synthetic.birds_priors`);
    the ``"rest"`` prior is a spike at 0 (drawn as a line).
    """
    import matplotlib.pyplot as plt

    from csmlab.data.synthetic.birds_priors import ARTICULATIONS, VIEWS, sample_articulation, sample_views

    if getattr(category, "name", None) != "birds":
        raise ValueError(f"category must be the birds index (get_category('birds')), got {category!r:.60}")
    if not isinstance(n, int) or n < 10:
        raise ValueError(f"n must be an int >= 10 (draws per prior), got {n!r}")
    views = {v: sample_views(torch.Generator().manual_seed(seed), n, v).rad2deg().numpy() for v in VIEWS}
    arts = {a: sample_articulation(category, torch.Generator().manual_seed(seed), n, a).rad2deg().numpy()
            for a in ARTICULATIONS}
    J = category.num_joints
    ncols = 4
    nrows = 1 + -(-J // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols * 1.2, size * nrows), squeeze=False)
    for col, (title, k, lim) in enumerate((("azimuth", 0, 180), ("elevation", 1, 30))):
        ax = axes[0, col]
        for v in VIEWS:
            ax.hist(views[v][:, k], bins=72 if k == 0 else 30, range=(-lim, lim), density=True, histtype="step",
                    color=PRIOR_COLOURS[v], label=f'views="{v}"')
        ax.set_title(f"{title} (deg)", fontsize=9)
        ax.legend(fontsize=7)
    for ax in axes[0, 2:]:
        ax.axis("off")
    lo, hi = category.articulation_low.rad2deg(), category.articulation_high.rad2deg()
    for j, name in enumerate(category.joint_names):
        ax = axes[1 + j // ncols, j % ncols]
        for a in ARTICULATIONS:
            if a == "rest":
                ax.axvline(0.0, color=PRIOR_COLOURS[a], label=f'articulation="{a}"')
            else:
                ax.hist(arts[a][:, j], bins=40, range=(float(lo[j]), float(hi[j])), density=True,
                        histtype="step", color=PRIOR_COLOURS[a], label=f'articulation="{a}"')
        ax.set_title(f"{name} (deg)", fontsize=9)
        if j == 0:
            ax.legend(fontsize=7)
    for k in range(J, (nrows - 1) * ncols):
        axes[1 + k // ncols, k % ncols].axis("off")
    for ax in axes.flat:
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    fig.suptitle("priors of the synthetic birds (benchmark rungs: A = cub views + rest, B = cub + cub, "
                 "C = full + full)", fontsize=10)
    fig.tight_layout()
    return fig
