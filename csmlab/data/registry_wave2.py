"""Registry entries of the second wave: CelebA (Unsup3D's crop), SPair-71k, KeypointNet, Pix3D, PF-PASCAL, ACSM.

Added to :data:`csmlab.data.registry.REGISTRY` with ``register`` (imported at
the end of ``registry``). As in wave 1, nothing here was downloaded to check it:
every ``size`` and ``sha256`` is unknown (None), and the first verified download
prints the digest to record here, except for KeypointNet's chair annotations and
split lists, whose size and sha256 were computed from the authors' git repository.

Plain files (JSON, text, CSV) are not archives: :data:`PLACE` says where each is
copied under its dataset's folder. Archives whose top folder clashes with
another archive of the same dataset are extracted into the sub-folder named in
:data:`EXTRACT_INTO`.
"""

from __future__ import annotations

from .registry import DATASETS, DatasetSpec, RemoteFile, register

_HF_KPNET = "https://huggingface.co/datasets/qq456cvb/KeypointNet/resolve/main/"
_GH_KPNET = "https://raw.githubusercontent.com/qq456cvb/KeypointNet/master/"
_KPNET_LICENCE = ("KeypointNet (You et al., CVPR 2020) is released under the MIT licence (LICENSE.md of "
                  "qq456cvb/KeypointNet); its clouds are sampled from ShapeNetCore, whose terms of use "
                  "(non-commercial research) apply to the shapes.")
# (size, sha256) of files in qq456cvb/KeypointNet's git history at _GH_COMMIT, read from its git blobs.
_GH_COMMIT = "d8c97eb8ce1a35b5df2724716b8a47b6216343f3"
_GH_ANNOTATIONS = {"chair": (3415215, "e778d4966e79d22e7b653b21711c9d8d2f4b8691892d3e984047a5e4f8fe56fa")}
_GH_SPLITS = {
    "train": (241030, "ae3c1a378ce24066aec58e82060b4b58cc89cb33120370e7db02f17fdbf20036"),
    "val": (34495, "4b8a59d1652bdca4e67f23a67238a549f08bc824236cfe9c9a46dc1723ca7f84"),
    "test": (69209, "771a7c76088c51d2855d8b08015a44ecdd9175f22e7d50490de1a42298f73cee"),
}
KEYPOINTNET_CATEGORIES = {"airplane": "02691156", "car": "02958343", "chair": "03001627"}

_CELEBA_LICENCE = ("CelebA (Liu et al., ICCV 2015): non-commercial research and education only; the "
                   "images are not owned by CUHK (see mmlab.ie.cuhk.edu.hk/projects/CelebA.html). "
                   "Unsup3D's crop boxes come with its MIT-licensed code.")
_ACSM_LICENCE = ("ACSM (Kulkarni, Gupta, Fouhey, Tulsiani, CVPR 2020) code and released files are under "
                 "Apache-2.0 (LICENSE of nileshkulkarni/acsm); the annotations describe PASCAL VOC and "
                 "ImageNet images, whose own terms (research, non-commercial) apply.")

