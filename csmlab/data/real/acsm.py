"""ACSM's rigged templates and its PASCAL / ImageNet quadruped annotations (nileshkulkarni/acsm).

Templates (``cachedir.tar`` of docs/setup.md, under ``<data_root>/acsm/templates``)::

    cachedir/models/<category>/model.obj              the template mesh
    cachedir/models/<category>/parts.pkl              {"alpha": [V,P] part membership,
                                                       "nodes": [{"name", "id", "children", "rc", ...}]}
    cachedir/models/<category>/kp2vertex.txt          "<keypoint name> <vertex index>" per line
    cachedir/models/<category>/mirror_transforms.txt  "<part> <mirror part>" per line
    cachedir/models/<category>/{part_names.txt, hierarchy.xml, mean_shape.mat}

read as ``acsm/nnutils/model_utils.py`` does (``init_dpm``, ``load_active_parts``):
the part hierarchy is the ``children`` of the nodes, the joint centre of part i
is ``nodes[i]["rc"]`` (ACSM's code then zeroes the root's; it is returned as
stored), ``kp2vertex`` maps keypoint names to 0-based vertex indices (used
directly to index vertices there) and ``mirror_transforms`` gives the part
permutation under reflection. ``hierarchy.xml`` repeats the tree and is not
read; ``mean_shape.mat`` (UV-to-face maps) is CSM's and not read either.
(ACSM's loader takes the horse from ``models/horse2``; pass that name.)

Annotations (``cachedir.tar.gz``, under ``<data_root>/acsm/annotations``),
read as ``acsm/data/objects.py`` does: ``cachedir/pascal/data/<category>_{train,val}.mat``
(struct array ``images`` with ``rel_path``, ``bbox`` x1..y2, ``parts`` [3,K] and a
full-image ``mask``, MATLAB 1-based) and ``<category>_kps.mat`` (``kp_names``,
``kp_perm_inds`` 1-based); ``cachedir/imnet_quad/<synset>_<split>.mat`` has
images, boxes and masks but no keypoints (ACSM fills zeros; here there are none).
Images are PASCAL VOC 2012's ``JPEGImages`` (default: the copy inside PASCAL3D+)
and ImageNet's (``imagenet_dir``, ``<synset>/<file>``); neither archive holds them.
Samples are CMR's crop (:mod:`.crop`), as ACSM's loader crops them.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ._mat import as_list, loadmat
from ._obj import read_obj
from .crop import (
    crop_array,
    load_rgb,
    matlab_box_to_crop,
    matlab_box_to_indices,
    matlab_keypoints_to_crop,
    resize_gray,
    resize_rgb,
    square_crop_window,
)
from .layout import pascal3d_dir
from .layout_wave2 import acsm_dirs

# acsm/data/objects.py imnet_class2sysnet_list, for the categories the course uses
IMAGENET_SYNSETS = {"horse": ("n02381460",), "cow": ("n01887787",), "sheep": ("n10588074",),
                    "zebra": ("n02391049",), "giraffe": ("n02439033",), "elephant": ("n02504013",)}


def load_template(root: str | os.PathLike | None = None, category: str = "horse", *,
                  models_dir: str | os.PathLike | None = None) -> dict:
    """ACSM's rigged template of ``category``: mesh, parts, hierarchy, joint centres, keypoint vertices."""
    d = Path(models_dir) if models_dir is not None else acsm_dirs(root)[0] / "models"
    d = d / category
    if not d.is_dir():
        raise ValueError(f"no ACSM template for {category!r} at {d}; run data_scripts/prepare_acsm.py")
    verts, faces = read_obj(d / "model.obj")
    with open(d / "parts.pkl", "rb") as f:
        dpm = pickle.load(f, encoding="latin1")  # written by Python 2
    alpha = torch.as_tensor(np.asarray(dpm["alpha"], dtype=np.float32))
    nodes = list(dpm["nodes"])
    if alpha.shape != (len(verts), len(nodes)):
        raise ValueError(f"parts.pkl alpha is {list(alpha.shape)}, expected [V={len(verts)}, parts={len(nodes)}]")
    names = [str(n["name"]) for n in nodes]
    ids = [int(n.get("id", i)) for i, n in enumerate(nodes)]
    if ids != list(range(len(nodes))):
        raise ValueError(f"parts.pkl node ids must be 0..P-1 in order, got {ids}")
    parent = torch.full((len(nodes),), -1, dtype=torch.long)
    for i, n in enumerate(nodes):
        for c in n.get("children", []):
            if parent[int(c)] != -1:
                raise ValueError(f"part {names[int(c)]} has two parents in parts.pkl")
            parent[int(c)] = i
    kp = [ln.split() for ln in (d / "kp2vertex.txt").read_text().splitlines() if ln.strip()]
    mirror = dict(ln.split()[:2] for ln in (d / "mirror_transforms.txt").read_text().splitlines() if ln.strip())
    missing = [n for n in names if n not in mirror or mirror[n] not in names]
    if missing:
        raise ValueError(f"mirror_transforms.txt has no valid mirror part for {missing}")
    kp_vertex = torch.tensor([int(v) for _, v in kp], dtype=torch.long)
    if kp_vertex.numel() and (kp_vertex.min() < 0 or kp_vertex.max() >= len(verts)):
        raise ValueError(f"kp2vertex.txt names vertices outside 0..{len(verts) - 1}")
    return {"verts": verts, "faces": faces, "part_names": names, "part_weights": alpha,
            "part_of_vertex": alpha.argmax(1), "parent": parent,
            "joint_centres": torch.tensor(np.array([np.asarray(n["rc"], dtype=np.float32).reshape(3)
                                                    for n in nodes])),
            "part_flip": torch.tensor([names.index(mirror[n]) for n in names], dtype=torch.long),
            "keypoint_names": [k for k, _ in kp], "keypoint_vertex": kp_vertex, "category": category}


