"""The official checkpoints: where they come from, how they are checked, and ``pretrained(name)``.

Each network of :data:`NETS` names one :class:`~csmlab.data.registry.RemoteFile`,
registered in :data:`csmlab.data.registry.REGISTRY`, so it is fetched by
:func:`csmlab.data.download.download` like a dataset file: into
``<data_root>/downloads/``, resumable, with a progress bar, verified before it
is renamed into place (a mismatch is kept aside as ``NAME.bad``).

What is known and what is not (nothing was downloaded from here: no network):

- torchvision's file names carry the first 8 hex digits of the file's sha256
  (``torch.hub``'s ``check_hash`` convention); they are checked, and the full
  digest is printed on the first download so that it can be recorded here.
  Sizes are given by torchvision's metadata in MiB with three decimals
  (``_file_size``), not to the byte, so they are recorded in the notes only.
- DINOv2's files carry no digest in their names and their sizes are not
  published: the first download prints the sha256. Until it is recorded, the
  strict load (every key and shape) is the check.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from ..config import get_device
from ..data.download import DownloadError, download, downloads_dir, is_downloaded
from ..data.registry import RemoteFile, register
from .resnet import resnet18, resnet50
from .vgg import DROPPED_KEYS as VGG16_DROPPED
from .vgg import VGG16Features
from .vit import dinov2_vitb14, dinov2_vits14

_TORCHVISION_LICENCE = ("BSD-3-Clause (torchvision's licence, which covers its model weights); the weights were "
                        "trained on ImageNet-1k, whose images are for non-commercial research under ImageNet's terms.")
_DINOV2_LICENCE = ("Apache-2.0 (DINOv2's code and weights, facebookresearch/dinov2 README and MODEL_CARD; "
                   "released under CC-BY-NC 4.0 before August 2023).")
_BY_HAND = "download {url} on a machine with a network and save it as {{path}}"


def _torchvision(name: str, filename: str, mib: float, params: int, note: str) -> RemoteFile:
    url = f"https://download.pytorch.org/models/{filename}"
    return RemoteFile(name=name, filename=filename, urls=(url,), size=None, sha256=None,
                      sha256_prefix=filename.rsplit("-", 1)[1].removesuffix(".pth"), licence=_TORCHVISION_LICENCE,
                      manual=_BY_HAND.format(url=url),
                      note=(f"torchvision {note}; metadata: _file_size {mib} MiB, num_params {params}. "
                            "The 8 hex digits in the name are the first digits of the file's sha256."))


def _dinov2(name: str, arch: str, note: str) -> RemoteFile:
    url = f"https://dl.fbaipublicfiles.com/dinov2/{arch}/{arch}_pretrain.pth"
    return RemoteFile(name=name, filename=f"{arch}_pretrain.pth", urls=(url,), size=None, sha256=None,
                      licence=_DINOV2_LICENCE, manual=_BY_HAND.format(url=url),
                      note=f"DINOv2 {note} backbone (LVD-142M), dinov2/hub/backbones.py; size and sha256 not "
                           f"published: printed on first download.")


WEIGHT_FILES: dict[str, RemoteFile] = {f.name: f for f in (
    _torchvision("torchvision_resnet18", "resnet18-f37072fd.pth", 44.661, 11689512,
                 "ResNet18_Weights.IMAGENET1K_V1 (acc@1 69.758)"),
    _torchvision("torchvision_resnet50", "resnet50-0676ba61.pth", 97.781, 25557032,
                 "ResNet50_Weights.IMAGENET1K_V1 (acc@1 76.13)"),
    _torchvision("torchvision_vgg16", "vgg16-397923af.pth", 527.796, 138357544,
                 "VGG16_Weights.IMAGENET1K_V1 (acc@1 71.592)"),
    _dinov2("dinov2_vits14", "dinov2_vits14", "ViT-S/14"),
    _dinov2("dinov2_vitb14", "dinov2_vitb14", "ViT-B/14"),
)}
register(*WEIGHT_FILES.values())


@dataclass(frozen=True)
class NetSpec:
    """One network: how to build it, its official file, and the file's entries it does not build."""

    name: str
    build: Callable[[], nn.Module]
    file: RemoteFile
    summary: str
    used_by: str = ""
    dropped: tuple[tuple[str, tuple[int, ...]], ...] = ()   # (key, shape) in the file, checked, not loaded


