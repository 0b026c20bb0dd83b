"""Pictures for the notebooks: matplotlib image grids, plotly 3D scenes, ipywidgets explorers.

This is the top layer; nothing in csmlab imports it. Importing ``csmlab.viz``
is cheap: matplotlib, plotly and ipywidgets load only when a function needs
them. Use the submodules directly or the names re-exported here:

- :mod:`csmlab.viz.images`  -- ``image_grid`` and the overlays it draws
  (masks, named keypoints, colour-mapped scalar maps, gradient arrows).
- :mod:`csmlab.viz.scene`   -- plotly traces: meshes with vertex colours,
  point sets, camera glyphs for scaled-orthographic and perspective cameras.
- :mod:`csmlab.viz.widgets` -- ipywidgets explorers such as ``camera_explorer``.
- :mod:`csmlab.viz.output`  -- how every explorer puts its pictures (matplotlib and plotly 3D) inside
  its widget: ``show_in(panel, fig)``. New explorers follow the pattern written there.

Image conventions follow docs/design.md, section 2: images are top-row-first
``[C,H,W]`` and keypoints are pixels (x right, y down, centres at +0.5).
Other modules in this package (one per paper or topic) add their own pictures.
"""

from __future__ import annotations

import importlib

# name -> submodule; resolved on first attribute access so `import csmlab.viz` stays light.
_LAZY = {
    "to_numpy_image": "images",
    "image_grid": "images",
    "show_image": "images",
    "overlay_mask": "images",
    "overlay_keypoints": "images",
    "overlay_scalar_map": "images",
    "overlay_vector_field": "images",
    "overlay_arrows": "images",
    "mesh_trace": "scene",
    "points_trace": "scene",
    "axes_traces": "scene",
    "ortho_camera_traces": "scene",
    "perspective_camera_traces": "scene",
    "scene_figure": "scene",
    "render_view": "widgets",
    "camera_explorer": "widgets",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
