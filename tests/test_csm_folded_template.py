"""CSM's posed template (``template_pose="folded"``): rendered posed, scored in the canonical frame."""

import math

import pytest
import torch

from csmlab.data.synthetic import get_category
from csmlab.data.synthetic.birds_priors import CUB_FOLDED_DEG, folded_articulation
from csmlab.geometry import Mesh, sphere_to_uv
from csmlab.methods import csm
from csmlab.methods.csm.fit import build_model, is_mirror_symmetric
from csmlab.methods.csm.presets import get_config
from csmlab.methods.csm.template import load_template
from csmlab.methods.csm.uvmap import TemplateUV


@pytest.fixture(scope="module")
def folded():
    return load_template({"category": "birds", "template_pose": "folded"})


def test_folded_articulation_folds_both_wings_and_leaves_the_rest_at_zero():
    cat = get_category("birds")
    angles = torch.rad2deg(folded_articulation(cat))
    for name, deg in zip(cat.joint_names, angles.tolist()):
        if name.endswith(("wing_flap", "wing_sweep")):
            assert math.isclose(deg, CUB_FOLDED_DEG[name.rsplit("_", 1)[1]][0], abs_tol=1e-4), name
        else:
            assert deg == 0.0, name
    assert ((angles.deg2rad() >= cat.articulation_low) & (angles.deg2rad() <= cat.articulation_high)).all()


def test_folded_template_is_posed_symmetric_and_keeps_the_rest_pose(folded):
    cat = get_category("birds")
    assert torch.equal(folded.canonical_verts, cat.template.verts.float())
    assert torch.equal(folded.template.faces, cat.template.faces)
    moved = (folded.template.verts - cat.template.verts).norm(dim=-1)
    assert moved.max() > 0.3 and (moved < 1e-6).float().mean() > 0.3    # the wings move, the body does not
    assert is_mirror_symmetric(folded.template.verts, folded.vertex_flip)


def test_posed_uv_table_maps_vertices_to_posed_and_canonical_points(folded):
    tuv = TemplateUV(folded.template, folded.template_uv, (64, 128), canonical_verts=folded.canonical_verts)
    face, bary = tuv.uv_to_face_bary(tuv.vertex_uv)
    assert torch.allclose(tuv.face_bary_to_points(face, bary), folded.template.verts, atol=1e-5)
    # The table is bilinear: at the vertices' UV it is close to, not exactly at, the vertices.
    uv = tuv.vertex_uv[None, :, None, :].permute(0, 3, 1, 2)                     # [1,2,V,1]
    posed = tuv.uv_image_to_points(uv)[0, :, :, 0].T
    rest = tuv.uv_image_to_canonical(uv)[0, :, :, 0].T
    assert (posed - folded.template.verts).norm(dim=-1).median() < 0.01
    assert (rest - folded.canonical_verts).norm(dim=-1).median() < 0.01
    plain = TemplateUV(folded.template, folded.template_uv, (64, 128))
    assert not plain.posed and torch.equal(plain.uv_image_to_canonical(uv), plain.uv_image_to_points(uv))


def test_the_same_network_scores_the_same_on_the_rest_and_the_folded_template(folded):
    """Evaluation is in the canonical frame: a posed template changes the rendering, not the scores."""
    cfg = get_config("smoke")
    rest = get_category("birds")
    a = build_model(cfg, rest.template, rest.template_uv, init_scale=0.7)
    b = build_model(cfg, folded.template, folded.template_uv, init_scale=0.7, canonical_verts=folded.canonical_verts)
    b.load_state_dict(a.state_dict(), strict=False)
    from csmlab.data.synthetic import make_dataset
    from csmlab.methods.csm.fit import stack_samples

    data = stack_samples(make_dataset("birds", 6, 32, seed=3, progress=False, views="cub", articulation="cub"))
    ma, mb = csm.evaluate(a, data, n_pairs=10), csm.evaluate(b, data, n_pairs=10)
    for key in ("transfer_pck", "surface_error", "sphere_angle_deg"):
        assert ma[key] == pytest.approx(mb[key], abs=1e-5), key
    out = b.surface(data["image"][:2])
    assert torch.equal(out["points"], b.template.uv_image_to_points(out["uv"]))
    assert torch.equal(out["canonical_points"], b.template.uv_image_to_canonical(out["uv"]))


def test_bad_template_pose_and_canonical_verts_raise():
    with pytest.raises(ValueError, match="template_pose"):
        load_template({"category": "birds", "template_pose": "spread"})
    with pytest.raises(ValueError, match="template_pose"):
        load_template({"category": "birds", "template": "cub_sfm", "template_pose": "folded"})
    cat = get_category("birds")
    with pytest.raises(ValueError, match="canonical_verts"):
        TemplateUV(cat.template, cat.template_uv, (8, 16), canonical_verts=torch.zeros(5, 3))
    with pytest.raises(ValueError, match="canonical_verts"):
        TemplateUV(Mesh(cat.template.verts, cat.template.faces), sphere_to_uv(cat.template.verts),
                   (8, 16), canonical_verts=cat.template.verts.long())
