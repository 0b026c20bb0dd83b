"""ipywidgets explorers for the notebooks.

Explorers are built and displayed without blocking: sliders call back into
plain functions, and every picture is drawn once at construction time. Under
nbconvert/nbval (no front end moves the sliders) they simply show that
initial state. Rendering is done by ``csmlab.render``, so the picture a
student sees is the same one the library tests pin.
"""

from __future__ import annotations

import math

import torch

from .. import dr
from ..geometry import Mesh, azel_to_matrix, ortho_clip, vertex_normals
from ..render import flip_rows, image_to_nv, interpolate_image, lambertian, rasterize_mesh
from .output import show_in
from .scene import mesh_trace, ortho_camera_traces, scene_figure


def render_view(mesh: Mesh, azimuth_deg: float = 0.0, elevation_deg: float = 0.0, scale: float = 0.7,
                resolution: int = 128, vertex_colors: torch.Tensor | None = None, trans=(0.0, 0.0),
                light_dir=(0.3, 0.5, 1.0), background: float = 1.0) -> torch.Tensor:
    """Render ``mesh`` seen from (azimuth, elevation) with a scaled-orthographic camera -> [3,H,W] in [0,1].

    The surface is Lambert-shaded (light given in the camera frame, +z towards the viewer)
    with ``vertex_colors`` [V,3] as albedo (grey if None), antialiased onto ``background``.
    """
    if not isinstance(mesh, Mesh):
        raise ValueError(f"mesh must be a csmlab.geometry.Mesh, got {type(mesh).__name__}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    verts = mesh.verts[None].float()
    dev = verts.device  # render where the mesh lives (nvdiffrast on CUDA); the returned image goes to the CPU
    R = azel_to_matrix(torch.tensor([math.radians(azimuth_deg)]), torch.tensor([math.radians(elevation_deg)]))
    R = R.to(device=dev, dtype=torch.float32)
    pos = ortho_clip(verts, torch.tensor([float(scale)], device=dev), R,
                     torch.tensor([list(trans)], dtype=torch.float32, device=dev))
    r = rasterize_mesh(pos, mesh.faces, (resolution, resolution))
    albedo_v = torch.full_like(verts, 0.75) if vertex_colors is None else vertex_colors.to(dev, torch.float32)[None]
    if albedo_v.shape != verts.shape:
        raise ValueError(f"vertex_colors must be [V,3] with V={mesh.num_verts}, got {list(vertex_colors.shape)}")
    normals_cam = vertex_normals(verts, mesh.faces) @ R.transpose(1, 2)
    albedo = interpolate_image(r, albedo_v)
    normals = torch.nn.functional.normalize(interpolate_image(r, normals_cam), dim=1)
    shaded = lambertian(albedo, normals, torch.tensor(light_dir, dtype=torch.float32, device=dev),
                        ambient=0.45, diffuse=0.6)
    # Composite onto the background first, then antialias the composite (the nvdiffrast recipe):
    # edge pixels blend surface and background instead of darkening towards black.
    composite = torch.where(r.mask > 0, shaded, torch.full_like(shaded, background))
    image = flip_rows(dr.antialias(image_to_nv(composite), r.rast, r.pos, r.tri))
    return image[0].clamp(0, 1).detach().cpu()


class CameraExplorer:
    """Azimuth / elevation / scale sliders driving a rendered image and a plotly scene with the camera.

    Attributes: ``sliders`` (dict of FloatSliders), ``image`` (the last rendered [3,H,W]),
    ``widget`` (the ipywidgets box; displaying the explorer displays it).
    """

    def __init__(self, mesh: Mesh, vertex_colors=None, resolution: int = 128, azimuth: float = 30.0,
                 elevation: float = 15.0, scale: float = 0.7, show_3d: bool = True):
        import ipywidgets as widgets

        self.mesh, self.vertex_colors, self.resolution, self.show_3d = mesh, vertex_colors, resolution, show_3d
        # continuous_update=False: a CPU render per slider tick would lag behind the mouse.
        common = dict(continuous_update=False, readout_format=".0f", style={"description_width": "70px"})
        self.sliders = {
            "azimuth": widgets.FloatSlider(value=azimuth, min=-180, max=180, step=5, description="azimuth°", **common),
            "elevation": widgets.FloatSlider(value=elevation, min=-85, max=85, step=5, description="elevation°",
                                             **common),
            "scale": widgets.FloatSlider(value=scale, min=0.2, max=1.5, step=0.05, description="scale",
                                         continuous_update=False, readout_format=".2f",
                                         style={"description_width": "70px"}),
        }
        self._image_out = widgets.Output()
        self._scene_out = widgets.Output()
        self.image: torch.Tensor | None = None
        for s in self.sliders.values():
            s.observe(self._on_change, names="value")
        panels = [self._image_out] + ([self._scene_out] if show_3d else [])
        self.widget = widgets.VBox([widgets.HBox(list(self.sliders.values())), widgets.HBox(panels)])
        self.update()

    def _on_change(self, _change) -> None:
        self.update()

    def view(self) -> tuple[float, float, float]:
        return tuple(float(self.sliders[k].value) for k in ("azimuth", "elevation", "scale"))

    def set_view(self, azimuth: float | None = None, elevation: float | None = None, scale: float | None = None):
        """Move the sliders from code (each change redraws, exactly as a drag would)."""
        for key, value in (("azimuth", azimuth), ("elevation", elevation), ("scale", scale)):
            if value is not None:
                self.sliders[key].value = value

    def update(self) -> None:
        import matplotlib.pyplot as plt

        from .images import show_image

        az, el, s = self.view()
        self.image = render_view(self.mesh, az, el, s, self.resolution, self.vertex_colors)
        fig, ax = plt.subplots(figsize=(3.2, 3.2))
        show_image(ax, self.image, title=f"az {az:.0f}°, el {el:.0f}°, s {s:.2f}")
        ax.set_xticks([])
        ax.set_yticks([])
        show_in(self._image_out, fig)
        if self.show_3d:
            show_in(self._scene_out, self.scene())

    def scene(self):
        """The plotly figure: the mesh and the current camera's viewing box and axes."""
        az, el, s = self.view()
        R = azel_to_matrix(torch.tensor(math.radians(az)), torch.tensor(math.radians(el)))
        traces = [mesh_trace(self.mesh.verts, self.mesh.faces, vertex_colors=self.vertex_colors)]
        traces += ortho_camera_traces(R, scale=s, distance=2.0, depth=1.5)
        return scene_figure(traces, height=340, width=420)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def camera_explorer(mesh: Mesh, vertex_colors=None, resolution: int = 128, azimuth: float = 30.0,
                    elevation: float = 15.0, scale: float = 0.7, show_3d: bool = True) -> CameraExplorer:
    """Build a :class:`CameraExplorer`; put it last in a cell (or ``display`` it) to show it."""
    if not isinstance(mesh, Mesh):
        raise ValueError(f"mesh must be a csmlab.geometry.Mesh, got {type(mesh).__name__}")
    if not isinstance(resolution, int) or resolution < 8:
        raise ValueError(f"resolution must be an int >= 8, got {resolution!r}")
    return CameraExplorer(mesh, vertex_colors, resolution, azimuth, elevation, scale, show_3d)
