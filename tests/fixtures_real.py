"""Tiny fixture trees and archives in the official layouts of CUB (+ CMR), PASCAL3D+ and synface.

Image files hold PNG data even where the official name ends in .jpg: PIL reads
by content, and lossless pixels let tests compare crops exactly.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

# CMR's SfM frame: x = the bird's left, y = towards the tail, z = up. Mirror-symmetric about x = 0.
CMR_S = np.array([
    [0, 0.10, 0.30], [0, -0.60, 0.05], [0, 0.10, -0.35], [0, -0.20, -0.15], [0, -0.45, 0.27],
    [0, -0.55, 0.15], [0.05, -0.47, 0.13], [0.25, 0.60, -0.46], [0.35, 0.30, 0.10], [0, -0.20, 0.25],
    [-0.05, -0.47, 0.13], [-0.25, 0.60, -0.46], [-0.35, 0.30, 0.10], [0, 1.30, 0.27], [0, -0.42, -0.05],
]).T  # [3,15]
CONV_TRI = np.array([[1, 2, 3], [1, 3, 14], [2, 7, 11]], dtype=np.float64)  # MATLAB 1-based


def rotation(axis, angle) -> np.ndarray:
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


def random_image(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def save_png(arr: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="PNG")


def struct_array(records: list[dict]) -> np.ndarray:
    """A 1xN MATLAB struct array for scipy.io.savemat (dict values become nested structs)."""
    fields = list(records[0])
    arr = np.empty((1, len(records)), dtype=[(f, object) for f in fields])
    for i, rec in enumerate(records):
        for f in fields:
            arr[0, i][f] = rec[f]
    return arr


# image id -> (rel_path, height, width, grey?, bbox x y w h (CUB, 1-based), is_train, class, camera)
CUB_IMAGES = {
    1: ("001.Black_footed_Albatross/Black_Footed_Albatross_0001_1.jpg", 30, 40, False, (11, 6, 20, 10), 1, 1,
        dict(axis=(0.2, 1.0, 0.3), angle=0.7, scale=8.0, beak_at=(21.0, 11.0))),
    2: ("001.Black_footed_Albatross/Black_Footed_Albatross_0002_2.jpg", 48, 36, False, (5, 9, 25, 30), 0, 1,
        dict(axis=(1.0, 0.1, 0.0), angle=2.0, scale=12.0, beak_at=(18.0, 20.0))),
    3: ("002.Laysan_Albatross/Laysan_Albatross_0003_3.jpg", 32, 50, True, (14, 4, 30, 25), 1, 2,
        dict(axis=(0.0, 0.3, 1.0), angle=-1.2, scale=10.0, beak_at=(30.0, 12.0))),
}
INVISIBLE = {1: (3, 11), 2: (0,), 3: (6, 7, 8)}  # 0-based part indices hidden per image


def cub_parts(img_id: int) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """(parts [3,15] MATLAB x, y, visible; rot; scale; trans [2]) consistent with CMR_S."""
    cam = CUB_IMAGES[img_id][7]
    R = rotation(cam["axis"], cam["angle"])
    proj = cam["scale"] * (R @ CMR_S)[:2]
    trans = np.asarray(cam["beak_at"]) - proj[:, 1]  # the beak (part 2) lands exactly on beak_at
    parts = np.vstack([proj + trans[:, None], np.ones((1, 15))])
    parts[:, list(INVISIBLE[img_id])] = 0.0
    return parts, R, cam["scale"], trans


def cub_image(img_id: int) -> np.ndarray:
    _, h, w, grey, *_ = CUB_IMAGES[img_id]
    img = random_image(h, w, img_id)
    return np.repeat(img[..., :1], 3, axis=2) if grey else img


def cub_mask(img_id: int) -> np.ndarray:
    _, h, w, _, (x, y, bw, bh), *_ = CUB_IMAGES[img_id]
    mask = np.zeros((h, w), dtype=bool)
    mask[y - 1:y - 1 + bh, x - 1:x - 1 + bw] = True
    return mask


def build_cub(base: Path) -> Path:
    """``base/CUB_200_2011`` (+ ``base/attributes.txt``) in CUB's layout; returns the CUB folder."""
    d = base / "CUB_200_2011"
    images, boxes, split, labels, locs = [], [], [], [], []
    for img_id, (rel, _, _, grey, (x, y, bw, bh), train, cls, _) in CUB_IMAGES.items():
        img = cub_image(img_id)
        (d / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[..., 0] if grey else img).save(d / "images" / rel, format="PNG")
        images.append(f"{img_id} {rel}")
        boxes.append(f"{img_id} {x:.1f} {y:.1f} {bw:.1f} {bh:.1f}")
        split.append(f"{img_id} {train}")
        labels.append(f"{img_id} {cls}")
        parts = cub_parts(img_id)[0]
        locs += [f"{img_id} {k + 1} {float(parts[0, k])!r} {float(parts[1, k])!r} {int(parts[2, k])}"
                 for k in range(15)]
    (d / "parts").mkdir(parents=True, exist_ok=True)
    for name, lines in (("images.txt", images), ("bounding_boxes.txt", boxes), ("train_test_split.txt", split),
                        ("image_class_labels.txt", labels), ("parts/part_locs.txt", locs),
                        ("classes.txt", ["1 001.Black_footed_Albatross", "2 002.Laysan_Albatross"])):
        (d / name).write_text("\n".join(lines) + "\n")
    (d / "parts" / "parts.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(
        ["back", "beak", "belly", "breast", "crown", "forehead", "left eye", "left leg", "left wing", "nape",
         "right eye", "right leg", "right wing", "tail", "throat"])))
    (d / "README").write_text("fixture\n")
    (base / "attributes.txt").write_text("1 has_bill_shape::curved\n")
    return d


