"""Losses: SemanticTransfer's online contrastive loss, the saliency cross-entropy, PointNet's regulariser.

Online contrastive loss (``train_emb.py``: ``OnlineContrastiveLoss(1., HardNegativePairSelector())``,
after adambielski/siamese-triplet). For embeddings h_i with labels y_i (the
semantic id of each keypoint of each cloud in the batch):

- positives: every pair i < j with y_i = y_j, loss ``||h_i - h_j||^2``;
- negatives: among the pairs with y_i != y_j, the ``P`` with the smallest distance
  (``P`` = the number of positive pairs: "hard negatives as many as positives"),
  loss ``max(0, margin - sqrt(||h_i - h_j||^2 + 1e-6))^2``;
- the loss is the mean over the 2P selected pairs.

When a batch has no positive pair (every label once) all negatives are used,
so the loss stays defined (the official code would average an empty set).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pair_distances(x: torch.Tensor) -> torch.Tensor:
    """[M,D] -> [M,M] squared Euclidean distances (the official ``pdist``)."""
    sq = (x * x).sum(1)
    return (sq[:, None] + sq[None, :] - 2 * x @ x.T).clamp_min(0)


def select_pairs(embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(positive pairs [P,2], hardest negative pairs [P,2]) as in ``HardNegativePairSelector``."""
    M = len(labels)
    i, j = torch.triu_indices(M, M, offset=1, device=labels.device)
    same = labels[i] == labels[j]
    pos = torch.stack([i[same], j[same]], 1)
    neg = torch.stack([i[~same], j[~same]], 1)
    if len(pos) and len(neg) > len(pos):
        d = pair_distances(embeddings.detach())[neg[:, 0], neg[:, 1]]
        neg = neg[torch.topk(d, len(pos), largest=False).indices]
    return pos, neg


def online_contrastive_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Mean contrastive loss of positive pairs and as many hard negatives (see the module docstring)."""
    if not isinstance(embeddings, torch.Tensor) or embeddings.dim() != 2 or embeddings.shape[0] < 2:
        raise ValueError(f"embeddings must be a float tensor [M,D] with M >= 2, got "
                         f"{list(embeddings.shape) if isinstance(embeddings, torch.Tensor) else type(embeddings)}")
    if not isinstance(labels, torch.Tensor) or labels.shape != embeddings.shape[:1] or labels.is_floating_point():
        raise ValueError(f"labels must be an integer tensor [M] with M = {embeddings.shape[0]}, got "
                         f"{list(labels.shape) if isinstance(labels, torch.Tensor) else type(labels)}")
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    pos, neg = select_pairs(embeddings, labels)
    pos_loss = (embeddings[pos[:, 0]] - embeddings[pos[:, 1]]).pow(2).sum(1)
    neg_dist = ((embeddings[neg[:, 0]] - embeddings[neg[:, 1]]).pow(2).sum(1) + 1e-6).sqrt()
    neg_loss = F.relu(margin - neg_dist).pow(2)
    return torch.cat([pos_loss, neg_loss]).mean()


def keypoint_embeddings(embedding: torch.Tensor, table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather the embeddings of annotated keypoints: [B,N,D] and a [B,K] index table (-1 absent) -> ([M,D], [M])."""
    b, k = torch.nonzero(table >= 0, as_tuple=True)
    return embedding[b, table[b, k]], k


def saliency_loss(logits: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Per-point 2-class cross-entropy: keypoint rows are class 1 (KeypointNet's ``SaliencyCriterion``)."""
    target = torch.zeros(logits.shape[:2], dtype=torch.long, device=logits.device)
    b, k = torch.nonzero(table >= 0, as_tuple=True)
    target[b, table[b, k]] = 1
    return F.cross_entropy(logits.reshape(-1, 2), target.reshape(-1))


def feature_transform_regularizer(trans: torch.Tensor) -> torch.Tensor:
    """PointNet's ``mean ||A A^T - I||_F`` that keeps the feature transform near orthogonal."""
    eye = torch.eye(trans.shape[1], dtype=trans.dtype, device=trans.device)
    return (trans @ trans.transpose(1, 2) - eye).flatten(1).norm(dim=1).mean()
