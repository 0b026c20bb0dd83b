"""Point networks of KeypointNet's benchmark and SemanticTransfer, written here: PointNet and DGCNN.

Both map a cloud [B,N,3] to per-point features [B,N,C]; :class:`KeypointModel`
puts two heads on either: a 2-class **saliency** head (KeypointNet's saliency
task, per-point cross-entropy) and a dense **embedding** head (SemanticTransfer's
``PointNetDenseCls`` with ``emb_dims = 256``, trained with the contrastive loss).

Layer names follow the official code (``feat.stn``, ``feat.fstn``, ``conv1``...);
``width`` scales every hidden width (1.0 is the official size: 64-128-1024 for
PointNet, 64-64-128-256 and a 128-d global code for DGCNN), so that the CPU
presets can train smaller copies.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from csmlab.data.kpnet_layout import check_cloud


def _w(c: int, width: float) -> int:
    return max(8, int(round(c * width)))


def _bn(bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm over every leading dimension of a channels-last tensor [..., C]."""
    return bn(x.reshape(-1, x.shape[-1])).reshape(x.shape)


# The official 1x1 ``Conv1d`` layers are written as ``nn.Linear`` on channels-last [B,N,C] tensors: the same
# map, several times faster on a CPU (a matrix product, and BatchNorm on a contiguous [B*N,C]).

class STNkd(nn.Module):
    """PointNet's transform net: predicts a k x k matrix (identity plus a learned residual)."""

    def __init__(self, k: int = 64, width: float = 1.0):
        super().__init__()
        c1, c2, c3, f1, f2 = (_w(c, width) for c in (64, 128, 1024, 512, 256))
        self.conv1, self.conv2, self.conv3 = nn.Linear(k, c1), nn.Linear(c1, c2), nn.Linear(c2, c3)
        self.fc1, self.fc2, self.fc3 = nn.Linear(c3, f1), nn.Linear(f1, f2), nn.Linear(f2, k * k)
        self.bn1, self.bn2, self.bn3 = nn.BatchNorm1d(c1), nn.BatchNorm1d(c2), nn.BatchNorm1d(c3)
        self.bn4, self.bn5 = nn.BatchNorm1d(f1), nn.BatchNorm1d(f2)
        self.k = k
        nn.init.zeros_(self.fc3.weight)  # start at the identity transform
        nn.init.zeros_(self.fc3.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B,N,k] -> [B,k,k]."""
        x = F.relu(_bn(self.bn1, self.conv1(x)))
        x = F.relu(_bn(self.bn2, self.conv2(x)))
        x = F.relu(_bn(self.bn3, self.conv3(x))).max(dim=1).values
        x = F.relu(self.bn4(self.fc1(x)))
        x = F.relu(self.bn5(self.fc2(x)))
        eye = torch.eye(self.k, dtype=x.dtype, device=x.device).flatten()
        return (self.fc3(x) + eye).view(-1, self.k, self.k)


class PointNetFeat(nn.Module):
    """PointNet's per-point features: input transform, MLP, feature transform, global max-pool, concat."""

    def __init__(self, width: float = 1.0, feature_transform: bool = True):
        super().__init__()
        c1, c2, c3 = _w(64, width), _w(128, width), _w(1024, width)
        self.stn = STNkd(3, width)
        self.conv1, self.conv2, self.conv3 = nn.Linear(3, c1), nn.Linear(c1, c2), nn.Linear(c2, c3)
        self.bn1, self.bn2, self.bn3 = nn.BatchNorm1d(c1), nn.BatchNorm1d(c2), nn.BatchNorm1d(c3)
        self.fstn = STNkd(c1, width) if feature_transform else None
        self.out_channels = c1 + c3

    def forward(self, x: torch.Tensor):
        """x [B,N,3] -> ([B,N,C] features, [B,c1,c1] feature transform or None)."""
        n = x.shape[1]
        x = torch.bmm(x, self.stn(x))                  # the official x^T @ trans
        x = F.relu(_bn(self.bn1, self.conv1(x)))
        trans_feat = None
        if self.fstn is not None:
            trans_feat = self.fstn(x)
            x = torch.bmm(x, trans_feat)
        point_feat = x
        x = F.relu(_bn(self.bn2, self.conv2(x)))
        g = _bn(self.bn3, self.conv3(x)).max(dim=1, keepdim=True).values
        return torch.cat([g.expand(-1, n, -1), point_feat], -1), trans_feat


