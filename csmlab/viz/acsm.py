"""Pictures of ACSM: parts over images, joint angles, and the articulation explorer (joint sliders).

:class:`ArticulationExplorer` follows :mod:`csmlab.viz.output`'s pattern: every picture
lives in an ``Output`` panel of its own widget. Sliders set the birds' seven joint angles;
the template is posed with the model's rig, rendered under the chosen image's camera, and
the cycle error of that image's predicted UV map is recomputed through the posed template.
"""

from __future__ import annotations

import math

import torch

from .images import show_image
from .output import show_in
from .scene import mesh_trace, scene_figure

PART_COLOURS = torch.tensor([[0.75, 0.75, 0.75], [0.9, 0.3, 0.2], [0.2, 0.6, 0.9], [0.3, 0.8, 0.3],
                             [0.95, 0.75, 0.2]])


def part_label_image(model, uv: torch.Tensor) -> torch.Tensor:
    """[B,H,W] long: the rig part of each pixel's predicted template point (UV [B,2,H,W])."""
    onehot = model.rig.one_hot()                                          # [V,P]
    hu, wu = model.table_size
    table = torch.sparse.mm(model.texel_weights, onehot).reshape(hu, wu, -1).permute(2, 0, 1)
    from csmlab.methods.acsm.network import lookup_tables

    B = uv.shape[0]
    return lookup_tables(table[None].expand(B, -1, -1, -1).contiguous(), uv.permute(0, 2, 3, 1)).argmax(-1)


def show_parts(images, labels, masks, n: int = 6, title: str | None = None):
    """A row of images with each foreground pixel tinted by its predicted part (body grey, head red, ...)."""
    import matplotlib.pyplot as plt

    n = min(n, images.shape[0])
    fig, axes = plt.subplots(1, n, figsize=(1.9 * n, 2.1))
    for i, ax in enumerate(list(axes) if n > 1 else [axes]):
        tint = PART_COLOURS[labels[i].clamp_max(len(PART_COLOURS) - 1)].permute(2, 0, 1)
        fg = masks[i] > 0.5
        show_image(ax, torch.where(fg, 0.45 * images[i] + 0.55 * tint, images[i]))
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_joint_angles(pred_deg, true_deg, observable, joint_names, title: str | None = None):
    """Scatter of predicted vs true angle (degrees) per joint, observable pairs only."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(joint_names), figsize=(2.0 * len(joint_names), 2.3), sharex=False)
    for j, ax in enumerate(axes):
        use = observable[:, j] & torch.isfinite(pred_deg[:, j])
        ax.scatter(true_deg[use, j], pred_deg[use, j], s=4, alpha=0.5)
        lo, hi = float(true_deg[:, j].min()), float(true_deg[:, j].max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_title(joint_names[j].replace("_", " "), fontsize=8)
        ax.tick_params(labelsize=6)
        if not use.any():
            ax.text(0.5, 0.5, "not predicted", transform=ax.transAxes, ha="center", fontsize=7)
    axes[0].set_ylabel("predicted (deg)")
    fig.supxlabel("true (deg)", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


class ArticulationExplorer:
    """Joint-angle sliders pose the template; silhouette and cycle error of one image update live, beside plotly.

    ``model`` is an ``ACSMNet``; ``image`` [3,H,W], ``mask`` [1,H,W], ``uv`` [2,H,W] (the model's
    prediction for it) and ``camera`` (``scale``, ``quat`` [4], ``trans`` [2]). ``pose_fn(angles [7])``
    returns the part rotations [P,3,3] for the rig (``joints.joint_angles_to_rotations``).
    """

    def __init__(self, model, image, mask, uv, camera, joint_names, pose_fn, start_deg=None, ranges_deg=None):
        import ipywidgets as widgets

        self.model, self.image, self.mask, self.uv, self.camera = model, image, mask, uv, camera
        self.pose_fn, self.joint_names = pose_fn, list(joint_names)
        start = [0.0] * 7 if start_deg is None else [float(a) for a in start_deg]
        ranges = ranges_deg or [(-100, 100)] * 7
        common = dict(continuous_update=False, style={"description_width": "110px"}, step=5.0)
        self.sliders = [widgets.FloatSlider(value=max(lo, min(hi, a)), min=lo, max=hi, description=name, **common)
                        for name, a, (lo, hi) in zip(self.joint_names, start, ranges)]
        for s in self.sliders:
            s.observe(lambda _c: self.update(), names="value")
        self._image_out, self._scene_out = widgets.Output(), widgets.Output()
        self.widget = widgets.VBox([widgets.HBox([widgets.VBox(self.sliders[:4]), widgets.VBox(self.sliders[4:])]),
                                    widgets.HBox([self._image_out, self._scene_out])])
        self.result: dict = {}
        self.update()

    def set(self, **angles_deg) -> None:
        """Set joints by name (degrees), e.g. ``set(left_wing_flap=60)``; redraws once per change."""
        for name, value in angles_deg.items():
            if name not in self.joint_names:
                raise ValueError(f"joint must be one of {self.joint_names}, got {name!r}")
            self.sliders[self.joint_names.index(name)].value = float(value)

    def evaluate(self, angles_deg) -> dict:
        from csmlab.methods.acsm import losses as L

        rad = torch.tensor([math.radians(a) for a in angles_deg])
        R = self.pose_fn(rad)
        with torch.no_grad():
            verts = self.model.pose(R[None, None])                              # [1,1,V,3]
            cams = {k: torch.as_tensor(self.camera[k]).reshape(1, 1, -1) for k in ("quat", "trans")}
            cams["scale"] = torch.as_tensor(self.camera["scale"]).reshape(1, 1)
            H = self.image.shape[-1]
            rendered = L.render_posed(verts, self.model.template.faces, cams, H)
            pts = self.model.articulated_points(self.uv[None], verts)
            err = L.articulated_cycle_error(pts, cams)[0, 0]
        fg = self.mask[0] > 0.5
        px = err.sqrt() * H / 2                                                 # NDC distance -> pixels
        return {"verts": verts[0, 0], "silhouette": rendered["silhouette"][0, 0], "cycle_px": px,
                "mean_cycle_px": float(px[fg].mean()) if fg.any() else float("nan")}

    def update(self) -> None:
        import matplotlib.pyplot as plt

        self.result = r = self.evaluate([s.value for s in self.sliders])
        fig, (a0, a1) = plt.subplots(1, 2, figsize=(5.4, 2.8))
        show_image(a0, self.image, title="image; posed template outline")
        a0.contour(r["silhouette"].numpy(), levels=[0.5], colors="yellow", linewidths=1.2)
        shown = torch.where(self.mask[0] > 0.5, r["cycle_px"], torch.full_like(r["cycle_px"], float("nan")))
        im = a1.imshow(shown.numpy(), cmap="magma", vmin=0, vmax=max(3.0, float(r["cycle_px"].max())))
        a1.set_title(f"cycle error, mean {r['mean_cycle_px']:.2f} px", fontsize=9)
        fig.colorbar(im, ax=a1, fraction=0.046)
        for ax in (a0, a1):
            ax.set_xticks([])
            ax.set_yticks([])
        fig.tight_layout()
        show_in(self._image_out, fig)
        colours = PART_COLOURS[self.model.rig.membership.clamp_max(len(PART_COLOURS) - 1)]
        show_in(self._scene_out, scene_figure([mesh_trace(r["verts"], self.model.template.faces,
                                                          vertex_colors=colours, name="posed template")],
                                              title="posed template (parts)", height=300))

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
