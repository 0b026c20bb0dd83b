"""Tests of csmlab.viz: light import, image grids and overlays, plotly scenes, the camera explorer."""

import math
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from csmlab import geometry as G  # noqa: E402
from csmlab import viz  # noqa: E402
from csmlab.viz import images  # noqa: E402


def test_import_is_light():
    code = ("import sys, csmlab.viz; heavy = [m for m in ('matplotlib', 'plotly', 'ipywidgets') if m in sys.modules];"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing csmlab.viz loaded {out}"


def test_to_numpy_image_forms():
    assert images.to_numpy_image(torch.rand(1, 4, 5)).shape == (4, 5)
    assert images.to_numpy_image(torch.rand(3, 4, 5)).shape == (4, 5, 3)
    uv = images.to_numpy_image(torch.rand(2, 4, 5))
    assert uv.shape == (4, 5, 3) and np.all(uv[..., 2] == 0)        # UV maps: red/green, blue empty
    assert images.to_numpy_image(np.zeros((4, 5, 3))).shape == (4, 5, 3)
    with pytest.raises(ValueError, match="image"):
        images.to_numpy_image(torch.rand(5, 4, 5))
    with pytest.raises(ValueError, match="image"):
        images.to_numpy_image([1, 2, 3])


def test_image_grid_layout_and_overlays():
    imgs = torch.rand(5, 3, 8, 10)
    masks = torch.zeros(5, 1, 8, 10)
    masks[:, :, 2:5, 3:7] = 1
    kps = torch.tensor([[1.5, 2.5, 1.0], [6.5, 3.5, 0.0], [9.5, 7.5, 1.0]])
    field = torch.zeros(2, 8, 10)
    field[0, 5, 5] = 1.0                                 # on the step-2 sample grid (rows, cols 1, 3, 5, ...)
    fig = viz.image_grid(imgs, titles=[f"im{k}" for k in range(5)], ncols=3, masks=masks,
                         keypoints=[kps] * 5, keypoint_names=["nose", "tail", "paw"],
                         scalars=[None, torch.rand(1, 8, 10), None, None, None],
                         vectors=[None, None, field, (torch.tensor([[2.0, 2.0]]), torch.tensor([[1.0, 0.0]])), None],
                         vector_step=2)
    axes = fig.axes
    grid_axes = [ax for ax in axes if ax.get_label() != "<colorbar>"]
    assert len(grid_axes) == 6                          # 2 rows x 3 columns, the last one empty
    assert not grid_axes[5].axison
    ax0 = grid_axes[0]
    assert ax0.get_title() == "im0"
    assert ax0.get_xlim() == (0, 10) and ax0.get_ylim() == (8, 0)   # pixel coordinates, y down
    # Visible keypoints only, drawn at their stored pixel coordinates, with their names.
    pts = np.concatenate([c.get_offsets() for c in ax0.collections])
    assert np.allclose(sorted(pts.tolist()), [[1.5, 2.5], [9.5, 7.5]])
    assert {t.get_text() for t in ax0.texts} == {"nose", "paw"}
    assert len(grid_axes[2].collections) >= 3 and len(grid_axes[3].collections) >= 3  # arrows + keypoints
    plt.close(fig)


def test_image_grid_rejects_mismatched_overlays():
    with pytest.raises(ValueError, match="masks"):
        viz.image_grid(torch.rand(3, 1, 4, 4), masks=[None, None])
    with pytest.raises(ValueError, match="keypoints"):
        fig, ax = plt.subplots()
        images.overlay_keypoints(ax, torch.zeros(3, 4))
    plt.close("all")


def test_overlay_vector_field_skips_zero_vectors():
    fig, ax = plt.subplots()
    field = torch.zeros(2, 8, 8)
    field[:, 1, 1] = torch.tensor([2.0, -1.0])          # the only non-zero sample at step 2 (rows/cols 1,3,5,7)
    q = images.overlay_vector_field(ax, field, step=2)
    assert q.N == 1 and np.allclose(q.get_offsets(), [[1.5, 1.5]])
    plt.close(fig)


def test_mesh_and_points_traces():
    m = G.icosphere(1)
    tr = viz.mesh_trace(m.verts, m.faces, vertex_colors=(m.verts + 1) / 2)
    assert len(tr.x) == m.num_verts and len(tr.i) == m.num_faces and len(tr.vertexcolor) == m.num_verts
    pts = viz.points_trace(torch.zeros(4, 3), colors=torch.ones(4, 3))
    assert list(pts.marker.color) == ["rgb(255,255,255)"] * 4
    with pytest.raises(ValueError, match="vertex_colors"):
        viz.mesh_trace(m.verts, m.faces, vertex_colors=torch.ones(3, 3))


def _line_points(trace):
    return np.array([(x, y, z) for x, y, z in zip(trace.x, trace.y, trace.z) if x is not None], dtype=float)


def test_ortho_camera_glyph_geometry():
    R = G.azel_to_matrix(torch.tensor(math.radians(90.0)), torch.tensor(0.0))
    traces = viz.ortho_camera_traces(R, scale=0.5, trans=(0.0, 0.0), distance=2.0, depth=1.0)
    box = _line_points(traces[0])
    # At azimuth 90 the viewer sits on the object's +x axis: the image plane is x = 2, the box's far end x = -1,
    # and the cross-section half-size is 1 / s = 2.
    assert np.isclose(box[:, 0].max(), 2.0) and np.isclose(box[:, 0].min(), -1.0)
    assert np.isclose(np.abs(box[:, 2]).max(), 2.0, atol=1e-6)
    axis_z = _line_points(traces[3])                     # the camera's z axis points to the viewer (+x here)
    assert np.allclose(axis_z[1] - axis_z[0], [0.4, 0.0, 0.0], atol=1e-6)


def test_perspective_camera_glyph_apex():
    R = torch.eye(3)
    traces = viz.perspective_camera_traces(R, T=(0.0, 0.0, -3.0), fov_deg=90.0, depth=1.0)
    pts = _line_points(traces[0])
    assert np.allclose(pts[0], [0.0, 0.0, 3.0])          # centre -R^T T
    assert np.isclose(pts[:, 2].min(), 2.0)              # base one unit in front, looking down -z
    with pytest.raises(ValueError, match="fov_deg"):
        viz.perspective_camera_traces(R, fov_deg=180.0)


def test_scene_figure_has_y_up():
    fig = viz.scene_figure(viz.axes_traces())
    assert fig.layout.scene.camera.up.y == 1 and fig.layout.scene.aspectmode == "data"


def _lopsided_mesh():
    m = G.icosphere(2)
    v = m.verts * torch.tensor([1.0, 0.5, 0.3])          # long along x, thin along z
    return G.Mesh(v, m.faces)


def test_render_view_background_and_view_dependence():
    from csmlab.viz.widgets import render_view

    mesh = _lopsided_mesh()
    front = render_view(mesh, 0.0, 0.0, scale=0.8, resolution=32)
    side = render_view(mesh, 90.0, 0.0, scale=0.8, resolution=32)
    assert front.shape == (3, 32, 32) and float(front.min()) >= 0 and float(front.max()) <= 1
    assert torch.all(front[:, 0, 0] == 1.0)                          # white background
    def covered(img):
        return int((img < 0.99).any(0).sum())

    # From the front the mesh is 1.0 wide; from the side only 0.3: far fewer pixels covered.
    assert covered(front) > 2 * covered(side)
    with pytest.raises(ValueError, match="scale"):
        render_view(mesh, scale=0.0)


def test_camera_explorer_builds_headless_and_follows_sliders():
    explorer = viz.camera_explorer(_lopsided_mesh(), resolution=24, azimuth=0.0, elevation=0.0, scale=0.8)
    first = explorer.image.clone()
    assert set(explorer.sliders) == {"azimuth", "elevation", "scale"}
    explorer.set_view(azimuth=90.0)
    assert explorer.view() == (90.0, 0.0, 0.8)
    assert not torch.equal(first, explorer.image)
    assert explorer.scene().data  # the plotly figure has the mesh and the camera
    # The panels hold the pictures as widget state (no output capture, which hangs headless runners).
    (image_panel,) = explorer._image_out.outputs
    assert image_panel["data"]["image/png"] and explorer._scene_out.outputs
    with pytest.raises(ValueError, match="mesh"):
        viz.camera_explorer(torch.zeros(3, 3))
    plt.close("all")


def test_show_in_replaces_an_output_panel_and_closes_figures():
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    from csmlab.viz.output import show_in

    out = widgets.Output()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    show_in(out, fig, "some text")
    assert [sorted(o["data"]) for o in out.outputs] == [["image/png", "text/plain"], ["text/plain"]]
    assert not plt.fignum_exists(fig.number)
    show_in(out)
    assert out.outputs == ()
