"""How :func:`csmlab.data.prepare.prepare` places the files of the wave-2 datasets, and checks them.

Archives are extracted safely (:func:`csmlab.data.extract.extract`) into the
dataset's folder, or into the sub-folder :data:`~csmlab.data.registry_wave2.EXTRACT_INTO`
names; plain files are copied to their :data:`~csmlab.data.registry_wave2.PLACE`
(atomically: a temporary file unique to the process, then a rename); markers of
steps done by hand (:data:`~csmlab.data.registry_wave2.BY_HAND`) are only verified.
Every step is idempotent.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import tempfile
from pathlib import Path

from .extract import extract
from .real.layout_wave2 import check_acsm, check_celeba, check_keypointnet, check_pf_pascal, check_pix3d, check_spair
from .registry_wave2 import BY_HAND, EXTRACT_INTO, PLACE

CHECKS = {"celeba": check_celeba, "spair": check_spair, "keypointnet": check_keypointnet,
          "pf_pascal": check_pf_pascal, "pix3d": check_pix3d, "acsm": check_acsm}


def copy_atomic(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` unless an identical copy is there; never leave a half-written ``dst``."""
    if dst.is_file() and filecmp.cmp(src, dst, shallow=False):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=f".{os.getpid()}.tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def place(name: str, path: Path, dest: Path, progress: bool = False) -> None:
    """Put the verified download ``path`` of registry file ``name`` where its dataset's layout wants it."""
    if name in BY_HAND:
        return
    if name in PLACE:
        copy_atomic(path, dest / PLACE[name])
    else:
        extract(path, dest / EXTRACT_INTO.get(name, ""), progress=progress)
