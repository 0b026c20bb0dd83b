"""Where each real dataset file comes from, how big it is, and how to check it.

One :class:`RemoteFile` per downloadable file, and one :class:`DatasetSpec` per
dataset naming the files it needs. Facts are recorded as found in the
official pages, the papers' repositories and their issue threads; nothing was
downloaded to check them. What could not be checked from here says so:

- ``sha256=None`` means the digest is not known here. The first verified
  download prints it, so that it can be recorded in this file.
- ``md5`` is a digest published by others for the same file. It is checked
  only while the sha256 is unknown.
- ``urls`` are tried in order (primary first, then mirrors). ``dead_urls`` are
  the historical links, kept for the record and never tried. ``manual`` says
  what to do by hand when no link can be fetched automatically.

Nothing here touches the network; :mod:`csmlab.data.download` does.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file: its sources, size, digests and licence note."""

    name: str                      # registry key, e.g. "cub_200_2011"
    filename: str                  # name on disk under <data_root>/downloads/
    urls: tuple[str, ...]          # primary first, then mirrors, tried in order
    size: int | None               # bytes; None when not known here
    sha256: str | None             # None when not known here (printed on first download)
    licence: str                   # who may use it for what, in one or two sentences
    md5: str | None = None         # digest published by others; checked while sha256 is unknown
    dead_urls: tuple[str, ...] = ()
    manual: str = ""               # steps by hand when no URL is usable
    note: str = ""                 # provenance and caveats
    sha256_prefix: str | None = None  # leading digits of the sha256 (torchvision's file names carry 8)

    def __post_init__(self):
        for label, digest, length in (("sha256", self.sha256, 64), ("md5", self.md5, 32)):
            if digest is not None and (len(digest) != length or any(c not in "0123456789abcdef" for c in digest)):
                raise ValueError(f"{self.name}: {label} must be {length} lowercase hex digits or None, got {digest!r}")
        prefix = self.sha256_prefix
        if prefix is not None and not (8 <= len(prefix) < 64 and all(c in "0123456789abcdef" for c in prefix)):
            raise ValueError(f"{self.name}: sha256_prefix must be 8 to 63 lowercase hex digits or None, got {prefix!r}")
        if self.size is not None and (not isinstance(self.size, int) or self.size <= 0):
            raise ValueError(f"{self.name}: size must be a positive int or None, got {self.size!r}")
        if not self.urls and not self.manual:
            raise ValueError(f"{self.name}: needs at least one URL or manual instructions")
        if Path(self.filename).name != self.filename or self.filename in ("", ".", ".."):
            raise ValueError(f"{self.name}: filename must be a bare file name, got {self.filename!r}")


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: the folder it is extracted into and the files it needs.

    ``requires`` is a tuple of groups; each group is satisfied by any one of
    its files (alternative sources of the same content).
    """

    name: str
    folder: str                                  # under the data root
    requires: tuple[tuple[str, ...], ...]
    summary: str = ""
    optional: tuple[str, ...] = field(default=())  # registered, not fetched by default


_CUB_LICENCE = ("Caltech-UCSD Birds-200-2011 (Wah et al. 2011). Images come from Flickr; the authors "
                "distribute them for non-commercial research and education only "
                "(https://www.vision.caltech.edu/datasets/cub_200_2011/).")
_CMR_LICENCE = ("Annotations derived from CUB-200-2011 by Kanazawa, Tulsiani et al. for CMR (ECCV 2018); "
                "the CMR code is MIT-licensed and no separate licence is stated for these files; the "
                "CUB terms (non-commercial research) apply to the images they describe.")

REGISTRY: dict[str, RemoteFile] = {f.name: f for f in (
    RemoteFile(
        name="cub_200_2011",
        filename="CUB_200_2011.tgz",
        urls=(
            "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1",
            "https://s3.amazonaws.com/fast-ai-imageclas/CUB_200_2011.tgz",
        ),
        dead_urls=("http://www.vision.caltech.edu/visipedia-data/CUB-200-2011/CUB_200_2011.tgz",),
        size=1150585339,
        sha256=None,
        md5="97eceeb196236b17998738112f37df78",
        licence=_CUB_LICENCE,
        note=("Primary: CaltechDATA record 65de6-vp158. Mirror: the fast.ai S3 copy (same byte size). "
              "The md5 is the one published by many loaders (e.g. avalanche's CUB200). "
              "The old vision.caltech.edu link is the one CMR's docs cite; Caltech moved the data to "
              "CaltechDATA, so it is not tried."),
    ),
    RemoteFile(
        name="cmr_cachedir",
        filename="cachedir.tar.gz",
        urls=(),
        dead_urls=(
            "https://people.eecs.berkeley.edu/~kanazawa/cachedir/cmr/cachedir.tar.gz",
            "https://people.eecs.berkeley.edu/~shubhtuls/cachedir/cmr/cachedir.tar.gz",
        ),
        size=None,
        sha256=None,
        manual=("CMR's Berkeley links are dead (akanazawa/cmr#3, #7, #21). Open the authors' temporary "
                "Dropbox folder https://www.dropbox.com/sh/ea3yprgrcjuzse5/AAB476Nn0Lwbrt3iuedB9yzIa?dl=0 "
                "(akanazawa/cmr#3), download cachedir.tar.gz and save it as {path}"),
        licence=_CMR_LICENCE,
        note=("Holds cachedir/cub/data/{train,testval,val,test}_cub_cleaned.mat (masks, boxes, 15 parts) "
              "and cachedir/cub/sfm/anno_{split}.mat (SfM cameras; mean shape S and conv_tri in the train "
              "and testval files). The kanazawa link served truncated 45-byte .mat files before it died "
              "(cmr#3). A partial mirror of val_cub_cleaned.mat alone is hosted by GANgealing at "
              "http://efrosgans.eecs.berkeley.edu/gangealing/val_cub_cleaned.mat (no SfM files)."),
    ),
    RemoteFile(
        name="csm_cachedir",
        filename="cachedir.zip",
        urls=(),
        size=None,
        sha256=None,
        manual=("Alternative to cmr_cachedir: CSM's cachedir (nileshkulkarni/csm, docs/training.md) on CMU "
                "Box, https://cmu.box.com/s/goter3meyi7rssbh2rujg36dfwygnc3f ; download cachedir.zip and "
                "save it as {path}"),
        licence=_CMR_LICENCE + " CSM's own additions (templates, weights) come with the CSM repository.",
        note=("Larger than CMR's (it also holds CSM's templates and pretrained weights). It is expected "
              "to contain the same CUB annotation files; prepare_cub checks that it does."),
    ),
    RemoteFile(
        name="pascal3d_release1_1",
        filename="PASCAL3D+_release1.1.zip",
        urls=("ftp://cs.stanford.edu/cs/cvgl/PASCAL3D+_release1.1.zip",),
        size=None,
        sha256=None,
        manual=("If the Stanford FTP server is unreachable from your network, a copy is on Google Drive "
                "(id 0B9P1L--7Wd2vcndfcElOT1d2a0E, used by wkentaro/pascal3d); download it in a browser "
                "and save it as {path}"),
        licence=("PASCAL3D+ (Xiang, Mottaghi, Savarese, WACV 2014), for research. Images come from "
                 "PASCAL VOC 2012 (Flickr terms) and ImageNet (non-commercial research under ImageNet's "
                 "terms); see https://cvgl.stanford.edu/projects/pascal3d.html."),
        note=("Official link is FTP only (resumed with REST). Size not verified here (several GB). "
              "wkentaro/pascal3d records md5 28c2d7dac539cf5f2592cbc06299f895 for its Google Drive copy; "
              "it is not enforced because that copy is not known to be byte-identical to the FTP one."),
    ),
    RemoteFile(
        name="pascal_segkps",
        filename="segkps.zip",
        urls=("https://www.dropbox.com/s/ywmrx987xoqi211/segkps.zip?dl=1",),
        dead_urls=("https://people.eecs.berkeley.edu/~shubhtuls/cachedir/vpsKps/segkps.zip",),
        size=None,
        sha256=None,
        licence=("PASCAL VOC instance segmentations and keypoints collected by Tulsiani et al. "
                 "(viewpoints & keypoints, CVPR 2015); PASCAL VOC terms apply."),
        note=("Needed only for CMR-style PASCAL masks (not read by wave-1 readers). The Berkeley link is "
              "dead (akanazawa/cmr#10, nileshkulkarni/csm#21); the Dropbox copy is the author's."),
    ),
    RemoteFile(
        name="unsup3d_synface",
        filename="synface.zip",
        urls=("https://www.robots.ox.ac.uk/~vgg/research/unsup3d/data/synface.zip",),
        size=None,
        sha256=None,
        licence=("Synthetic faces rendered by Wu, Rupprecht, Vedaldi (Unsup3D, CVPR 2020) with the Basel "
                 "Face Model, whose licence allows non-commercial research only; no separate licence file "
                 "ships with synface.zip, so treat it as research-only. Unsup3D's code is MIT."),
        note="URL from elliottwu/unsup3d data/download_synface.sh. Size not verified here.",
    ),
)}

DATASETS: dict[str, DatasetSpec] = {d.name: d for d in (
    DatasetSpec("cub", "cub", (("cub_200_2011",), ("cmr_cachedir", "csm_cachedir")),
                summary="CUB-200-2011 images + CMR's masks, SfM cameras and mean shape"),
    DatasetSpec("pascal3d", "pascal3d", (("pascal3d_release1_1",),), optional=("pascal_segkps",),
                summary="PASCAL3D+ release 1.1 (images, boxes, viewpoints, CAD index)"),
    DatasetSpec("synface", "synface", (("unsup3d_synface",),),
                summary="Unsup3D's synthetic faces: image/depth pairs"),
)}

_OVERRIDABLE = {"urls", "size", "sha256", "md5", "filename", "manual"}


def load_registry(overrides: str | os.PathLike | dict | None = None) -> dict[str, RemoteFile]:
    """The registry, with optional per-file overrides from a JSON file or dict.

    Overrides look like ``{"cub_200_2011": {"urls": [...], "sha256": "...", "size": 123}}``:
    use them to add a mirror you trust, pin a digest you recorded, or point at a
    local server. Only the keys ``urls, size, sha256, md5, filename, manual`` may
    be changed; a JSON ``null`` clears a value.
    """
    registry = dict(REGISTRY)
    if overrides is None:
        return registry
    if not isinstance(overrides, dict):
        path = Path(overrides)
        try:
            overrides = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"registry overrides {str(path)!r} must be a readable JSON object: {err}") from None
    if not isinstance(overrides, dict):
        raise ValueError(f"registry overrides must be a JSON object, got {type(overrides).__name__}")
    for name, changes in overrides.items():
        if name not in registry:
            raise ValueError(f"registry overrides name unknown file {name!r}; known: {sorted(registry)}")
        if not isinstance(changes, dict) or not set(changes) <= _OVERRIDABLE:
            raise ValueError(f"registry overrides for {name!r} must be an object with keys among "
                             f"{sorted(_OVERRIDABLE)}, got {changes!r}")
        changes = dict(changes)
        if "urls" in changes:
            changes["urls"] = tuple(changes["urls"] or ())
        registry[name] = replace(registry[name], **changes)
    return registry


def dataset_files(dataset: str) -> DatasetSpec:
    """The :class:`DatasetSpec` called ``dataset``; ValueError naming the known ones otherwise."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {dataset!r}")
    return DATASETS[dataset]


def register(*files: RemoteFile) -> None:
    """Add files declared elsewhere (e.g. ``csmlab.nets``' weights) to :data:`REGISTRY`.

    Registering the same entry again is a no-op; a different entry under a
    registered name is refused, so two declarations can never disagree silently.
    """
    for f in files:
        if not isinstance(f, RemoteFile):
            raise ValueError(f"register takes RemoteFile entries, got {type(f).__name__}")
        if REGISTRY.get(f.name, f) != f:
            raise ValueError(f"registry already holds a different entry named {f.name!r}")
        REGISTRY[f.name] = f
