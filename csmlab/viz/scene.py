"""Plotly 3D scenes: meshes with vertex colours, point sets and camera glyphs.

Everything is drawn in the canonical object frame of docs/design.md, section 2
(x right, y up, z towards the viewer at identity pose); :func:`scene_figure`
sets plotly's "up" to +y so the picture opens the way the notebooks talk.

Cameras. A rotation ``R`` maps object to camera coordinates (``X_cam = R X``),
so the camera's axes seen in the object frame are the *rows* of R, and the
viewer of a scaled-orthographic camera sits along ``R^T e_z``. Camera glyphs
draw those axes (x red, y green, z blue) and the volume the camera sees:

- scaled-orthographic ``u = s (R X)[:2] + t``: NDC [-1, 1]^2 covers the
  object-frame rectangle ``(R X)[:2] in ([-1, 1] - t) / s``, so the glyph is a box
  of that cross-section, from the image plane (at ``distance`` in front of the
  object) back through the object;
- perspective ``X_cam = R X + T`` looking down -z: a pyramid from the camera
  centre ``-R^T T`` with the given full field of view.
"""

from __future__ import annotations

import numpy as np
import torch

AXIS_COLOURS = ("#d62728", "#2ca02c", "#1f77b4")  # x red, y green, z blue


def _np(x, name: str, shape_tail: tuple | None = None) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        a = x.detach().to("cpu", torch.float64).numpy()
    else:
        a = np.asarray(x, dtype=np.float64)
    if shape_tail is not None and (a.ndim != len(shape_tail) or any(
            want is not None and got != want for got, want in zip(a.shape, shape_tail))):
        form = "[" + ",".join("N" if w is None else str(w) for w in shape_tail) + "]"
        raise ValueError(f"{name} must have shape {form}, got {a.shape}")
    return a


def _rgb_strings(colours: np.ndarray) -> list[str]:
    c = np.clip(np.round(colours[:, :3] * 255), 0, 255).astype(int)
    return [f"rgb({r},{g},{b})" for r, g, b in c]


def mesh_trace(verts, faces, vertex_colors=None, color: str = "lightsteelblue", opacity: float = 1.0,
               name: str = "mesh", intensity=None, colorscale: str = "Viridis"):
    """A ``go.Mesh3d`` for ``[V,3]`` verts and ``[F,3]`` faces.

    Colour, in order of precedence: ``vertex_colors`` [V,3] RGB in [0,1]; ``intensity`` [V]
    scalars mapped through ``colorscale``; else the flat ``color``.
    """
    import plotly.graph_objects as go

    v = _np(verts, "verts", (None, 3))
    f = _np(faces, "faces", (None, 3)).astype(int)
    kwargs = dict(x=v[:, 0], y=v[:, 1], z=v[:, 2], i=f[:, 0], j=f[:, 1], k=f[:, 2], opacity=opacity,
                  name=name, flatshading=False, lighting=dict(ambient=0.55, diffuse=0.6, specular=0.1))
    if vertex_colors is not None:
        c = _np(vertex_colors, "vertex_colors", (v.shape[0], 3))
        kwargs["vertexcolor"] = _rgb_strings(c)
    elif intensity is not None:
        kwargs.update(intensity=_np(intensity, "intensity", (v.shape[0],)), colorscale=colorscale)
    else:
        kwargs["color"] = color
    return go.Mesh3d(**kwargs)


def points_trace(points, colors=None, size: float = 3.0, name: str = "points", text=None):
    """A ``go.Scatter3d`` of ``[N,3]`` points; ``colors`` is [N,3] RGB in [0,1] or one CSS colour."""
    import plotly.graph_objects as go

    p = _np(points, "points", (None, 3))
    if colors is None or isinstance(colors, str):
        marker_colour = colors or "black"
    else:
        marker_colour = _rgb_strings(_np(colors, "colors", (p.shape[0], 3)))
    return go.Scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers+text" if text is not None else "markers",
                        text=text, name=name, marker=dict(size=size, color=marker_colour))


def _segments_trace(segments: list[tuple[np.ndarray, np.ndarray]], color: str, name: str, width: float = 4.0):
    """One Scatter3d that draws many line segments (None breaks the polyline between them)."""
    import plotly.graph_objects as go

    xs, ys, zs = [], [], []
    for a, b in segments:
        xs += [a[0], b[0], None]
        ys += [a[1], b[1], None]
        zs += [a[2], b[2], None]
    return go.Scatter3d(x=xs, y=ys, z=zs, mode="lines", line=dict(color=color, width=width), name=name,
                        showlegend=False, hoverinfo="skip")


