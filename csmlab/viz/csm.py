"""Pictures for notebook 02 (canonical surface maps): UV colour maps, cycle errors, hypotheses, transfers.

The UV colour map is continuous on the sphere: hue follows u (hue wraps, as u
does at the seam), brightness follows v (dark at the bottom pole, bright at the
top) and saturation fades to grey at both poles, where u is undefined. So equal
colours mean equal template points, in the image and on the template alike.
"""

from __future__ import annotations

import numpy as np
import torch

from .images import image_grid, overlay_keypoints, show_image
from .output import show_in
from .scene import mesh_trace, points_trace, scene_figure


def uv_to_rgb(uv: torch.Tensor) -> torch.Tensor:
    """[...,2] sphere UV -> [...,3] RGB in [0,1] (HSV with h = u, s = 0.9 sin(pi v), value = 0.3 + 0.7 v)."""
    if not isinstance(uv, torch.Tensor) or uv.shape[-1:] != (2,):
        raise ValueError(f"uv must be a tensor [...,2], got "
                         f"{list(uv.shape) if isinstance(uv, torch.Tensor) else type(uv).__name__}")
    h = torch.remainder(uv[..., 0], 1.0) * 6
    v_ = uv[..., 1].clamp(0, 1)
    s = 0.9 * torch.sin(np.pi * v_)
    val = 0.3 + 0.7 * v_
    k = torch.stack([torch.remainder(5 + h, 6), torch.remainder(3 + h, 6), torch.remainder(1 + h, 6)], -1)
    rgb = val[..., None] - val[..., None] * s[..., None] * (torch.minimum(k, 4 - k).clamp(0, 1))
    return rgb.clamp(0, 1)   # sin(pi v) is -1e-7 at v = 1 in float32: keep colours in range


def uv_image(uv: torch.Tensor, mask: torch.Tensor | None = None, background: float = 1.0) -> torch.Tensor:
    """[2,H,W] UV map (+ optional [1,H,W] mask) -> [3,H,W] colour image, ``background`` off the mask."""
    if uv.dim() != 3 or uv.shape[0] != 2:
        raise ValueError(f"uv must be [2,H,W], got {list(uv.shape)}")
    rgb = uv_to_rgb(uv.permute(1, 2, 0)).permute(2, 0, 1)
    if mask is not None:
        m = (mask > 0.5).to(rgb.dtype)
        rgb = rgb * m + background * (1 - m)
    return rgb


def uv_legend(resolution: int = 64) -> torch.Tensor:
    """[3,R,2R] the colour of every UV, u left to right, v = 1 on the top row (a top-row-first image)."""
    v = (torch.arange(resolution, 0, -1, dtype=torch.float32) - 0.5) / resolution
    u = (torch.arange(2 * resolution, dtype=torch.float32) + 0.5) / (2 * resolution)
    uv = torch.stack(torch.meshgrid(u, v, indexing="xy"), -1)
    return uv_to_rgb(uv).permute(2, 0, 1)


def render_template_uv(template_uv, camera, resolution: int) -> torch.Tensor:
    """[3,H,W] the template under one scaled-orthographic camera, coloured by its UV colour map (white bg)."""
    from ..geometry import OrthoCamera
    from ..render import interpolate_image, rasterize_mesh

    cam = camera if isinstance(camera, OrthoCamera) else OrthoCamera.from_dict(camera)
    r = rasterize_mesh(cam.clip(template_uv.verts[None]), template_uv.faces, resolution)
    rgb = interpolate_image(r, uv_to_rgb(template_uv.vertex_uv))[0]
    return rgb + (1 - r.mask[0])


