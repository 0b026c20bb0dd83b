"""Download, verify, extract and check a real dataset: what ``data_scripts/prepare_*.py`` run.

``prepare("cub")`` fetches the archives the registry lists for the dataset
into ``<data_root>/downloads`` (resuming, verifying), extracts each safely into
``<data_root>/<folder>`` in its official layout, then checks that layout and
returns a summary (counts per split). Every step is idempotent: a second call
downloads nothing, extracts nothing, and returns the same summary.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

from ..config import data_root
from .download import DownloadError, download, downloads_dir, fetch_dataset
from .extract import UnsafeArchiveError, extract
from .prepare_wave2 import CHECKS as WAVE2_CHECKS
from .prepare_wave2 import place
from .real.layout import LayoutError, check_cub, check_pascal3d, check_synface
from .registry import dataset_files, load_registry

_CMR_FILES = ("cmr_cachedir", "csm_cachedir")


def _files_on_disk(dataset: str, root, registry, exclude) -> dict:
    """Without downloading: the file of each needed group that is already in downloads/."""
    folder = downloads_dir(root)
    out = {}
    for group in dataset_files(dataset).requires:
        group = [n for n in group if n not in exclude]
        if not group:
            continue
        present = [n for n in group if (folder / registry[n].filename).exists()]
        if not present:
            names = " or ".join(registry[n].filename for n in group)
            raise DownloadError(f"{names} is not in {folder}; run without --no-download, or place it there")
        out[present[0]] = download(present[0], root, registry=registry)  # verifies; never fetches
    return out


def prepare(dataset: str, root: str | os.PathLike | None = None, *, registry_path=None,
            download_files: bool = True, progress: bool = True, require_cmr: bool = True,
            classes: tuple[str, ...] = ("car", "aeroplane"), **download_kwargs) -> dict:
    """Make ``dataset`` ready under the data root; return a summary dict of what is there.

    ``registry_path`` is an optional JSON file of registry overrides (see
    :func:`csmlab.data.registry.load_registry`). ``require_cmr=False`` prepares
    CUB without CMR's annotation archive (readers then use ``annotations="cub"``).
    """
    spec = dataset_files(dataset)
    registry = load_registry(registry_path)
    exclude = _CMR_FILES if (dataset == "cub" and not require_cmr) else ()
    if download_files:
        paths = fetch_dataset(dataset, root, registry=registry, progress=progress, exclude=exclude,
                              **download_kwargs)
    else:
        paths = _files_on_disk(dataset, root, registry, exclude)
    dest = data_root(root) / spec.folder
    if dataset in WAVE2_CHECKS:
        for name, path in paths.items():
            place(name, path, dest, progress)
        return WAVE2_CHECKS[dataset](root)
    for path in paths.values():
        extract(path, dest, progress=progress)
    if dataset == "cub":
        return check_cub(root, require_cmr=require_cmr)
    if dataset == "pascal3d":
        return check_pascal3d(root, classes)
    return check_synface(root)


def run_cli(prog: str, action: Callable[[], dict]) -> int:
    """Run ``action``; print its summary (exit 0), or one line saying why it failed (exit 1)."""
    try:
        summary = action()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; run it again to resume", file=sys.stderr)
        return 130
    except (DownloadError, UnsafeArchiveError, LayoutError, ValueError, OSError) as err:
        print(f"{prog}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    for key, value in summary.items():
        print(f"{key}: {value}")
    return 0


def prepare_script(prog: str, dataset: str, doc: str) -> Callable[..., int]:
    """The ``main(argv)`` of a ``data_scripts/prepare_<dataset>.py`` with the standard options.

    Options: ``--root``, ``--registry JSON``, ``--no-download``, ``--no-progress``;
    ``--help`` prints ``doc``. Exit 0 with the summary, 1 with a one-line reason.
    """
    import argparse

    def main(argv=None) -> int:
        p = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--root", default=None, help="data root (default: $CSMLAB_DATA, else ./data)")
        p.add_argument("--registry", default=None, metavar="JSON", help="registry overrides (mirrors, digests)")
        p.add_argument("--no-download", action="store_true", help="use only files already in <root>/downloads")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")
        args = p.parse_args(argv)
        return run_cli(prog, lambda: prepare(dataset, args.root, registry_path=args.registry,
                                              download_files=not args.no_download, progress=not args.no_progress))
    return main
