"""The benchmark split and the viewpoint/articulation priors of the synthetic birds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from csmlab.data.synthetic import benchmark_split, get_category, make_dataset, mixed_rung_dataset, rung_mix, rung_priors
from csmlab.data.synthetic.benchmark import BENCHMARK_SEED, BENCHMARK_SIZE
from csmlab.data.synthetic.birds_priors import sample_articulation, sample_views, view_prior_summary
from csmlab.data.synthetic.birds_scenes import sample_scenes


def test_view_priors_match_their_documented_shares():
    full, cub = view_prior_summary("full", 20_000), view_prior_summary("cub", 20_000)
    assert math.isclose(full["back"], 0.25, abs_tol=0.02) and math.isclose(full["side"], 0.5, abs_tol=0.02)
    assert cub["side"] > 0.8 and cub["behind_150"] < 0.02 and cub["back"] < cub["front"] / 2
    g = torch.Generator().manual_seed(0)
    v = sample_views(g, 5000, "cub").rad2deg()
    assert (v[:, 0] > 0).float().mean().sub(0.5).abs() < 0.03           # both sides of the bird
    assert v[:, 1].abs().max() <= 30 + 1e-4 and v[:, 2].abs().max() <= 10 + 1e-4


def test_articulation_priors_stay_in_range_and_fold_the_wings():
    cat = get_category("birds")
    g = torch.Generator().manual_seed(0)
    rest = sample_articulation(cat, g, 10, "rest")
    assert torch.equal(rest, torch.zeros(10, cat.num_joints))
    for prior in ("cub", "full"):
        a = sample_articulation(cat, g, 4000, prior)
        assert (a >= cat.articulation_low - 1e-6).all() and (a <= cat.articulation_high + 1e-6).all()
    cub = sample_articulation(cat, g, 4000, "cub").rad2deg()
    sweep = cub[:, cat.joint_names.index("left_wing_sweep")]
    assert 0.8 < (sweep > 70).float().mean() < 0.9                      # CUB_FOLDED_FRACTION = 0.85
    with pytest.raises(ValueError, match="articulation must be one of"):
        sample_articulation(cat, g, 3, "folded")


def test_priors_change_only_pose_and_view():
    cat = get_category("birds")
    a, b = sample_scenes(cat, 20, 4), sample_scenes(cat, 20, 4, views="cub", articulation="cub")
    for key in ("deform", "scale", "trans", "ambient", "app_palette", "bg_angle"):
        assert torch.equal(a[key], b[key]), key
    assert not torch.equal(a["viewpoint"], b["viewpoint"]) and not torch.equal(a["articulation"], b["articulation"])


def test_make_dataset_priors_are_cached_apart(tmp_path):
    a = make_dataset("birds", 3, 32, seed=1, root=tmp_path, progress=False)
    b = make_dataset("birds", 3, 32, seed=1, root=tmp_path, progress=False, views="cub", articulation="rest")
    assert a.path != b.path and b.path.exists() and "-cub-rest-" in b.path.name
    assert torch.equal(b.batch([0, 1, 2])["articulation"], torch.zeros(3, 7))
    with pytest.raises(ValueError, match="views must be one of"):
        make_dataset("birds", 3, 32, views="side", cache=False, progress=False)
    with pytest.raises(ValueError, match="priors of the birds only"):
        make_dataset("faces", 3, 32, views="cub", cache=False, progress=False)


def test_benchmark_split_is_fixed_and_shares_birds_across_rungs(tmp_path):
    assert rung_priors("B") == {"views": "cub", "articulation": "cub"}
    with pytest.raises(ValueError, match="rung must be one of"):
        rung_priors("D")
    with pytest.raises(ValueError, match="category must be 'birds'"):
        benchmark_split("faces")
    split = {r: benchmark_split("birds", r, 32, root=tmp_path) for r in "ABC"}
    for rung, ds in split.items():
        assert len(ds) == BENCHMARK_SIZE and ds.seed == BENCHMARK_SEED and ds.rung == rung
        assert ds.category is get_category("birds") and ds.path.exists()
    b = {r: ds.batch(range(BENCHMARK_SIZE)) for r, ds in split.items()}
    assert torch.equal(b["A"]["deform"], b["C"]["deform"])                # the same birds ...
    assert torch.equal(b["A"]["viewpoint"], b["B"]["viewpoint"])          # A and B share the CUB-like views
    assert not torch.equal(b["B"]["articulation"], b["C"]["articulation"])  # ... in other poses
    again = benchmark_split("birds", "B", 32, root=tmp_path)
    assert torch.equal(again.batch([5])["image"], b["B"]["image"][5:6])


def test_prior_histograms_draw_every_prior():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from csmlab.viz.synthetic import prior_histograms

    cat = get_category("birds")
    fig = prior_histograms(cat, n=200)
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titled[:2] == ["azimuth (deg)", "elevation (deg)"] and len(titled) == 2 + cat.num_joints
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels == ['views="full"', 'views="cub"']
    plt.close(fig)
    with pytest.raises(ValueError, match="category"):
        prior_histograms(get_category("faces"))


def test_csm_splits_train_on_the_rung_and_hold_out_its_benchmark_split(tmp_path):
    from csmlab.methods import csm
    from csmlab.methods.csm.experiments import make_splits

    train, val = make_splits(csm.get_config("smoke", n_train=4, rung="A"), root=tmp_path, progress=False)
    bench = benchmark_split("birds", "A", 32, root=tmp_path).batch(range(BENCHMARK_SIZE))
    assert train["image"].shape == (4, 3, 32, 32) and torch.equal(val["image"], bench["image"])
    rest = make_dataset("birds", 4, 32, seed=0, root=tmp_path, progress=False, views="cub", articulation="rest")
    assert torch.equal(train["image"], rest.batch(range(4))["image"])      # the rung's priors, the config's seed
    _, val_none = make_splits(csm.get_config("smoke", n_train=4, n_val=5, rung=None), root=tmp_path, progress=False)
    assert val_none["image"].shape[0] == 5


def test_mixed_rung_dataset_draws_equal_parts_and_keeps_a_single_rung_unchanged(tmp_path):
    mixed = mixed_rung_dataset("birds", 5, 32, "B+C", seed=7, root=tmp_path, progress=False, cache=False)
    b = make_dataset("birds", 3, 32, seed=7, root=tmp_path, progress=False, cache=False, **rung_priors("B"))
    c = make_dataset("birds", 2, 32, seed=1007, root=tmp_path, progress=False, cache=False, **rung_priors("C"))
    assert len(mixed) == 5 and (mixed.views, mixed.articulation) == ("cub+full", "cub+full")
    assert np.array_equal(mixed.arrays["image"][:3], b.arrays["image"])    # part 0: rung B's birds, seed unchanged
    assert np.array_equal(mixed.arrays["image"][3:], c.arrays["image"])    # part 1: seed + 1000
    single = mixed_rung_dataset("birds", 2, 32, "B", seed=7, root=tmp_path, progress=False, cache=False)
    assert np.array_equal(single.arrays["image"], b.arrays["image"][:2])
    assert single.views == "cub"


@pytest.mark.parametrize("rung", ["B+Z", "", "b", "B+"])
def test_rung_mix_names_the_whole_bad_value(rung):
    with pytest.raises(ValueError, match=f"got {rung!r}".replace("+", r"\+")):
        rung_mix(rung)