_FILES = (
    RemoteFile(
        name="celeba_in_the_wild", filename="img_celeba.7z", urls=(), size=None, sha256=None,
        manual=("CelebA's in-the-wild images are behind Google Drive (mmlab.ie.cuhk.edu.hk/projects/CelebA.html, "
                "'In-The-Wild Images', img_celeba.7z in 14 parts img_celeba.7z.001 ... .014). Unsup3D's README "
                "says to download them and run its crop; 7z is not an archive format csmlab extracts, so "
                "extract the parts yourself (7z x img_celeba.7z.001) into <data_root>/celeba/img_celeba/ "
                "(202,599 jpg files), then place any one of the parts as {path} to mark it done"),
        licence=_CELEBA_LICENCE,
        note=("elliottwu/unsup3d has no download script for CelebA (data/ has download_synface.sh, "
              "download_cat.sh, download_syncar.sh only): its README says to download img_celeba.7z and run "
              "data/celeba_crop.py, which writes celeba_cropped/{train,val,test}/ at 128x128."),
    ),
    RemoteFile(
        name="unsup3d_celeba_crop_bbox", filename="celeba_crop_bbox.txt",
        urls=("https://raw.githubusercontent.com/elliottwu/unsup3d/master/data/celeba_crop_bbox.txt",),
        size=None, sha256=None, licence=_CELEBA_LICENCE,
        note=("Unsup3D's crop boxes: one line per image, 'file split x0 y0 w h' (split 0/1/2 = "
              "train/val/test), read by data/celeba_crop.py. Size not verified here."),
    ),
    RemoteFile(
        name="spair71k", filename="SPair-71k.tar.gz",
        urls=("http://cvlab.postech.ac.kr/research/SPair-71k/data/SPair-71k.tar.gz",),
        size=None, sha256=None,
        licence=("SPair-71k (Min, Lee, Ponce, Cho, 2019), for research; images from PASCAL VOC 2012 and "
                 "PASCAL3D+ (Flickr and ImageNet terms, non-commercial research)."),
        note=("The authors' page cvlab.postech.ac.kr/research/SPair-71k/. Unpacks to SPair-71k/{JPEGImages, "
              "ImageAnnotation, PairAnnotation/{trn,val,test}, Segmentation, Layout, devkit}. Size not "
              "verified here (a few hundred MB)."),
    ),
    *(RemoteFile(
        name=f"keypointnet_{cat}", filename=f"keypointnet_{cat}.json",
        urls=((_GH_KPNET + f"annotations/{cat}.json",) if cat in _GH_ANNOTATIONS else ())
        + (_HF_KPNET + f"annotations/{cat}.json",),
        size=_GH_ANNOTATIONS.get(cat, (None, None))[0], sha256=_GH_ANNOTATIONS.get(cat, (None, None))[1],
        licence=_KPNET_LICENCE,
        note=(f"annotations/{cat}.json (class {cid}). The authors now host the data on Hugging Face "
              "(datasets/qq456cvb/KeypointNet), with Google Drive and OneDrive copies. The GitHub repository "
              "also holds the full chair.json (999 models); its size and sha256 are those of that file at "
              f"commit {_GH_COMMIT[:12]}, and the Hugging Face copy is expected to be the same file."),
    ) for cat, cid in KEYPOINTNET_CATEGORIES.items()),
    *(RemoteFile(
        name=f"keypointnet_split_{split}", filename=f"keypointnet_{split}.txt",
        urls=(_GH_KPNET + f"splits/{split}.txt", _HF_KPNET + f"splits/{split}.txt"),
        size=_GH_SPLITS[split][0], sha256=_GH_SPLITS[split][1], licence=_KPNET_LICENCE,
        note=(f"splits/{split}.txt: one '<class_id>-<model_id>' per line. Size and sha256 of the file in "
              f"qq456cvb/KeypointNet at commit {_GH_COMMIT[:12]}; Hugging Face's copy is the fallback."),
    ) for split in ("train", "val", "test")),
    RemoteFile(
        name="keypointnet_pcds", filename="keypointnet_pcds.done", urls=(), size=None, sha256=None,
        manual=("KeypointNet's clouds are one ascii .pcd per model (pcds/<class_id>/<model_id>.pcd, 2048 "
                "coloured points), thousands of small files on Hugging Face. Fetch them with the Hugging Face "
                "CLI, e.g. 'hf download qq456cvb/KeypointNet --repo-type dataset --include \"pcds/03001627/*\" "
                "--local-dir <data_root>/keypointnet', then create an empty file {path}"),
        licence=_KPNET_LICENCE,
        note="Hugging Face serves each file at resolve/main/pcds/<class_id>/<model_id>.pcd.",
    ),
    RemoteFile(
        name="pix3d", filename="pix3d.zip", urls=("http://pix3d.csail.mit.edu/data/pix3d.zip",),
        size=None, sha256=None,
        licence=("Pix3D (Sun et al., CVPR 2018): see pix3d.csail.mit.edu; the images come from the web and "
                 "IKEA, the models from IKEA and other sources; use for research. No licence file is known "
                 "here."),
        note=("Unpacks to pix3d.json, img/<category>/, mask/<category>/, model/<category>/<name>/ "
              "(model.obj, 3d_keypoints.txt, voxel.mat). Size not verified here (about 3.6 GB reported)."),
    ),
    RemoteFile(
        name="pf_pascal", filename="PF-dataset-PASCAL.zip",
        urls=("https://www.di.ens.fr/willow/research/proposalflow/dataset/PF-dataset-PASCAL.zip",),
        dead_urls=("http://www.di.ens.fr/willow/research/proposalflow/dataset/PF-dataset-PASCAL.zip",),
        size=None, sha256=None,
        licence=("PF-PASCAL (Ham, Cho, Schmid, Ponce, Proposal Flow, CVPR 2016/TPAMI 2017), for research; "
                 "images from PASCAL VOC (Flickr terms)."),
        note="Unpacks to PF-dataset-PASCAL/{JPEGImages, Annotations/<class>/<image>.mat}. Size not verified.",
    ),
    *(RemoteFile(
        name=f"pf_pascal_{split}_pairs", filename=f"{split}_pairs_pf_pascal.csv",
        urls=(f"https://www.di.ens.fr/willow/research/cnngeometric/other_resources/{split}_pairs_pf_pascal.csv",),
        size=None, sha256=None,
        licence="Pair lists of Rocco, Arandjelovic, Sivic (CNNGeometric / WeakAlign); PF-PASCAL's terms apply.",
        note=("The split used by CNNGeometric, WeakAlign, NCNet and later work (e.g. "
              "PruneTruong/DenseMatching assets/download_pf_pascal.sh). Columns source_image, target_image, "
              "class, XA, YA, XB, YB (';'-separated keypoint coordinates). The train list is on Google Drive "
              "only (id 111tpXshLiJ4qudBHoGK3HbMSNr9vVRq9) and is not registered."),
    ) for split in ("val", "test")),
    RemoteFile(
        name="acsm_templates", filename="acsm_cachedir.tar",
        urls=("https://www.dropbox.com/s/3tj037gnk4gz11t/cachedir.tar?dl=1",),
        size=None, sha256=None, licence=_ACSM_LICENCE,
        note=("ACSM docs/setup.md, 'Download template models': cachedir/models/<category>/{model.obj, "
              "mean_shape.mat, kp2vertex.txt, mirror_transforms.txt, hierarchy.xml, parts.pkl, part_names.txt}."),
    ),
    RemoteFile(
        name="acsm_annotations", filename="acsm_cachedir.tar.gz",
        urls=("https://www.dropbox.com/s/8zo5ohwhv99efqr/cachedir.tar.gz?dl=1",),
        size=None, sha256=None, licence=_ACSM_LICENCE,
        note=("ACSM docs/setup.md, 'pretrained model and cached annotations': cachedir/pascal/data/"
              "<category>_{train,val}.mat and <category>_kps.mat, cachedir/imnet_quad/<synset>_<split>.mat "
              "(read by acsm/data/objects.py), plus the pretrained snapshots."),
    ),
)

