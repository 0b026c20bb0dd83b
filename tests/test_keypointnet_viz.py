"""Notebook 07's pictures: PCA colours, the pipeline diagram and the explorer (headless)."""

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from csmlab.viz import keypointnet as vkp  # noqa: E402


def test_pca_colours_in_unit_range_and_shared():
    embs = [torch.randn(50, 8), torch.randn(30, 8)]
    cols = vkp.pca_colours(embs)
    assert [c.shape for c in cols] == [(50, 3), (30, 3)]
    assert float(torch.cat(cols).min()) >= 0 and float(torch.cat(cols).max()) <= 1


def test_explorer_follows_its_controls():
    H = 16
    images, keypoints = torch.rand(2, 3, H, H), torch.rand(2, 3, 3) * H
    points, emb, means = torch.rand(2, 40, 3), torch.randn(2, 40, 4), torch.randn(3, 4)
    calls = []

    def project(b, step, k):
        calls.append((b, step, k))
        pix = torch.randint(-1, 40, (H, H))
        return pix, torch.ones(40, dtype=torch.bool), torch.tensor([3.0, 4.0]), torch.zeros(H, H)

    ex = vkp.KeypointExplorer(images, keypoints, points, emb, means, ["a", "b", "c"], project, n_steps=5, kp_name="b")
    assert calls[-1] == (0, 5, 1) and ex._scene_out.outputs and ex._image_out.outputs
    fig = ex.scene_figure(0, ex.similarity(0, 1))
    assert fig.data[0].marker.color.shape == (40,)
    ex.controls["keypoint"].value = "c"
    ex.controls["step"].value = 2
    assert calls[-1] == (0, 2, 2) and ex.state["keypoint"] == 2 and ex.state["step"] == 2
    assert ex._image_out.outputs[0]["data"]["image/png"]
    vkp.pipeline_diagram()
