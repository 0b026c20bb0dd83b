"""Every explorer's picture panels hold real pictures (PNG or plotly JSON), after construction and after a change.

Headless twin of ``tests/test_browser.py``: a panel that received an empty bundle (the old
``format_display_data(plotly_fig)`` bug) or that does not change when a control moves fails here.
"""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from csmlab import geometry as G  # noqa: E402
from csmlab.viz.output import PLOTLY_MIMETYPE, bundle_mimetypes, display_bundle, show_in  # noqa: E402

PICTURES = {"image/png", PLOTLY_MIMETYPE}


def _panels(explorer):
    import ipywidgets as widgets

    found, stack = [], [explorer.widget]
    while stack:
        w = stack.pop()
        if isinstance(w, widgets.Output):
            found.append(w)
        stack.extend(getattr(w, "children", ()))
    return found


def _state(panels):
    return [repr([o["data"] for o in p.outputs]) for p in panels]


def _camera():
    from csmlab.viz.widgets import camera_explorer

    ex = camera_explorer(G.icosphere(1), resolution=16)
    return ex, lambda: ex.set_view(azimuth=120.0)


def _reprojection():
    from csmlab.methods.ttp import bird_problem
    from csmlab.viz.ttp import ReprojectionExplorer

    ex = ReprojectionExplorer(bird_problem(2, seed=0, resolution=32, zero_articulation=True), index=1, n_coeffs=2)
    return ex, lambda: ex.set(azimuth=40.0, c0=0.2)


def _correspondence():
    from csmlab.data.synthetic import get_category
    from csmlab.methods.csm.uvmap import TemplateUV
    from csmlab.viz.csm import CorrespondenceExplorer

    cat = get_category("birds")
    tuv = TemplateUV(cat.template, cat.template_uv, grid=(8, 16))
    gen = torch.Generator().manual_seed(0)
    points = torch.nn.functional.normalize(torch.randn(2, 3, 8, 8, generator=gen), dim=1)
    ex = CorrespondenceExplorer(torch.rand(2, 3, 8, 8, generator=gen), points, torch.ones(2, 1, 8, 8), tuv)
    return ex, lambda: ex.controls["x"].__setattr__("value", 1)


def _pose():
    from csmlab.data.synthetic import get_category
    from csmlab.viz.synthetic import pose_explorer

    ex = pose_explorer(get_category("birds"), resolution=24)
    return ex, lambda: ex.set(azimuth=-90.0)


def _articulation():
    from csmlab.data.synthetic import get_category
    from csmlab.methods.acsm import build_model, get_config
    from csmlab.methods.acsm.joints import joint_angles_to_rotations
    from csmlab.viz.acsm import ArticulationExplorer

    cat = get_category("birds")
    model = build_model(get_config("smoke", uv_grid=(8, 16)), cat)
    gen = torch.Generator().manual_seed(0)
    camera = {"scale": torch.tensor(0.8), "quat": torch.tensor([1.0, 0.0, 0.0, 0.0]), "trans": torch.zeros(2)}
    ex = ArticulationExplorer(model, torch.rand(3, 16, 16, generator=gen), torch.ones(1, 16, 16),
                              torch.rand(2, 16, 16, generator=gen), camera, cat.joint_names,
                              lambda a: joint_angles_to_rotations(a, model.rig.names))
    return ex, lambda: ex.set(left_wing_flap=60.0)


def _sphere_match():
    from csmlab.viz.spherical import SphereMatchExplorer

    gen = torch.Generator().manual_seed(0)
    sphere = torch.nn.functional.normalize(torch.randn(2, 16, 3, generator=gen), dim=-1)
    feats = torch.randn(2, 16, 5, generator=gen)
    methods = {"raw": [(1.0, feats)], "sphere": [(1.0, sphere)], "fused": [(0.8, feats), (0.2, sphere)]}
    ex = SphereMatchExplorer(torch.rand(2, 3, 16, 16, generator=gen), torch.ones(2, 4, 4, dtype=torch.bool),
                             methods, sphere)
    return ex, lambda: ex.controls["col"].__setattr__("value", 3)


@pytest.mark.parametrize("build", [_camera, _reprojection, _correspondence, _pose, _articulation, _sphere_match])
def test_every_panel_shows_a_picture_and_follows_the_controls(build):
    explorer, move = build()
    panels = _panels(explorer)
    assert panels, "an explorer shows its pictures in ipywidgets.Output panels inside its widget"
    for p in panels:
        kinds = bundle_mimetypes(p)
        assert kinds and all(k & PICTURES for k in kinds), f"a panel holds no picture: {kinds}"
    before = _state(panels)
    move()
    after = _state(panels)
    assert all(b != a for b, a in zip(before, after)), "every panel (2D and 3D) must redraw when a control moves"
    assert all(len(p.outputs) == 1 for p in panels), "a redraw replaces the panel's picture, it does not stack"


def test_plotly_figures_become_their_own_json_bundle():
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter3d(x=[0, 1], y=[0, 1], z=[0, 2]))
    bundle = display_bundle(fig)["data"]
    assert bundle[PLOTLY_MIMETYPE]["data"][0]["type"] == "scatter3d"
    assert bundle[PLOTLY_MIMETYPE]["data"][0]["z"] == [0, 2]


def test_something_without_a_bundle_is_refused():
    class SelfDisplaying:
        def _ipython_display_(self):
            pass

    import ipywidgets as widgets

    with pytest.raises(ValueError, match="obj must be"):
        show_in(widgets.Output(), SelfDisplaying())
