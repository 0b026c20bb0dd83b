"""CUB-200-2011 for the TTP camera solve: ground-truth keypoints against CMR's SfM mean shape.

The "template" is CMR's SfM mean shape (15 keypoints, canonical frame), the 2D
points are the annotated keypoints of each crop, the visibility their flags,
and there is no deformation basis. The reference camera is CMR's SfM camera
(fitted by CMR to the same keypoints and mean shape), so the rotation error
measures how closely the batched TTP solve reproduces that fit.
"""

from __future__ import annotations

import torch

from ...geometry import quaternion_to_matrix

NEEDS = ("CUB-200-2011 with CMR's annotations under <data root>/cub. Prepare it with\n"
         "    python data_scripts/download.py cub\n"
         "    python data_scripts/prepare_cub.py\n"
         "(CMR's cachedir.tar.gz must first be placed in <data root>/downloads; prepare_cub.py says where to get it.)")


def cub_available(root=None) -> bool:
    """True when CUB images and CMR's annotations (with SfM cameras) are present under the data root."""
    from ...data.real.layout import cub_dir, find_cmr_dir

    return (cub_dir(root) / "images").is_dir() and find_cmr_dir(root) is not None


def cub_problem(root=None, split: str = "test", img_size: int = 256, limit: int | None = None,
                dtype: torch.dtype = torch.float64) -> dict:
    """The problem dict of :mod:`.problems` for CUB crops: keypoints, SfM mean shape, SfM cameras, boxes.

    Adds ``bbox`` [B,4] (x1, y1, x2, y2 crop pixels; PCK is normalised by its longer side)
    and ``keypoint_names``. Instances with fewer than 4 visible keypoints are dropped
    (a scaled-orthographic camera has 6 unknowns: 3 points do not determine it).
    """
    from ...data.real.cub import CUB_KEYPOINT_NAMES, CubDataset, sfm_mean_shape

    ds = CubDataset(root, split=split, annotations="cmr", img_size=img_size)
    if ds.sfm is None:
        raise ValueError(f"CMR's sfm/anno_{split}.mat is missing: the split has no SfM cameras")
    shape, faces = sfm_mean_shape(root)
    n = len(ds) if limit is None else min(limit, len(ds))
    kps, rots, scales, trans, boxes = [], [], [], [], []
    for i in range(n):
        sample = ds[i]
        if int((sample["keypoints"][:, 2] > 0).sum()) < 4:
            continue
        cam = sample["camera"]
        kps.append(sample["keypoints"])
        rots.append(quaternion_to_matrix(cam["quat"].double()))
        scales.append(cam["scale"].double())
        trans.append(cam["trans"].double())
        boxes.append(torch.as_tensor(sample["bbox"], dtype=torch.float64))
    if not kps:
        raise ValueError(f"no {split} image of CUB has 4 or more visible keypoints")
    kp = torch.stack(kps).to(dtype)
    return {"points": kp[..., :2], "visibility": (kp[..., 2] > 0).to(dtype), "template": shape.to(dtype),
            "basis": torch.zeros(0, shape.shape[0], 3, dtype=dtype), "faces": faces, "image_size": (img_size, img_size),
            "camera": {"rotation": torch.stack(rots).to(dtype), "scale": torch.stack(scales).to(dtype),
                       "trans": torch.stack(trans).to(dtype)},
            "bbox": torch.stack(boxes).to(dtype), "keypoint_names": CUB_KEYPOINT_NAMES}