class PointNet(nn.Module):
    """PointNet backbone of ``PointNetDenseCls``: features [B,N,C] after the 512-256 per-point MLP."""

    def __init__(self, width: float = 1.0, feature_transform: bool = True):
        super().__init__()
        self.feat = PointNetFeat(width, feature_transform)
        c1, c2 = _w(512, width), _w(256, width)
        self.conv1, self.conv2 = nn.Linear(self.feat.out_channels, c1), nn.Linear(c1, c2)
        self.bn1, self.bn2 = nn.BatchNorm1d(c1), nn.BatchNorm1d(c2)
        self.out_channels = c2

    def forward(self, x: torch.Tensor):
        x, trans_feat = self.feat(x)
        x = F.relu(_bn(self.bn1, self.conv1(x)))
        return F.relu(_bn(self.bn2, self.conv2(x))), trans_feat


def knn(x: torch.Tensor, k: int) -> torch.Tensor:
    """[B,N,C] -> [B,N,k] indices of the k nearest points (by feature distance; the point itself included)."""
    return torch.cdist(x, x).topk(k, dim=-1, largest=False).indices


def edge_features(x: torch.Tensor, k: int) -> torch.Tensor:
    """DGCNN's EdgeConv input: [B,N,C] -> [B,N,k,2C] of (neighbour - centre, centre)."""
    B, N, C = x.shape
    nb = x[torch.arange(B, device=x.device)[:, None, None], knn(x, k)]   # [B,N,k,C]
    centre = x[:, :, None].expand(-1, -1, k, -1)
    return torch.cat([nb - centre, centre], -1)


class DGCNN(nn.Module):
    """DGCNN (Wang et al. 2019) as in KeypointNet's benchmark: 4 EdgeConvs, global max+avg code, concat."""

    def __init__(self, width: float = 1.0, k: int = 20, emb_dims: int = 128):
        super().__init__()
        self.k = k
        c = [_w(v, width) for v in (64, 64, 128, 256)]
        ins = [6, 2 * c[0], 2 * c[1], 2 * c[2]]
        self.conv1, self.conv2, self.conv3, self.conv4 = (nn.Linear(i, o, bias=False) for i, o in zip(ins, c))
        self.bn1, self.bn2, self.bn3, self.bn4 = (nn.BatchNorm1d(o) for o in c)
        e, f1, f2 = _w(emb_dims, width), _w(512, width), _w(256, width)
        self.conv5, self.bn5 = nn.Linear(sum(c), e, bias=False), nn.BatchNorm1d(e)
        self.linear1, self.bn6 = nn.Linear(2 * e, f1, bias=False), nn.BatchNorm1d(f1)
        self.linear2, self.bn7 = nn.Linear(f1, f2), nn.BatchNorm1d(f2)
        self.out_channels = sum(c) + f2

    def forward(self, x: torch.Tensor):
        """x [B,N,3] -> ([B,N,C], None)."""
        feats = []
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3),
                         (self.conv4, self.bn4)):
            x = F.leaky_relu(_bn(bn, conv(edge_features(x, self.k))), 0.2).max(dim=2).values
            feats.append(x)
        point_feat = torch.cat(feats, -1)
        g = F.leaky_relu(_bn(self.bn5, self.conv5(point_feat)), 0.2)
        g = torch.cat([g.max(dim=1).values, g.mean(dim=1)], -1)
        g = F.leaky_relu(self.bn6(self.linear1(g)), 0.2)
        g = F.leaky_relu(self.bn7(self.linear2(g)), 0.2)
        return torch.cat([point_feat, g[:, None].expand(-1, point_feat.shape[1], -1)], -1), None


class KeypointModel(nn.Module):
    """A point backbone with a saliency head ([B,N,2] logits) and an embedding head ([B,N,emb_dim])."""

    def __init__(self, backbone: str = "pointnet", emb_dim: int = 256, width: float = 1.0, k: int = 20):
        super().__init__()
        if backbone not in ("pointnet", "dgcnn"):
            raise ValueError(f"backbone must be 'pointnet' or 'dgcnn', got {backbone!r}")
        self.backbone_name, self.emb_dim = backbone, emb_dim
        self.backbone = PointNet(width) if backbone == "pointnet" else DGCNN(width, k)
        c = self.backbone.out_channels
        self.saliency = nn.Linear(c, 2)
        # SemanticTransfer ends the embedding head with a BatchNorm (``bn3``): embeddings are unnormalised.
        self.embedding, self.embedding_bn = nn.Linear(c, emb_dim), nn.BatchNorm1d(emb_dim)

    def forward(self, points: torch.Tensor) -> dict:
        # No per-cloud normalisation (SemanticTransfer's ``normalize_pc`` centres each ShapeNet model and divides
        # by its extent): the birds share one canonical frame and scale, and where a point sits in that frame is
        # a semantic cue. A DGCNN trained on normalised clouds scored lower geodesic PCK in a side-by-side run.
        check_cloud(points, "points")
        if points.dim() != 3:
            raise ValueError(f"points must be a batch [B,N,3], got {list(points.shape)}")
        f, trans_feat = self.backbone(points)
        return {"saliency": self.saliency(f), "embedding": _bn(self.embedding_bn, self.embedding(f)),
                "trans_feat": trans_feat}