NETS: dict[str, NetSpec] = {s.name: s for s in (
    NetSpec("resnet18", resnet18, WEIGHT_FILES["torchvision_resnet18"],
            "ResNet-18, ImageNet-1k; pyramid s4..s32 with 64/128/256/512 channels",
            "CSM and ACSM full presets: the camera encoder (camera_encoder='resnet18')"),
    NetSpec("resnet50", resnet50, WEIGHT_FILES["torchvision_resnet50"],
            "ResNet-50 (V1.5), ImageNet-1k; pyramid s4..s32 with 256/512/1024/2048 channels"),
    NetSpec("vgg16", VGG16Features, WEIGHT_FILES["torchvision_vgg16"],
            "VGG16 features up to relu3_3 (taps relu1_2, relu2_2, relu3_3), ImageNet normalisation inside",
            "Unsup3D full preset: the perceptual loss (relu3_3)", dropped=VGG16_DROPPED),
    NetSpec("dinov2_vits14", dinov2_vits14, WEIGHT_FILES["dinov2_vits14"],
            "DINOv2 ViT-S/14 (D=384): class, pre-norm and normed patch tokens"),
    NetSpec("dinov2_vitb14", dinov2_vitb14, WEIGHT_FILES["dinov2_vitb14"],
            "DINOv2 ViT-B/14 (D=768): class, pre-norm and normed patch tokens",
            "Spherical Maps full preset: the frozen patch features"),
)}


class WeightsNotFound(DownloadError):
    """The checkpoint is not on disk and downloading is off."""


def _spec(name: str | NetSpec) -> NetSpec:
    if isinstance(name, NetSpec):
        return name
    if name not in NETS:
        raise ValueError(f"name must be one of {sorted(NETS)}, got {name!r}")
    return NETS[name]


def weights_path(name: str | NetSpec, root: str | os.PathLike | None = None) -> Path:
    """Where the official file of ``name`` lives: ``<data_root>/downloads/<filename>``."""
    return downloads_dir(root) / _spec(name).file.filename


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file (tensors only: ``weights_only``); ValueError naming the file otherwise."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"checkpoint {path} does not exist") from None
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as err:
        raise ValueError(f"checkpoint {path} cannot be read ({type(err).__name__}: {str(err).splitlines()[0]}); "
                         f"it is truncated or not a PyTorch file: delete it and fetch it again") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"checkpoint {path} must hold a state dict (name -> tensor), got {type(state).__name__}"
                         + (f" with keys {list(state)[:5]}" if isinstance(state, dict) else ""))
    return state


def _first_mismatch(expected: dict[str, tuple[int, ...]], state: dict[str, torch.Tensor]) -> tuple[str, int] | None:
    """(description of the first differing key, number of differing keys), or None when they agree."""
    problems = []
    for key, shape in expected.items():
        if key not in state:
            if not key.endswith(".num_batches_tracked"):   # older BatchNorm files lack it; torch fills it in
                problems.append(f"{key!r} is missing (expected shape {list(shape)})")
        elif tuple(state[key].shape) != shape:
            problems.append(f"{key!r} has shape {list(state[key].shape)}, expected {list(shape)}")
    problems += [f"{key!r} is not expected (shape {list(v.shape)})" for key, v in state.items() if key not in expected]
    return (problems[0], len(problems)) if problems else None


def load_official(model: nn.Module, source: str | os.PathLike | dict, *,
                  dropped: tuple[tuple[str, tuple[int, ...]], ...] = (), label: str | None = None) -> nn.Module:
    """Load an official state dict (a file or a dict) into ``model``, every key and shape checked.

    ``dropped`` lists (key, shape) entries the file must hold but ``model`` does not
    build (VGG16 beyond relu3_3). Any other difference raises one ValueError naming
    the file and the first mismatching key; then ``load_state_dict(strict=True)``.
    """
    if isinstance(source, dict):
        state, label = source, label or "state dict"
    else:
        state, label = read_state_dict(source), label or str(source)
    own = model.state_dict()
    expected = {k: tuple(v.shape) for k, v in own.items()}
    clash = set(expected) & {k for k, _ in dropped}
    if clash:
        raise ValueError(f"dropped keys must not be built by the model, got {sorted(clash)[:3]}")
    expected.update({k: tuple(s) for k, s in dropped})
    mismatch = _first_mismatch(expected, state)
    if mismatch is not None:
        first, count = mismatch
        raise ValueError(f"{label} is not a {type(model).__name__} checkpoint of this architecture: first "
                         f"mismatching key {first}; {count} key(s) differ in all")
    kept = {k: state[k] if k in state else own[k] for k in own}   # own num_batches_tracked where the file has none
    model.load_state_dict(kept, strict=True)
    return model


