"""KAP (keypoint average precision, Mariotti et al. 2024) and its average precision, on hand-built cases."""

import pytest
import torch

from csmlab.metrics import average_precision, kap, kap_entries, pck


def test_average_precision_matches_sklearn_semantics():
    # sklearn: thresholds 0.9, 0.8, 0.7 (two tied), 0.1 -> AP = 1/3 * 1 + 0 * 1/2 + 2/3 * 3/4 = 5/6
    labels = torch.tensor([1.0, 0, 1, 1, 0])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.7, 0.1])
    assert float(average_precision(labels, scores)) == pytest.approx(5 / 6)
    assert float(average_precision(torch.tensor([1.0, 1, 0]), torch.tensor([0.9, 0.8, 0.1]))) == pytest.approx(1.0)
    # a tie between a positive and a negative counts as one operating point with precision 1/2
    assert float(average_precision(torch.tensor([1.0, 0]), torch.tensor([0.5, 0.5]))) == pytest.approx(0.5)
    assert torch.isnan(average_precision(torch.tensor([0.0, 0]), torch.tensor([0.3, 0.2])))


def _grid(n=8):
    ys, xs = torch.meshgrid(torch.arange(n) + 0.5, torch.arange(n) + 0.5, indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], -1).double() * 4        # candidate centres, 32 px image


def _peaked(cands, points, height):
    """Similarity of each keypoint: ``height`` at the candidate nearest ``points``, falling off with distance."""
    d = torch.cdist(points, cands)
    return height[:, None] * torch.exp(-d / 4.0)


def test_perfect_matcher_gives_one_and_mirror_confidence_lowers_kap_not_pck():
    cands = _grid()
    tgt = torch.tensor([[6.0, 6.0], [26.0, 6.0], [6.0, 26.0]], dtype=torch.float64)
    mirror = torch.tensor([[26.0, 26.0], [26.0, 26.0], [26.0, 26.0]], dtype=torch.float64)
    visible = torch.tensor([1, 1, 0])
    # perfect: visible keypoints peak at their target, the occluded one is matched with low confidence
    perfect = _peaked(cands, torch.where(visible[:, None] > 0, tgt, mirror), torch.tensor([1.0, 1.0, 0.2],
                                                                                         dtype=torch.float64))
    # overconfident: same argmax everywhere (same PCK), but the occluded keypoint's mirror twin is matched
    # with full confidence
    confident = _peaked(cands, torch.where(visible[:, None] > 0, tgt, mirror), torch.tensor([1.0, 1.0, 1.0],
                                                                                           dtype=torch.float64))
    radius = 0.1 * 32
    kap_perfect = kap([kap_entries(perfect, cands, tgt, visible, radius)])
    kap_confident = kap([kap_entries(confident, cands, tgt, visible, radius)])
    assert float(kap_perfect) == pytest.approx(1.0)
    assert float(kap_confident) < float(kap_perfect) - 0.1

    def pck_of(sim):
        pred = cands[sim.argmax(1)]
        return float(pck(pred, tgt, visible, 0.1, 32.0))
    assert pck_of(perfect) == pck_of(confident) == 1.0


def test_kap_entries_counts_one_negative_for_invisible_keypoints():
    cands = _grid()
    tgt = torch.tensor([[6.0, 6.0], [0.0, 0.0]], dtype=torch.float64)
    sim = _peaked(cands, tgt, torch.tensor([1.0, 1.0], dtype=torch.float64))
    scores, labels = kap_entries(sim, cands, tgt, torch.tensor([True, False]), 3.2)
    assert labels.tolist() == [1.0, 0.0, 0.0]
    assert scores.shape == (3,) and float(scores.max()) == pytest.approx(1.0)   # min-max normalised over the pair


def test_kap_bad_input():
    cands = _grid()
    with pytest.raises(ValueError, match="similarity"):
        kap_entries(torch.zeros(2, 5, dtype=torch.float64), cands, torch.zeros(2, 2, dtype=torch.float64),
                    torch.ones(2), 3.0)
    with pytest.raises(ValueError, match="radius"):
        kap_entries(torch.zeros(2, 64, dtype=torch.float64), cands, torch.zeros(2, 2, dtype=torch.float64),
                    torch.ones(2), 0.0)
    with pytest.raises(ValueError, match="target_visible"):
        kap_entries(torch.zeros(2, 64, dtype=torch.float64), cands, torch.zeros(2, 2, dtype=torch.float64),
                    torch.tensor([0.5, 1.0]), 3.0)
    with pytest.raises(ValueError, match="entries"):
        kap([])