def cycle_diagram(image, uv, template_uv, camera, pixel, title: str | None = None):
    """The geometric cycle for one pixel, in three panels joined by arrows.

    pixel p (image) -> its UV u (the UV square) -> template point X = phi(u), drawn where the
    camera projects it (template rendered in UV colours) -> back to the image: the cycle
    error is the distance between pi(X) and p. ``uv`` is a [2,H,W] UV map (true or predicted),
    ``camera`` a sample's camera dict, ``pixel`` (x, y) integer pixel indices.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import ConnectionPatch

    from ..geometry import OrthoCamera, ndc_to_pixel

    H, W = image.shape[-2:]
    x, y = pixel
    u = uv[:, y, x]
    X = template_uv.uv_to_points(u[None])
    cam = OrthoCamera.from_dict(camera)
    back = ndc_to_pixel(cam.project(X[None])[0], H, W)[0]
    fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.4))
    show_image(axes[0], image, title="image: pixel p")
    axes[0].scatter([x + 0.5], [y + 0.5], marker="P", s=110, c="white", edgecolors="black", linewidths=1, zorder=3)
    axes[0].scatter([float(back[0])], [float(back[1])], marker="o", s=70, facecolors="none", edgecolors="black",
                    linewidths=1.5, zorder=4)
    R = 64
    show_image(axes[1], uv_legend(R), title="UV square: u = f(p)")
    ux, uy = float(u[0]) * 2 * R, (1 - float(u[1])) * R
    axes[1].scatter([ux], [uy], marker="x", s=100, c="black", linewidths=2)
    axes[1].set_xlabel("u", fontsize=9)
    axes[1].set_ylabel("v", fontsize=9, rotation=0)
    show_image(axes[2], render_template_uv(template_uv, cam, H), title="template: X = phi(u), seen by pi")
    axes[2].scatter([float(back[0])], [float(back[1])], marker="x", s=100, c="black", linewidths=2)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    arrows = [((x + 0.5, y + 0.5), axes[0], (ux, uy), axes[1], "f: pixel -> UV"),
              ((ux, uy), axes[1], (float(back[0]), float(back[1])), axes[2], "phi: UV -> 3D")]
    for xy_a, ax_a, xy_b, ax_b, label in arrows:
        con = ConnectionPatch(xyA=xy_a, coordsA=ax_a.transData, xyB=xy_b, coordsB=ax_b.transData,
                              arrowstyle="->", color="tab:blue", lw=1.5, connectionstyle="arc3,rad=-0.2")
        fig.add_artist(con)
        to_fig = fig.transFigure.inverted()
        pa, pb = to_fig.transform(ax_a.transData.transform(xy_a)), to_fig.transform(ax_b.transData.transform(xy_b))
        fig.text((pa[0] + pb[0]) / 2, max(pa[1], pb[1]) + 0.1, label, ha="center", fontsize=9, color="tab:blue")
    err = float((back - torch.tensor([x + 0.5, y + 0.5])).norm())
    fig.text(0.5, 0.02, f"pi(X) (black ring, left) lands {err:.2f} px from p (white cross): that is the cycle error",
             ha="center", fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def show_uv_maps(images, gt_uv, pred_uv, masks, pred_masks=None, n: int = 4, title: str | None = None):
    """Rows: images, true UV colour maps, predicted ones (on the true mask, or ``pred_masks``)."""
    n = min(n, len(images))
    pm = masks if pred_masks is None else pred_masks
    tiles = [images[i] for i in range(n)] + [uv_image(gt_uv[i], masks[i]) for i in range(n)] + \
            [uv_image(pred_uv[i], pm[i]) for i in range(n)]
    titles = [f"image {i}" for i in range(n)] + ["true UV"] * n + ["predicted UV"] * n
    return image_grid(tiles, titles, ncols=n, suptitle=title)


def show_cycle_errors(images, errors, masks, n: int = 4, vmax: float | None = None, title: str | None = None,
                      titles=None):
    """Images with their per-pixel cycle error (pixels) as a heat map over the foreground."""
    import matplotlib.pyplot as plt

    n = min(n, len(images))
    vmax = float(torch.as_tensor(errors[:n]).max()) if vmax is None else vmax
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.6), squeeze=False)
    for i, ax in enumerate(axes[0]):
        show_image(ax, images[i])
        err = torch.as_tensor(errors[i]).reshape(images[i].shape[-2:]).clone()
        err[torch.as_tensor(masks[i]).reshape(err.shape) <= 0.5] = float("nan")
        art = ax.imshow(err.numpy(), cmap="magma", vmin=0, vmax=vmax, alpha=0.85,
                        extent=(0, err.shape[1], err.shape[0], 0), interpolation="nearest")
        head = f"{titles[i]}\n" if titles is not None else ""
        ax.set_title(f"{head}mean {float(np.nanmean(err.numpy())):.2f} px", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(art, ax=list(axes[0]), fraction=0.02, pad=0.02, label="cycle error (px)")
    if title:
        fig.suptitle(title)
    return fig


def plot_hypotheses(prob: torch.Tensor, azimuth_deg: torch.Tensor | None = None, n: int = 6,
                    true_azimuth_deg: torch.Tensor | None = None):
    """Bar charts of the hypothesis probabilities of ``n`` images, plus the usage over all of them."""
    import matplotlib.pyplot as plt

    prob = torch.as_tensor(prob)
    if prob.dim() != 2:
        raise ValueError(f"prob must be [N,K], got {list(prob.shape)}")
    n = min(n, prob.shape[0])
    K = prob.shape[1]
    fig, axes = plt.subplots(1, n + 1, figsize=(1.9 * (n + 1), 2.2), squeeze=False, sharey=True)
    for i in range(n + 1):
        ax = axes[0, i]
        values = prob[i] if i < n else prob.mean(0)
        ax.bar(range(K), values.numpy(), color="tab:blue" if i < n else "tab:orange")
        ax.set_ylim(0, 1)
        ax.set_xticks(range(K))
        ax.tick_params(labelsize=7)
        if i < n:
            label = f"image {i}"
            if true_azimuth_deg is not None:
                label += f"\n(true az {float(true_azimuth_deg[i]):.0f}°)"
            ax.set_title(label, fontsize=8)
        else:
            ax.set_title("usage (mean)", fontsize=8)
    axes[0, 0].set_ylabel("probability")
    if azimuth_deg is not None:
        fig.supxlabel("hypothesis k (current azimuths: " +
                      ", ".join(f"{float(a):.0f}°" for a in torch.as_tensor(azimuth_deg)) + ")", fontsize=8)
    fig.tight_layout()
    return fig


def _wrap_deg(a):
    """Degrees to [-180, 180)."""
    return (a + 180) % 360 - 180


def plot_azimuths(true_deg, pred_deg, title: str | None = None):
    """Scatter of the true camera azimuth against the chosen hypothesis' azimuth (degrees), one dot per image.

    Dots on the diagonal are right. The dashed lines are the two views a symmetric object's
    silhouette cannot tell from the truth: the mirror view (-az, left and right swapped) and
    the front/back view (180 - az); a masks-only model that falls for them lands there.
    """
    import matplotlib.pyplot as plt

    true_deg, pred_deg = (torch.as_tensor(a, dtype=torch.float64).reshape(-1) for a in (true_deg, pred_deg))
    if true_deg.shape != pred_deg.shape:
        raise ValueError(f"true_deg and pred_deg must have the same length, got {true_deg.numel()} and "
                         f"{pred_deg.numel()}")
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    a = np.linspace(-180, 180, 361)
    ax.plot(a, a, color="tab:green", lw=1, label="right")
    lines = ((_wrap_deg(-a), "mirror (-az)", "--"), (_wrap_deg(180 - a), "front/back (180-az)", ":"))
    for curve, name, style in lines:
        jumps = np.abs(np.diff(curve)) > 180           # do not draw the wrap-around segment
        curve = np.where(np.concatenate([[False], jumps]), np.nan, curve)
        ax.plot(a, curve, style, color="grey", lw=1, label=name)
    ax.scatter(_wrap_deg(true_deg.numpy()), _wrap_deg(pred_deg.numpy()), s=8, color="tab:blue", zorder=3)
    ax.set(xlim=(-180, 180), ylim=(-180, 180), xlabel="true azimuth (deg)", ylabel="chosen hypothesis (deg)",
           xticks=range(-180, 181, 90), yticks=range(-180, 181, 90))
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title or "camera azimuth: truth vs the most probable hypothesis", fontsize=9)
    fig.tight_layout()
    return fig


def show_transfer(img_src, img_tgt, kp_src, kp_tgt, transferred, threshold_px: float, names=None, title=None):
    """Source keypoints (left), their transfers into the target (right, ring: green if within the
    threshold of the true target keypoint, red otherwise) and the true target keypoints (dots)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import ConnectionPatch

    fig, (a, b) = plt.subplots(1, 2, figsize=(6.4, 3.3))
    show_image(a, img_src, title="source")
    show_image(b, img_tgt, title="target: transferred (rings) vs true (dots)")
    both = (kp_src[:, 2] > 0.5) & (kp_tgt[:, 2] > 0.5)
    overlay_keypoints(a, torch.cat([kp_src[:, :2], both[:, None].float()], -1))
    overlay_keypoints(b, torch.cat([kp_tgt[:, :2], both[:, None].float()], -1), size=12)
    idx = torch.nonzero(both)[:, 0]
    for row, k in enumerate(idx.tolist()):
        x, y = (float(v) for v in transferred[row])
        ok = float((transferred[row] - kp_tgt[k, :2]).norm()) <= threshold_px
        b.scatter([x], [y], s=60, facecolors="none", edgecolors="limegreen" if ok else "red", linewidths=1.5,
                  zorder=4)
        fig.add_artist(ConnectionPatch(xyA=(float(kp_src[k, 0]), float(kp_src[k, 1])), coordsA=a.transData,
                                       xyB=(x, y), coordsB=b.transData, color="limegreen" if ok else "red",
                                       alpha=0.35, linewidth=0.8))
    for ax in (a, b):
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_losses(history, names=None, window: int = 10, title: str | None = None):
    """One panel per logged term (running mean over ``window`` steps, log scale where positive)."""
    import matplotlib.pyplot as plt

    names = [n for n in (names or history.names) if n in history]
    ncols = min(4, len(names))
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, 2.3 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        steps, values = history.smoothed(name, min(window, len(history[name])))
        ax.plot(steps, values, lw=1.2)
        if min(values) > 0:
            ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def template_figure(template_uv, points=None, point_colors="black", title: str | None = None, height: int = 380):
    """Plotly: the template coloured by its UV colour map, with optional [N,3] points marked on it."""
    colours = uv_to_rgb(template_uv.vertex_uv)
    traces = [mesh_trace(template_uv.verts, template_uv.faces, vertex_colors=colours, name="template")]
    if points is not None:
        traces.append(points_trace(torch.as_tensor(points).reshape(-1, 3), colors=point_colors, size=7,
                                   name="points"))
    return scene_figure(traces, title=title, height=height)