class AcsmQuadrupeds(Dataset):
    """ACSM's quadruped annotations of one category in the common sample dict.

    ``source="pascal"``: image, mask, keypoints [K,3] (ACSM's order, ``kp_names``),
    bbox, crop_box; ``source="imagenet"``: image, mask, bbox, crop_box (no keypoints).
    ``flip_perm`` is ACSM's ``kp_perm_inds`` (0-based) for PASCAL.
    """

    def __init__(self, root: str | os.PathLike | None = None, category: str = "horse", split: str = "train", *,
                 source: str = "pascal", img_size: int = 256, padding_frac: float = 0.05,
                 voc_dir: str | os.PathLike | None = None, imagenet_dir: str | os.PathLike | None = None,
                 annotations_dir: str | os.PathLike | None = None):
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        if source not in ("pascal", "imagenet"):
            raise ValueError(f"source must be 'pascal' or 'imagenet', got {source!r}")
        if not isinstance(img_size, int) or img_size <= 0:
            raise ValueError(f"img_size must be a positive int, got {img_size!r}")
        anno = Path(annotations_dir) if annotations_dir is not None else acsm_dirs(root)[1]
        self.category, self.split, self.source = category, split, source
        self.img_size, self.padding_frac = img_size, padding_frac
        self.keypoint_names, self.flip_perm = None, None
        if source == "pascal":
            self.img_dir = Path(voc_dir) if voc_dir is not None else \
                pascal3d_dir(root) / "PASCAL" / "VOCdevkit" / "VOC2012" / "JPEGImages"
            kps = loadmat(anno / "pascal" / "data" / f"{category}_kps.mat", "kp_names", "kp_perm_inds")
            self.keypoint_names = [str(n) for n in np.atleast_1d(kps["kp_names"])]
            self.flip_perm = torch.as_tensor(np.atleast_1d(kps["kp_perm_inds"]).astype(np.int64) - 1)
            paths = [(anno / "pascal" / "data" / f"{category}_{split}.mat", "")]
        else:
            if imagenet_dir is None:
                raise ValueError("imagenet_dir must name the folder holding ImageNet's <synset>/ image folders")
            if category not in IMAGENET_SYNSETS:
                raise ValueError(f"category must be one of {sorted(IMAGENET_SYNSETS)} for ImageNet, got {category!r}")
            self.img_dir = Path(imagenet_dir)
            paths = [(anno / "imnet_quad" / f"{s}_{split}.mat", s) for s in IMAGENET_SYNSETS[category]]
            paths = [(p, s) for p, s in paths if p.is_file()]  # ACSM skips absent synsets too
            if not paths:
                raise ValueError(f"no ImageNet annotations for {category} {split} under {anno / 'imnet_quad'}")
        self.records = []
        for path, synset in paths:
            for im in as_list(loadmat(path, "images")["images"]):
                rel = str(im.rel_path)
                has_parts = isinstance(getattr(im, "parts", None), np.ndarray) and np.asarray(im.parts).size > 0
                if synset and not has_parts and not rel.startswith(synset + "/"):
                    rel = f"{synset}/{rel}"  # acsm's standardize_annotation
                self.records.append({"rel_path": rel, "bbox": (im.bbox.x1, im.bbox.y1, im.bbox.x2, im.bbox.y2),
                                     "mask": im.mask, "parts": np.asarray(im.parts, float) if has_parts else None})

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        rec = self.records[index]
        img = load_rgb(self.img_dir / rec["rel_path"])
        x0, y0, size = square_crop_window(matlab_box_to_indices(rec["bbox"]), self.padding_frac)
        scale = self.img_size / size
        mask = np.asarray(rec["mask"], dtype=np.float32)
        if mask.shape != img.shape[:2]:
            raise ValueError(f"the mask of {rec['rel_path']} is {list(mask.shape)}, the image {list(img.shape[:2])}")
        sample = {"image": resize_rgb(crop_array(img, x0, y0, size, 255), self.img_size),
                  "mask": resize_gray(crop_array(mask, x0, y0, size, 0.0), self.img_size)}
        if self.source == "pascal" and rec["parts"] is not None:
            sample["keypoints"] = matlab_keypoints_to_crop(rec["parts"].T, x0, y0, scale)
        sample.update({"category": self.category, "index": index,
                       "bbox": matlab_box_to_crop(rec["bbox"], x0, y0, scale),
                       "crop_box": torch.tensor([x0, y0, x0 + size, y0 + size], dtype=torch.float32),
                       "rel_path": rec["rel_path"], "source": self.source})
        return sample