def _rotation(R) -> np.ndarray:
    Rn = _np(R, "R")
    if Rn.shape == (1, 3, 3):
        Rn = Rn[0]
    if Rn.shape != (3, 3):
        raise ValueError(f"R must have shape [3,3] (or [1,3,3]), got {Rn.shape}")
    return Rn


def axes_traces(R=None, origin=(0.0, 0.0, 0.0), length: float = 0.5, name: str = "axes", width: float = 5.0):
    """Three coloured segments for the axes of frame ``R`` (object-to-camera), drawn in the object frame.

    With ``R=None`` these are the object's own axes. The camera's x, y, z axes in object
    coordinates are the rows of R.
    """
    Rn = np.eye(3) if R is None else _rotation(R)
    o = _np(origin, "origin", (3,))
    return [_segments_trace([(o, o + length * Rn[k])], AXIS_COLOURS[k], f"{name} {'xyz'[k]}", width)
            for k in range(3)]


def ortho_camera_traces(R, scale: float = 1.0, trans=(0.0, 0.0), distance: float = 2.0, depth: float = 2.0,
                        color: str = "gray", name: str = "camera"):
    """Glyph of a scaled-orthographic camera: its viewing box and its axes at the image plane.

    The image plane is drawn ``distance`` object units in front of the object (along ``R^T e_z``)
    and the box reaches ``depth`` units behind the object's origin. The box's cross-section
    is what lands inside the image.
    """
    Rn = _rotation(R)
    s = float(scale)
    if s <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    t = _np(trans, "trans", (2,))
    ex, ey, ez = Rn  # camera axes in object coordinates
    corners2d = [((cx - t[0]) / s, (cy - t[1]) / s) for cx, cy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    front = [a * ex + b * ey + distance * ez for a, b in corners2d]
    back = [a * ex + b * ey - depth * ez for a, b in corners2d]
    segs = [(front[k], front[(k + 1) % 4]) for k in range(4)] + [(back[k], back[(k + 1) % 4]) for k in range(4)]
    segs += [(front[k], back[k]) for k in range(4)]
    centre = ((-t[0]) / s) * ex + ((-t[1]) / s) * ey + distance * ez
    # A short tick on the image's top edge tells up from down in the glyph.
    top_mid = (front[2] + front[3]) / 2
    segs.append((top_mid, top_mid + 0.15 / s * ey))
    return [_segments_trace(segs, color, name, width=2.0)] + axes_traces(Rn, centre, length=0.4, name=name)


def perspective_camera_traces(R, T=(0.0, 0.0, 0.0), fov_deg: float = 30.0, depth: float = 1.0,
                              color: str = "gray", name: str = "camera"):
    """Glyph of a perspective camera ``X_cam = R X + T`` looking down its -z: a pyramid and its axes.

    The pyramid's apex is the camera centre ``-R^T T``; its base is ``depth`` units away.
    """
    Rn = _rotation(R)
    if not (0 < fov_deg < 180):
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
    Tn = _np(T, "T", (3,))
    centre = -Rn.T @ Tn
    ex, ey, ez = Rn
    half = depth * np.tan(np.radians(fov_deg) / 2)
    base = [centre + a * half * ex + b * half * ey - depth * ez for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    segs = [(centre, c) for c in base] + [(base[k], base[(k + 1) % 4]) for k in range(4)]
    top_mid = (base[2] + base[3]) / 2
    segs.append((top_mid, top_mid + 0.3 * half * ey))
    return [_segments_trace(segs, color, name, width=2.0)] + axes_traces(Rn, centre, length=0.3 * depth, name=name)


def scene_figure(traces, title: str | None = None, height: int = 420, width: int | None = None):
    """A ``go.Figure`` with equal axis scales and +y up (the canonical frame's up)."""
    import plotly.graph_objects as go

    fig = go.Figure(data=list(traces))
    fig.update_layout(
        title=title, height=height, width=width, margin=dict(l=0, r=0, t=30 if title else 0, b=0),
        showlegend=False,
        scene=dict(aspectmode="data", xaxis_title="x", yaxis_title="y", zaxis_title="z",
                   camera=dict(up=dict(x=0, y=1, z=0), eye=dict(x=1.2, y=0.9, z=1.8))),
    )
    return fig