def metrics_table(rows: dict[str, dict], keys=None, digits: int = 3) -> str:
    """A Markdown table: one row per named result, one column per metric key."""
    keys = list(keys or sorted({k for r in rows.values() for k in r}))
    lines = ["| | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, r in rows.items():
        cells = []
        for k in keys:
            v = r.get(k, "")
            cells.append(f"{v:.{digits}f}" if isinstance(v, float) else str(v))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


class CorrespondenceExplorer:
    """Pick a pixel of image A (sliders); see its template point in 3D and its match in image B.

    The match is the foreground pixel of B whose predicted template point is nearest
    in 3D (the keypoint-transfer rule). Pictures are drawn at construction, so a
    headless run shows the initial state. ``select(x, y)`` does the same from code.
    """

    def __init__(self, images, points, masks, template_uv, pair=(0, 1), pixel=None, show_3d: bool = True):
        import ipywidgets as widgets

        self.images, self.points, self.masks, self.template = images, points, masks, template_uv
        N, _, H, W = images.shape
        if points.shape != (N, 3, H, W) or masks.shape != (N, 1, H, W):
            raise ValueError(f"points must be [N,3,H,W] and masks [N,1,H,W] like images {list(images.shape)}, "
                             f"got {list(points.shape)} and {list(masks.shape)}")
        if pixel is None:  # start on a foreground pixel of A near its mask's centroid
            ys, xs = torch.nonzero(masks[pair[0], 0] > 0.5, as_tuple=True)
            pixel = (int(xs.float().mean()), int(ys.float().mean())) if len(xs) else (W // 2, H // 2)
        common = dict(continuous_update=False, style={"description_width": "60px"})
        self.controls = {
            "a": widgets.BoundedIntText(value=pair[0], min=0, max=N - 1, description="image A", **common),
            "b": widgets.BoundedIntText(value=pair[1], min=0, max=N - 1, description="image B", **common),
            "x": widgets.IntSlider(value=pixel[0], min=0, max=W - 1, description="x (px)", **common),
            "y": widgets.IntSlider(value=pixel[1], min=0, max=H - 1, description="y (px)", **common),
        }
        self.show_3d = show_3d
        self._images_out, self._scene_out = widgets.Output(), widgets.Output()
        for c in self.controls.values():
            c.observe(lambda _change: self.update(), names="value")
        self.widget = widgets.VBox([widgets.HBox(list(self.controls.values())[:2]),
                                    widgets.HBox(list(self.controls.values())[2:]),
                                    widgets.HBox([self._images_out] + ([self._scene_out] if show_3d else []))])
        self.result: dict = {}
        self.update()

    def select(self, x: int, y: int, a: int | None = None, b: int | None = None) -> dict:
        """The template point of pixel (x, y) of image A and its nearest-point match in image B."""
        a = self.controls["a"].value if a is None else a
        b = self.controls["b"].value if b is None else b
        H, W = self.images.shape[-2:]
        if not (0 <= x < W and 0 <= y < H):
            raise ValueError(f"pixel (x, y) must lie in the {W}x{H} image, got ({x}, {y})")
        p = self.points[a, :, y, x]
        fg = self.masks[b, 0] > 0.5
        d = (self.points[b] - p[:, None, None]).norm(dim=0)
        d[~fg] = float("inf")
        idx = int(d.argmin())
        return {"point": p, "match_xy": (idx % W + 0.5, idx // W + 0.5), "distance": float(d.reshape(-1)[idx]),
                "distance_map": torch.where(fg, d, torch.full_like(d, float("nan")))}

    def update(self) -> None:
        import matplotlib.pyplot as plt

        a, b, x, y = (self.controls[k].value for k in ("a", "b", "x", "y"))
        self.result = r = self.select(x, y, a, b)
        fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(5.6, 2.9))
        show_image(ax_a, self.images[a], title=f"A = {a}: pixel ({x}, {y})")
        ax_a.scatter([x + 0.5], [y + 0.5], s=80, marker="+", c="red", linewidths=2)
        show_image(ax_b, self.images[b], title=f"B = {b}: match (3D dist {r['distance']:.3f})")
        ax_b.imshow(r["distance_map"].numpy(), cmap="viridis_r", alpha=0.5,
                    extent=(0, self.images.shape[-1], self.images.shape[-2], 0), interpolation="nearest")
        ax_b.scatter([r["match_xy"][0]], [r["match_xy"][1]], s=80, marker="+", c="red", linewidths=2)
        for ax in (ax_a, ax_b):
            ax.set_xticks([])
            ax.set_yticks([])
        fig.tight_layout()
        show_in(self._images_out, fig)
        if self.show_3d:
            show_in(self._scene_out, template_figure(self.template, r["point"][None], point_colors="red", height=300))

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