CMR_SPLITS = {"train": (1, 3), "testval": (2,), "val": (2,), "test": (2,)}


def build_cmr_cachedir(base: Path) -> Path:
    """``base/cachedir/cub/{data,sfm}`` with CMR's .mat files for the CUB fixture; returns ``cachedir/cub``."""
    cmr = base / "cachedir" / "cub"
    (cmr / "data").mkdir(parents=True, exist_ok=True)
    (cmr / "sfm").mkdir(parents=True, exist_ok=True)
    for split, ids in CMR_SPLITS.items():
        images, sfm = [], []
        for img_id in ids:
            rel, h, w, _, (x, y, bw, bh), train, cls, _ = CUB_IMAGES[img_id]
            parts, R, scale, trans = cub_parts(img_id)
            images.append({"id": img_id, "rel_path": rel, "train": train, "test": 1 - train,
                           "bbox": {"x1": float(x), "y1": float(y), "x2": float(x + bw - 1), "y2": float(y + bh - 1)},
                           "width": w, "height": h, "parts": parts, "mask": cub_mask(img_id), "class_id": cls})
            sfm.append({"rot": R, "scale": scale, "trans": trans})
        scipy.io.savemat(cmr / "data" / f"{split}_cub_cleaned.mat", {"images": struct_array(images)})
        anno = {"sfm_anno": struct_array(sfm)}
        if split in ("train", "testval"):
            anno.update(S=CMR_S, conv_tri=CONV_TRI)
        scipy.io.savemat(cmr / "sfm" / f"anno_{split}.mat", anno)
    return cmr


def build_cub_data_root(root: Path) -> Path:
    """A data root with ``cub/``: the CUB fixture and CMR's cachedir beside it (what the CUB readers need)."""
    build_cub(root / "cub")
    build_cmr_cachedir(root / "cub")
    return root


def _viewpoint(az, el, theta, distance=5.0):
    return {"azimuth_coarse": az, "elevation_coarse": el, "azimuth": az, "elevation": el, "theta": theta,
            "distance": distance, "focal": 1.0, "px": 250.0, "py": 150.0, "viewport": 2000.0, "error": 0.0}


def _object(cls, bbox, viewpoint, cad_index=1, truncated=0, occluded=0, difficult=0):
    return {"class": cls, "view": "Frontal", "bbox": np.asarray(bbox, dtype=np.float64), "viewpoint": viewpoint,
            "cad_index": cad_index, "truncated": truncated, "occluded": occluded, "difficult": difficult,
            "anchors": np.zeros((0, 0))}


