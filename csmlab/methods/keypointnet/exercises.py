"""Checks for notebook 07's exercises: each compares an answer with the library on inputs that expose
the common wrong answers (listed in each docstring), and raises AssertionError with a hint."""

from __future__ import annotations

import math

import torch

from .losses import online_contrastive_loss
from .viewpoint import N_AZIMUTH, soft_bins

# A toy batch where the common mistakes give different numbers: 3 labels, one loose positive pair,
# negatives inside and outside the margin, more negative pairs than positive ones.
TOY_EMBEDDINGS = torch.tensor([[0.0, 0.0], [0.3, 0.0], [0.5, 0.4], [0.6, 0.4], [2.0, 0.0], [0.2, 0.9]])
TOY_LABELS = torch.tensor([0, 0, 1, 1, 2, 2])


def check_contrastive(fn) -> float:
    """``fn(embeddings [M,D], labels [M], margin) -> scalar``: SemanticTransfer's online contrastive loss.

    Wrong answers it catches: every negative pair instead of the hardest P; the hinge on the squared
    distance; the hinge not squared; a sum instead of the mean; the easiest negatives instead of the hardest.
    """
    for margin in (1.0, 0.5):
        want = float(online_contrastive_loss(TOY_EMBEDDINGS, TOY_LABELS, margin))
        got = float(fn(TOY_EMBEDDINGS.clone(), TOY_LABELS.clone(), margin))
        assert math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-6), (
            f"margin {margin}: expected {want:.5f}, got {got:.5f}. Positives: every same-label pair, loss d^2; "
            f"negatives: the P closest different-label pairs (P = number of positives), loss max(0, m - d)^2; "
            f"then the mean over the 2P pairs.")
    return want


def check_soft_label(fn) -> None:
    """``fn(azimuth in radians) -> [24]`` soft label. Wrong answers it catches: no wrap-around (weight lost
    or sent to a 25th bin), bin centres at i*w instead of (i + 1/2)*w, one-hot labels, negative angles not
    mapped into [0, 2 pi)."""
    w = 2 * math.pi / N_AZIMUTH
    for a in (0.0, -w / 4, 2 * math.pi - w / 10, 0.5 * w, 3.2 * w, -math.pi):
        want = soft_bins(torch.tensor(a), N_AZIMUTH, 2 * math.pi, circular=True)
        got = torch.as_tensor(fn(a), dtype=want.dtype)
        assert got.shape == want.shape, f"the label must have {N_AZIMUTH} bins, got shape {list(got.shape)}"
        assert torch.allclose(got, want, atol=1e-5), (
            f"angle {a:.4f} rad: expected weights {dict((i, round(float(v), 3)) for i, v in enumerate(want) if v)}, "
            f"got {dict((i, round(float(v), 3)) for i, v in enumerate(got) if v)}. Bin i is centred at (i + 1/2) w "
            f"and bin 23 wraps to bin 0.")
