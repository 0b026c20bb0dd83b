"""The notebook's exercise checks pass the right answers and catch the common wrong ones."""

import math

import pytest
import torch
import torch.nn.functional as F

from csmlab.methods.keypointnet.exercises import check_contrastive, check_soft_label
from csmlab.methods.keypointnet.losses import online_contrastive_loss, select_pairs
from csmlab.methods.keypointnet.viewpoint import soft_bins


def _pairs_loss(emb, labels, margin, negatives="hard", hinge="dist", square=True, reduce="mean"):
    pos, neg = select_pairs(emb, labels)
    if negatives != "hard":
        i, j = torch.triu_indices(len(labels), len(labels), 1)
        diff = labels[i] != labels[j]
        neg = torch.stack([i[diff], j[diff]], 1)
        if negatives == "easy":
            d = (emb[neg[:, 0]] - emb[neg[:, 1]]).pow(2).sum(1)
            neg = neg[d.topk(len(pos)).indices]
    dp = (emb[pos[:, 0]] - emb[pos[:, 1]]).pow(2).sum(1)
    dn2 = (emb[neg[:, 0]] - emb[neg[:, 1]]).pow(2).sum(1)
    dn = (dn2 + 1e-6).sqrt() if hinge == "dist" else dn2
    h = F.relu(margin - dn)
    loss = torch.cat([dp, h.pow(2) if square else h])
    return loss.mean() if reduce == "mean" else loss.sum()


def test_contrastive_check_passes_the_library_and_catches_wrong_answers():
    check_contrastive(online_contrastive_loss)
    wrong = [dict(negatives="all"), dict(negatives="easy"), dict(hinge="squared"), dict(square=False),
             dict(reduce="sum")]
    for kw in wrong:
        with pytest.raises(AssertionError):
            check_contrastive(lambda e, l, m, kw=kw: _pairs_loss(e, l, m, **kw))


def test_soft_label_check_catches_wrong_answers():
    w = 2 * math.pi / 24
    check_soft_label(lambda a: soft_bins(torch.tensor(a), 24, 2 * math.pi, True))

    def no_wrap(a):
        pos = (a % (2 * math.pi) - w / 2) / w
        out = torch.zeros(24)
        lo = math.floor(pos)
        if 0 <= lo < 24:
            out[lo] = 1 - (pos - lo)
        if 0 <= lo + 1 < 24:
            out[lo + 1] = pos - lo
        return out

    def centres_at_edges(a):
        return soft_bins(torch.tensor(a + w / 2), 24, 2 * math.pi, True)

    def one_hot(a):
        return F.one_hot(torch.tensor(int((a % (2 * math.pi)) // w)), 24).float()

    def no_negative_mapping(a):
        return soft_bins(torch.tensor(abs(a)), 24, 2 * math.pi, True)

    for fn in (no_wrap, centres_at_edges, one_hot, no_negative_mapping):
        with pytest.raises(AssertionError):
            check_soft_label(fn)