# Plain files: where each is copied under the dataset's folder.
PLACE = {
    "unsup3d_celeba_crop_bbox": "celeba_crop_bbox.txt",
    **{f"keypointnet_{cat}": f"annotations/{cat}.json" for cat in KEYPOINTNET_CATEGORIES},
    **{f"keypointnet_split_{s}": f"splits/{s}.txt" for s in ("train", "val", "test")},
    "pf_pascal_val_pairs": "PF-dataset-PASCAL/val_pairs_pf_pascal.csv",
    "pf_pascal_test_pairs": "PF-dataset-PASCAL/test_pairs_pf_pascal.csv",
}
# Markers of steps done by hand: verified like any file, neither extracted nor copied.
BY_HAND = ("celeba_in_the_wild", "keypointnet_pcds")
# Both of ACSM's archives hold a top folder 'cachedir': each gets its own sub-folder.
EXTRACT_INTO = {"acsm_templates": "templates", "acsm_annotations": "annotations"}

_DATASETS = (
    DatasetSpec("celeba", "celeba", (("unsup3d_celeba_crop_bbox",), ("celeba_in_the_wild",)),
                summary="CelebA in-the-wild images with Unsup3D's crop boxes (64x64 faces, no depth)"),
    DatasetSpec("spair", "spair", (("spair71k",),),
                summary="SPair-71k: 70,958 keypoint-annotated image pairs of 18 PASCAL categories"),
    DatasetSpec("keypointnet", "keypointnet",
                tuple((f"keypointnet_{c}",) for c in KEYPOINTNET_CATEGORIES)
                + tuple((f"keypointnet_split_{s}",) for s in ("train", "val", "test")) + (("keypointnet_pcds",),),
                summary="KeypointNet annotations, splits and 2048-point coloured clouds (airplane, car, chair)"),
    DatasetSpec("pix3d", "pix3d", (("pix3d",),),
                summary="Pix3D images, masks, 2D keypoints, models and poses"),
    DatasetSpec("pf_pascal", "pf_pascal", (("pf_pascal",), ("pf_pascal_val_pairs",), ("pf_pascal_test_pairs",)),
                summary="PF-PASCAL image pairs with keypoints (CNNGeometric's val/test pair lists)"),
    DatasetSpec("acsm", "acsm", (("acsm_templates",), ("acsm_annotations",)),
                summary="ACSM's rigged templates and PASCAL/ImageNet quadruped annotations"),
)

register(*_FILES)
for _spec in _DATASETS:
    if DATASETS.get(_spec.name, _spec) != _spec:
        raise ValueError(f"DATASETS already holds a different dataset named {_spec.name!r}")
    DATASETS[_spec.name] = _spec
