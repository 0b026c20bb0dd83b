"""The one sample dict shared by synthetic and real datasets (docs/design.md, section 3).

Every reader returns a plain ``dict`` with a subset of these keys. A reader
returns only the fields its dataset really has; it never invents one.

Images are top-row-first (row 0 is the top of the picture), as matplotlib
and the datasets store them. Pixel coordinates are (x right, y down) with the
centre of pixel (i, j) at (j + 0.5, i + 0.5).

=====================  ==============  =====================================================
key                    shape, dtype    meaning
=====================  ==============  =====================================================
image                  [3,H,W] float   RGB in [0, 1]
mask                   [1,H,W] float   foreground in {0, 1} (or soft in [0, 1])
depth                  [1,H,W] float   camera depth of the visible surface; 0 off the mask
surface_xyz            [3,H,W] float   canonical template coordinates per pixel; 0 off mask
surface_uv             [2,H,W] float   sphere UV of the template point per pixel; 0 off mask
keypoints              [K,3] float     x, y in pixels, then visibility in {0, 1}
camera                 dict            {"scale": [], "quat": [4] (w,x,y,z), "trans": [2]}
deform                 [M] float       deformation-basis coefficients
articulation           [J] float       joint angles, radians
category               str             key into the category index (template, basis,
                                       parts, keypoint names, flip permutation)
index                  int             position of the sample in its dataset
=====================  ==============  =====================================================

Datasets may add dataset-specific keys (``bbox``, ``viewpoint``, ``class_id``...),
documented where they are produced.
"""

from __future__ import annotations

import torch

SAMPLE_KEYS = (
    "image", "mask", "depth", "surface_xyz", "surface_uv", "keypoints",
    "camera", "deform", "articulation", "category", "index",
)

_CHANNELS = {"image": 3, "mask": 1, "depth": 1, "surface_xyz": 3, "surface_uv": 2}


def validate_sample(sample: dict) -> dict:
    """Check the shapes and dtypes of the fields a sample has; return it unchanged.

    Raises ValueError naming the field, the expected form and what was received.
    """
    hw = None
    for key, ch in _CHANNELS.items():
        if key not in sample:
            continue
        x = sample[key]
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise ValueError(f"sample[{key!r}] must be a float tensor, got {type(x).__name__}"
                             f"{'' if not isinstance(x, torch.Tensor) else ' of ' + str(x.dtype)}")
        if x.dim() != 3 or x.shape[0] != ch:
            raise ValueError(f"sample[{key!r}] must have shape [{ch},H,W], got {list(x.shape)}")
        if hw is None:
            hw = tuple(x.shape[1:])
        elif tuple(x.shape[1:]) != hw:
            raise ValueError(f"sample[{key!r}] is {list(x.shape[1:])} but other fields are {list(hw)}")
    if "keypoints" in sample:
        k = sample["keypoints"]
        if not isinstance(k, torch.Tensor) or k.dim() != 2 or k.shape[1] != 3:
            raise ValueError(f"sample['keypoints'] must have shape [K,3], got "
                             f"{list(k.shape) if isinstance(k, torch.Tensor) else type(k).__name__}")
    if "camera" in sample:
        cam = sample["camera"]
        missing = {"scale", "quat", "trans"} - set(cam)
        if missing:
            raise ValueError(f"sample['camera'] lacks {sorted(missing)}")
    return sample
