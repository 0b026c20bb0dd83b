"""Tiny fixture trees in the official layouts of SPair-71k, KeypointNet and CelebA (+ Unsup3D's crop boxes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from fixtures_real import random_image, save_png

# SPair: image name -> (h, w, bndbox x1 y1 x2 y2 (0-based), kps (None = invisible), azimuth_id)
SPAIR_IMAGES = {
    "2008_000001": (30, 40, (10, 5, 29, 14), [(12, 6), None, (28, 14), (20, 10)], 3),
    "2008_000002": (24, 24, (2, 3, 19, 17), [(3, 4), (18, 16), None, (10, 10)], 6),
    "2008_000003": (20, 30, (4, 4, 24, 15), [None, (5, 5), (24, 15), (14, 9)], 0),
}
# pair name -> (split, src, trg); kps_ids are the keypoints visible in both
SPAIR_PAIRS = {
    "000001-2008_000001-2008_000002:aeroplane": ("trn", "2008_000001", "2008_000002"),
    "000002-2008_000002-2008_000003:aeroplane": ("test", "2008_000002", "2008_000003"),
    "000003-2008_000001-2008_000003:aeroplane": ("test", "2008_000001", "2008_000003"),
}
SPAIR_EXTRA_TEST = "000004-2009_000001-2009_000002:bus"  # listed in Layout, another category


def spair_mask(name: str) -> np.ndarray:
    h, w, (x1, y1, x2, y2), *_ = SPAIR_IMAGES[name]
    m = np.zeros((h, w), dtype=np.uint8)
    m[y1:y2 + 1, x1:x2 + 1] = 1
    return m


def build_spair(base: Path) -> Path:
    d = base / "SPair-71k"
    for name, (h, w, box, kps, az) in SPAIR_IMAGES.items():
        save_png(random_image(h, w, sum(map(ord, name))), d / "JPEGImages" / "aeroplane" / f"{name}.jpg")
        save_png(spair_mask(name) * 255, d / "Segmentation" / "aeroplane" / f"{name}.png")
        anno = {"filename": f"{name}.jpg", "src_database": "PASCAL VOC 2012", "annotation": "PASCAL VOC 2012",
                "image_width": w, "image_height": h, "image_depth": 3, "category": "aeroplane",
                "pose": "Frontal", "truncated": 0, "occluded": 0, "difficult": 0, "bndbox": list(box),
                "kps": {str(k): (list(v) if v is not None else None) for k, v in enumerate(kps)}, "azimuth_id": az}
        (d / "ImageAnnotation" / "aeroplane").mkdir(parents=True, exist_ok=True)
        (d / "ImageAnnotation" / "aeroplane" / f"{name}.json").write_text(json.dumps(anno))
    lists = {"trn": [], "val": [], "test": []}
    for pair, (split, src, trg) in SPAIR_PAIRS.items():
        ks, kt = SPAIR_IMAGES[src][3], SPAIR_IMAGES[trg][3]
        ids = [k for k in range(len(ks)) if ks[k] is not None and kt[k] is not None]
        anno = {"pair_id": int(pair[:6]), "filename": pair, "src_imname": f"{src}.jpg", "trg_imname": f"{trg}.jpg",
                "src_imsize": [SPAIR_IMAGES[src][1], SPAIR_IMAGES[src][0], 3], "category": "aeroplane",
                "src_bndbox": list(SPAIR_IMAGES[src][2]), "trg_bndbox": list(SPAIR_IMAGES[trg][2]),
                "kps_ids": [str(k) for k in ids], "src_kps": [list(ks[k]) for k in ids],
                "trg_kps": [list(kt[k]) for k in ids], "viewpoint_variation": 1, "scale_variation": 0,
                "truncation": 0, "occlusion": 2, "mirror": 0}
        (d / "PairAnnotation" / split).mkdir(parents=True, exist_ok=True)
        (d / "PairAnnotation" / split / f"{pair}.json").write_text(json.dumps(anno))
        lists[split].append(pair)
    lists["test"].append(SPAIR_EXTRA_TEST)
    (d / "PairAnnotation" / "test" / f"{SPAIR_EXTRA_TEST}.json").write_text(json.dumps({"category": "bus"}))
    for split, names in lists.items():
        for size in ("large", "small"):
            (d / "Layout" / size).mkdir(parents=True, exist_ok=True)
            (d / "Layout" / size / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))
    (d / "devkit").mkdir(exist_ok=True)
    (d / "devkit" / "README").write_text("fixture\n")
    return d


# KeypointNet: chair models, each with (semantic ids, point rows); semantic 0/1 are a left/right pair
KPNET_CLASS = "03001627"
KPNET_MODELS = {
    "m_a": ([0, 1, 2], [5, 17, 30]),
    "m_b": ([0, 1, 3], [40, 2, 11]),
    "m_c": ([2, 3], [7, 8]),
}
KPNET_SPLITS = {"train": ["m_a", "m_c"], "val": ["m_b"], "test": []}
KPNET_POINTS = 50


def kpnet_cloud(model: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(sum(map(ord, model)))
    return (rng.uniform(-0.5, 0.5, (KPNET_POINTS, 3)).round(6),
            rng.integers(0, 256, (KPNET_POINTS, 3)))


def build_keypointnet(base: Path) -> Path:
    d = base
    records = []
    for model, (sem, rows) in KPNET_MODELS.items():
        xyz, rgb = kpnet_cloud(model)
        packed = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
        header = ["VERSION .7", "FIELDS x y z rgb", "SIZE 4 4 4 4", "TYPE F F F U", "COUNT 1 1 1 1",
                  f"WIDTH {KPNET_POINTS}", "HEIGHT 1", "VIEWPOINT 0 0 0 1 0 0 0",
                  f"POINTS {KPNET_POINTS}", "DATA ascii"]
        body = [f"{x:.6f} {y:.6f} {z:.6f} {int(c)}" for (x, y, z), c in zip(xyz, packed)]
        (d / "pcds" / KPNET_CLASS).mkdir(parents=True, exist_ok=True)
        (d / "pcds" / KPNET_CLASS / f"{model}.pcd").write_text("\n".join(header + body) + "\n")
        kps = [{"xyz": xyz[r].tolist(), "rgb": rgb[r].tolist(), "semantic_id": s, "pcd_info": {"point_index": r},
                "mesh_info": {"face_index": 0, "face_uv": [0.2, 0.4, 0.4]}} for s, r in zip(sem, rows)]
        refl = [{"kp_indexes": [sem.index(0), sem.index(1)]}] if 0 in sem and 1 in sem else []
        records.append({"class_id": KPNET_CLASS, "model_id": model, "keypoints": kps,
                        "symmetries": {"reflection": refl, "rotation": []}})
    (d / "annotations").mkdir(parents=True, exist_ok=True)
    (d / "annotations" / "chair.json").write_text(json.dumps(records))
    (d / "splits").mkdir(exist_ok=True)
    for split, models in KPNET_SPLITS.items():
        (d / "splits" / f"{split}.txt").write_text("".join(f"{KPNET_CLASS}-{m}\n" for m in models))
    return d


# CelebA: file -> (h, w, split code, x0, y0, w, h)
CELEBA_ROWS = {
    "000001.jpg": (60, 50, "0", 10, 12, 32, 32),
    "000002.jpg": (40, 40, "0", -8, 20, 30, 30),   # leaves the image: replicated borders
    "000003.jpg": (50, 60, "2", 5, 5, 40, 40),
}


def celeba_image(name: str) -> np.ndarray:
    h, w = CELEBA_ROWS[name][:2]
    return random_image(h, w, sum(map(ord, name)))


def build_celeba(base: Path) -> tuple[Path, Path]:
    """(``base/img_celeba``, the crop-box file ``base/celeba_crop_bbox.txt``)."""
    for name in CELEBA_ROWS:
        save_png(celeba_image(name), base / "img_celeba" / name)
    boxes = base / "celeba_crop_bbox.txt"
    boxes.write_text("".join(f"{n} {s} {x} {y} {w} {h}\n" for n, (_, _, s, x, y, w, h) in CELEBA_ROWS.items()))
    return base / "img_celeba", boxes


# PF-PASCAL: image -> (h, w); pair rows (source, target, class 1..20, kps A, kps B), MATLAB 1-based pixels
PF_IMAGES = {"2007_000001": (20, 40), "2007_000002": (30, 30), "2007_000003": (16, 16), "2007_000004": (10, 10)}
PF_ROWS = {
    "test": [("2007_000001", "2007_000002", 9, [(1, 1), (40, 20)], [(15, 15), (30, 30)]),  # chair
             ("2007_000003", "2007_000004", 13, [(2, 3)], [(4, 5)]),                      # horse: not a course class
             ("2007_000002", "2007_000001", 7, [(10, 11), (5, 6), (7, 8)], [(1, 2), (3, 4), (5, 6)])],  # car
    "val": [("2007_000001", "2007_000003", 1, [(3, 4)], [(8, 9)])],                        # aeroplane
}


def build_pf_pascal(base: Path) -> Path:
    d = base / "PF-dataset-PASCAL"
    for name, (h, w) in PF_IMAGES.items():
        save_png(random_image(h, w, sum(map(ord, name))), d / "JPEGImages" / f"{name}.jpg")
    (d / "Annotations" / "chair").mkdir(parents=True, exist_ok=True)
    import scipy.io
    scipy.io.savemat(d / "Annotations" / "chair" / "2007_000001.mat",
                     {"kps": np.array([[1.0, 1.0], [np.nan, np.nan]]), "bbox": np.array([[1, 1, 40, 20]])})
    for split, rows in PF_ROWS.items():
        lines = ["source_image,target_image,class,XA,YA,XB,YB"]
        for src, trg, cls, a, b in rows:
            cols = [";".join(str(float(p[i])) for p in pts) for pts in (a, b) for i in (0, 1)]
            lines.append(f"PF-dataset-PASCAL/JPEGImages/{src}.jpg,PF-dataset-PASCAL/JPEGImages/{trg}.jpg,{cls},"
                         + ",".join(cols))
        (d / f"{split}_pairs_pf_pascal.csv").write_text("\n".join(lines) + "\n")
    return d


# ACSM: a 6-vertex template with three parts (body root, left leg, right leg) and three keypoints
ACSM_VERTS = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0.5, -1, 0.2], [-0.5, -1, 0.2], [0, 0.5, 1.0]])
ACSM_FACES = np.array([[1, 2, 3], [1, 4, 2], [1, 5, 3], [2, 6, 3]])  # OBJ 1-based
ACSM_PART_OF = [0, 0, 0, 1, 2, 0]
ACSM_NODES = [{"name": "body", "id": 0, "children": [1, 2], "rc": np.array([0.0, 0.0, 0.0])},
              {"name": "L_leg", "id": 1, "children": [], "rc": np.array([0.4, -0.5, 0.1])},
              {"name": "R_leg", "id": 2, "children": [], "rc": np.array([-0.4, -0.5, 0.1])}]
ACSM_KP2VERTEX = [("nose", 5), ("L_foot", 3), ("R_foot", 4)]
# PASCAL horse records: (image id, h, w, bbox x1 y1 x2 y2 (1-based), parts [x, y, vis] per keypoint)
ACSM_PASCAL = {"train": [("2008_000010", 30, 40, (11, 6, 30, 15), [(20, 8, 1), (12, 14, 1), (0, 0, 0)])],
               "val": [("2008_000011", 24, 24, (3, 4, 20, 18), [(10, 5, 1), (4, 17, 1), (19, 17, 1)])]}
ACSM_IMAGENET = [("n02381460_1.JPEG", 20, 30, (5, 5, 25, 16))]


def build_acsm(base: Path, voc: Path, imagenet: Path) -> tuple[Path, Path]:
    """(``templates/cachedir``, ``annotations/cachedir``) under ``base``, images under ``voc`` and ``imagenet``."""
    import pickle

    import scipy.io
    from fixtures_real import struct_array

    models = base / "templates" / "cachedir" / "models" / "horse"
    models.mkdir(parents=True)
    (models / "model.obj").write_text("".join(f"v {x} {y} {z}\n" for x, y, z in ACSM_VERTS)
                                      + "".join(f"f {a}/{a} {b}/{b} {c}/{c}\n" for a, b, c in ACSM_FACES))
    alpha = np.eye(3)[ACSM_PART_OF]
    with open(models / "parts.pkl", "wb") as f:
        pickle.dump({"alpha": alpha, "nodes": ACSM_NODES}, f, protocol=2)
    (models / "kp2vertex.txt").write_text("".join(f"{n} {v}\n" for n, v in ACSM_KP2VERTEX))
    (models / "mirror_transforms.txt").write_text("body body\nL_leg R_leg\nR_leg L_leg\n")
    (models / "part_names.txt").write_text("body\nL_leg\nR_leg\n")
    (models / "hierarchy.xml").write_text("<part name='body'><part name='L_leg'/><part name='R_leg'/></part>\n")
    anno = base / "annotations" / "cachedir"
    (anno / "pascal" / "data").mkdir(parents=True)
    (anno / "imnet_quad").mkdir(parents=True)
    scipy.io.savemat(anno / "pascal" / "data" / "horse_kps.mat",
                     {"kp_names": np.array(["nose", "L_foot", "R_foot"], dtype=object),
                      "kp_perm_inds": np.array([1, 3, 2], dtype=np.float64)})
    for split, rows in ACSM_PASCAL.items():
        images = []
        for img_id, h, w, (x1, y1, x2, y2), parts in rows:
            save_png(random_image(h, w, sum(map(ord, img_id))), voc / f"{img_id}.jpg")
            mask = np.zeros((h, w), dtype=bool)
            mask[y1 - 1:y2, x1 - 1:x2] = True
            images.append({"rel_path": f"{img_id}.jpg", "bbox": {"x1": float(x1), "y1": float(y1), "x2": float(x2),
                                                                 "y2": float(y2)},
                           "parts": np.array(parts, dtype=np.float64).T, "mask": mask})
        scipy.io.savemat(anno / "pascal" / "data" / f"horse_{split}.mat", {"images": struct_array(images)})
    images = []
    for name, h, w, (x1, y1, x2, y2) in ACSM_IMAGENET:
        save_png(random_image(h, w, 3), imagenet / "n02381460" / name)
        images.append({"rel_path": name, "bbox": {"x1": float(x1), "y1": float(y1), "x2": float(x2), "y2": float(y2)},
                       "mask": np.ones((h, w), dtype=bool)})
    scipy.io.savemat(anno / "imnet_quad" / "n02381460_train.mat", {"images": struct_array(images)})
    return base / "templates" / "cachedir", anno


# Pix3D: (img, h, w, bbox 0-based, 2d_keypoints per annotator (K = 3), category)
PIX3D_RECORDS = [
    ("img/chair/0001.png", 30, 40, (10, 5, 29, 14), [[[12, 6], [20, 10], [-1, -1]], [[14, 8], [20, 12], [-1, -1]]],
     "chair"),
    ("img/chair/0002.jpg", 24, 24, (2, 3, 19, 17), [], "chair"),
    ("img/sofa/0001.jpg", 20, 20, (2, 2, 15, 15), [], "sofa"),
]
PIX3D_KP3D = np.array([[0.1, 0.2, 0.3], [0.0, -0.1, 0.2], [-0.3, 0.0, 0.1]])


def build_pix3d(base: Path) -> Path:
    records = []
    for i, (img, h, w, box, kps, cat) in enumerate(PIX3D_RECORDS):
        save_png(random_image(h, w, i), base / img)
        mask = np.zeros((h, w), dtype=np.uint8)
        mask[box[1]:box[3] + 1, box[0]:box[2] + 1] = 255
        name = Path(img).stem
        save_png(mask, base / "mask" / cat / f"{name}.png")
        model = base / "model" / cat / f"M{i}"
        model.mkdir(parents=True)
        (model / "model.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3 4\n")
        np.savetxt(model / "3d_keypoints.txt", PIX3D_KP3D)
        records.append({"img": img, "category": cat, "img_size": [w, h], "2d_keypoints": kps,
                        "mask": f"mask/{cat}/{name}.png", "img_source": "fixture",
                        "model": f"model/{cat}/M{i}/model.obj", "model_raw": "", "model_source": "fixture",
                        "3d_keypoints": f"model/{cat}/M{i}/3d_keypoints.txt", "voxel": f"model/{cat}/M{i}/voxel.mat",
                        "rot_mat": np.eye(3).tolist(), "trans_mat": [0.0, 0.0, 2.5], "focal_length": 35.0,
                        "cam_position": [0.0, 0.0, 2.5], "inplane_rotation": 0.1, "truncated": False,
                        "occluded": i == 1, "slightly_occluded": False, "bbox": list(box)})
    (base / "pix3d.json").write_text(json.dumps(records))
    return base