# (class, subset, id, image h, w, objects)
P3D_RECORDS = [
    ("car", "pascal", "2008_000001", 30, 40, [
        _object("car", (11, 6, 30, 15), _viewpoint(30.0, 10.0, -5.0), cad_index=3),
        _object("person", (1, 1, 5, 9), np.zeros((0, 0))),
        _object("car", (2, 2, 12, 12), _viewpoint(90.0, 0.0, 0.0), truncated=1)]),
    ("car", "pascal", "2008_000002", 24, 24, [_object("car", (3, 4, 20, 18), _viewpoint(200.0, 5.0, 2.0))]),
    ("car", "imagenet", "n02958343_1", 20, 30, [_object("car", (5, 5, 25, 16), _viewpoint(-45.0, 20.0, 1.0), 2)]),
    ("car", "imagenet", "n02958343_2", 20, 30, [  # coarse viewpoint only
        _object("car", (5, 5, 25, 16), {"azimuth_coarse": 90.0, "elevation_coarse": 0.0, "distance": 0.0})]),
    ("aeroplane", "pascal", "2008_000003", 20, 20, [_object("aeroplane", (2, 2, 19, 10), _viewpoint(10.0, 0.0, 0.0))]),
    ("aeroplane", "imagenet", "n02691156_1", 20, 20, [_object("aeroplane", (2, 2, 19, 10), _viewpoint(0.0, 0.0, 0.0))]),
]
P3D_LISTS = {
    "PASCAL/VOCdevkit/VOC2012/ImageSets/Main/train.txt": ["2008_000001", "2008_000003", "2008_000099"],
    "PASCAL/VOCdevkit/VOC2012/ImageSets/Main/val.txt": ["2008_000002"],
    "Image_sets/car_imagenet_train.txt": ["n02958343_1", "n02958343_2"],
    "Image_sets/car_imagenet_val.txt": [],
    "Image_sets/aeroplane_imagenet_train.txt": ["n02691156_1"],
    "Image_sets/aeroplane_imagenet_val.txt": [],
}


def p3d_image(image_id: str, h: int, w: int) -> np.ndarray:
    return random_image(h, w, sum(map(ord, image_id)))


def build_pascal3d(base: Path) -> Path:
    """``base/PASCAL3D+_release1.1`` in PASCAL3D+'s layout; returns it."""
    d = base / "PASCAL3D+_release1.1"
    for cls, subset, image_id, h, w, objects in P3D_RECORDS:
        ext = "jpg" if subset == "pascal" else "JPEG"
        save_png(p3d_image(image_id, h, w), d / "Images" / f"{cls}_{subset}" / f"{image_id}.{ext}")
        record = {"filename": f"{image_id}.{ext}", "folder": f"{cls}_{subset}", "source": {"database": subset},
                  "size": {"width": w, "height": h, "depth": 3}, "segmented": 0, "imgsize": [w, h, 3],
                  "database": subset, "objects": struct_array(objects)}
        (d / "Annotations" / f"{cls}_{subset}").mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(d / "Annotations" / f"{cls}_{subset}" / f"{image_id}.mat", {"record": record})
    for rel, ids in P3D_LISTS.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text("".join(f"{i}\n" for i in ids))
    (d / "CAD").mkdir(exist_ok=True)
    scipy.io.savemat(d / "CAD" / "car.mat", {"car": struct_array([{"vertices": np.eye(3), "faces": np.ones((1, 3))}])})
    return d


SYNFACE_SPLITS = {"train": 3, "val": 1, "test": 2}


def synface_pair(split: str, i: int, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(image, depth) arrays: depth is a grey ramp with a white square; the image is random."""
    image = random_image(size, size, 1000 * len(split) + i)
    depth = np.zeros((size, size, 3), dtype=np.uint8)
    depth[:, :, :] = np.linspace(0, 200, size, dtype=np.uint8)[None, :, None]
    depth[100:140, 110:150] = 255
    return image, depth


def build_synface(base: Path, size: int = 256) -> Path:
    """``base/synface/{split}/{image,depth}/NNNNNN_{image,depth}.png`` (+ one unpaired train image)."""
    d = base / "synface"
    for split, n in SYNFACE_SPLITS.items():
        for i in range(n):
            image, depth = synface_pair(split, i, size)
            save_png(image, d / split / "image" / f"{i:06d}_image.png")
            save_png(depth, d / split / "depth" / f"{i:06d}_depth.png")
    save_png(random_image(size, size, 7), d / "train" / "image" / "999999_image.png")  # no depth partner
    return d


def make_tar(out: Path, base: Path, tops: list[str], mode: str = "w:gz") -> Path:
    with tarfile.open(out, mode) as tf:
        for top in tops:
            tf.add(base / top, arcname=top)
    return out


def make_zip(out: Path, base: Path, tops: list[str]) -> Path:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for top in tops:
            root = base / top
            for p in sorted([root, *root.rglob("*")]):
                arc = p.relative_to(base).as_posix()
                zf.write(p, arc + "/" if p.is_dir() else arc)
    return out


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()