def _default_download() -> bool:
    return os.environ.get("CSMLAB_NO_DOWNLOAD", "") in ("", "0")


def fetch_weights(name: str | NetSpec, root: str | os.PathLike | None = None, *, download_ok: bool | None = None,
                  registry: dict[str, RemoteFile] | None = None, **download_kwargs) -> Path:
    """The verified official file of ``name`` (downloaded when needed and allowed). Returns its path.

    ``download_ok=False`` (or ``$CSMLAB_NO_DOWNLOAD=1``) never touches the network: a
    file already verified is used, one placed by hand is verified, and a missing one
    raises :class:`WeightsNotFound` saying where to save it.
    """
    spec = _spec(name)
    entry = (registry or {}).get(spec.file.name, spec.file)
    path = downloads_dir(root) / entry.filename
    allowed = _default_download() if download_ok is None else bool(download_ok)
    if not allowed and not path.exists():
        raise WeightsNotFound(f"{spec.name}: {path} does not exist and downloading is off (download=False or "
                              f"CSMLAB_NO_DOWNLOAD=1); by hand: {entry.manual.format(path=path)}, or run "
                              f"`python -m csmlab.nets fetch {spec.name}` where there is a network")
    return download(entry, root, **download_kwargs)


def pretrained(name: str | NetSpec, root: str | os.PathLike | None = None, device=None, download: bool | None = None,
               *, freeze: bool = False, registry: dict[str, RemoteFile] | None = None,
               **download_kwargs) -> nn.Module:
    """The network ``name`` (see :data:`NETS`) with its official weights, in eval mode, on ``device``.

    The file is fetched into ``<root or data root>/downloads`` on first use and verified;
    ``download=False`` (or ``$CSMLAB_NO_DOWNLOAD=1``) works from files already there.
    Offline, the error names the file, its URL and where to save it by hand.
    ``freeze=True`` turns off the gradients of every parameter (a fixed feature extractor
    or loss network: DINOv2 for Spherical Maps, VGG16 for Unsup3D).
    """
    spec = _spec(name)
    dev = get_device(device)
    path = fetch_weights(spec, root, download_ok=download, registry=registry, **download_kwargs)
    model = load_official(spec.build(), path, dropped=spec.dropped).to(dev).eval()
    return model.requires_grad_(False) if freeze else model


def check(name: str | NetSpec, root: str | os.PathLike | None = None,
          registry: dict[str, RemoteFile] | None = None) -> str:
    """Re-hash a downloaded file, check its digest and that it loads strictly; a one-line report."""
    from ..data.download import sha256_of

    spec = _spec(name)
    entry = (registry or {}).get(spec.file.name, spec.file)
    path = downloads_dir(root) / entry.filename
    if not path.is_file():
        raise WeightsNotFound(f"{spec.name}: {path} does not exist; fetch it with `python -m csmlab.nets fetch "
                              f"{spec.name}` or by hand: {entry.manual.format(path=path)}")
    sha = sha256_of(path)
    for label, want in (("sha256", entry.sha256), ("sha256 prefix", entry.sha256_prefix)):
        if want is not None and not sha.startswith(want):
            raise ValueError(f"{path}: {label} mismatch: expected {want}, received {sha}")
    model = load_official(spec.build(), path, dropped=spec.dropped)
    n_params = sum(p.numel() for p in model.parameters())
    digest = ("matches the recorded digest" if entry.sha256 else
              f"starts with {entry.sha256_prefix}" if entry.sha256_prefix else "has no digest recorded to compare")
    unused = f", {len(spec.dropped)} unused entries checked" if spec.dropped else ""
    return (f"{spec.name}: {path} ok: sha256 {sha} ({digest}); {len(model.state_dict())} tensors loaded "
            f"strictly, {n_params} parameters{unused}")


def status(name: str | NetSpec, root: str | os.PathLike | None = None) -> str:
    """"verified", "present, not verified yet" or "missing"."""
    spec = _spec(name)
    if is_downloaded(spec.file, root):
        return "verified"
    return "present, not verified yet" if weights_path(spec, root).exists() else "missing"


def missing_weights(name: str, root: str | os.PathLike | None = None) -> str | None:
    """A sentence naming what to run when the weights of ``name`` are not on disk, else None (a full-scale
    recipe's requirements list)."""
    try:
        if status(name, root) == "missing":
            return f"the pretrained {name} weights: python -m csmlab.nets fetch {name}"
    except Exception as err:   # the registry names what is wrong
        return f"the {name} weights ({err})"
    return None
