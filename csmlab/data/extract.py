"""Safe extraction of zip and tar archives (tar, tar.gz/tgz, tar.bz2, tar.xz).

``extract(archive, dest)`` first reads the whole member list and refuses the
archive (:class:`UnsafeArchiveError`, nothing written) when any member

- has an absolute path (``/x``, ``C:\\x``) or a ``..`` component,
- is a device file, a FIFO or another special file,
- is a link whose target is absolute or lies outside the archive's tree,
- would be written through a link member (``link/file``).

It then extracts into a temporary folder inside ``dest``, checks that every
link created there resolves inside it, and renames each top-level entry into
``dest``. A marker in ``dest/.csmlab_extracted/`` records the extraction, so a
second call does nothing. Existing entries in ``dest`` are never overwritten.
"""

from __future__ import annotations

import gzip
import json
import lzma
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

MARKER_DIR = ".csmlab_extracted"


class UnsafeArchiveError(ValueError):
    """The archive holds a member that could write outside the target, or a special file."""


# What a damaged or truncated archive raises while being read.
_DAMAGE = (zipfile.BadZipFile, tarfile.ReadError, tarfile.CompressionError, EOFError, zlib.error,
           gzip.BadGzipFile, lzma.LZMAError)


def _damaged(archive: Path, err: BaseException) -> ValueError:
    return ValueError(f"archive {archive.name} is damaged or truncated ({type(err).__name__}: {err}); "
                      f"delete it and download it again")


@dataclass(frozen=True)
class Member:
    name: str          # normalised, '/'-separated, relative
    kind: str          # "file", "dir", "symlink", "hardlink"
    link: str = ""     # link target as stored in the archive


def archive_kind(path: str | os.PathLike) -> str:
    """'zip' or 'tar' from the file's content (not its name); ValueError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"archive must be an existing file, got {str(path)!r}")
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    raise ValueError(f"archive {str(path)!r} is neither a zip nor a tar file (plain, gz, bz2 or xz)")


def _split(name: str) -> list[str]:
    return [p for p in re.split(r"[/\\]+", name) if p not in ("", ".")]


def _check_name(raw: str, is_dir: bool) -> str:
    """The member's normalised relative name; "" for the archive's own root folder ("./")."""
    if raw.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", raw):
        raise UnsafeArchiveError(f"member {raw!r} has an absolute path")
    parts = _split(raw)
    if ".." in parts:
        raise UnsafeArchiveError(f"member {raw!r} has a '..' component")
    if not parts and not is_dir:
        raise UnsafeArchiveError(f"member {raw!r} has an empty name")
    return "/".join(parts)


def _check_link(member: Member) -> None:
    target = member.link
    if target.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", target):
        raise UnsafeArchiveError(f"link {member.name!r} points to the absolute path {target!r}")
    # Symlink targets are relative to the link's folder; tar hard links to the archive root.
    base = posixpath.dirname(member.name) if member.kind == "symlink" else ""
    resolved = posixpath.normpath(posixpath.join(base, "/".join(re.split(r"[/\\]", target))))
    if resolved == ".." or resolved.startswith("../") or resolved.startswith("/"):
        raise UnsafeArchiveError(f"link {member.name!r} -> {target!r} points outside the target folder")


def _tar_members(tf: tarfile.TarFile) -> list[tuple[Member, tarfile.TarInfo]]:
    out = []
    for info in tf.getmembers():
        name = _check_name(info.name, info.isdir())
        if not name:
            continue  # "./": the folder we extract into
        info.name = name  # extract under the normalised name (the one the checks saw)
        if info.isreg():
            kind = "file"
        elif info.isdir():
            kind = "dir"
        elif info.issym():
            kind = "symlink"
        elif info.islnk():
            kind = "hardlink"
        else:
            what = "device" if (info.ischr() or info.isblk()) else "FIFO" if info.isfifo() else "special"
            raise UnsafeArchiveError(f"member {info.name!r} is a {what} file")
        out.append((Member(name, kind, info.linkname if kind in ("symlink", "hardlink") else ""), info))
    return out


def _zip_members(zf: zipfile.ZipFile) -> list[tuple[Member, zipfile.ZipInfo]]:
    out = []
    for info in zf.infolist():
        name = _check_name(info.filename, info.is_dir())
        if not name:
            continue
        mode = info.external_attr >> 16
        ftype = stat.S_IFMT(mode)
        if info.is_dir():
            kind = "dir"
        elif ftype == stat.S_IFLNK:
            kind = "symlink"
        elif ftype in (0, stat.S_IFREG):  # 0: made on a system that stores no Unix mode
            kind = "file"
        else:
            raise UnsafeArchiveError(f"member {info.filename!r} is a special file (mode {oct(mode)})")
        link = zf.read(info).decode("utf-8", "replace") if kind == "symlink" else ""
        out.append((Member(name, kind, link), info))
    return out


def list_members(archive: str | os.PathLike) -> list[Member]:
    """Every member of ``archive``, validated; raises :class:`UnsafeArchiveError` on the first bad one."""
    kind = archive_kind(archive)
    if kind == "zip":
        with zipfile.ZipFile(archive) as zf:
            members = [m for m, _ in _zip_members(zf)]
    else:
        with tarfile.open(archive, "r:*") as tf:
            members = [m for m, _ in _tar_members(tf)]
    links = {m.name for m in members if m.kind in ("symlink", "hardlink")}
    for m in members:
        if m.kind in ("symlink", "hardlink"):
            _check_link(m)
        parts = m.name.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in links:
                raise UnsafeArchiveError(f"member {m.name!r} would be written through the link "
                                         f"{'/'.join(parts[:i])!r}")
    return members


def _check_links_inside(tmp: Path) -> None:
    root = os.path.realpath(tmp)
    for dirpath, dirnames, filenames in os.walk(tmp):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                real = os.path.realpath(p)
                if os.path.commonpath([root, real]) != root:
                    raise UnsafeArchiveError(f"link {os.path.relpath(p, tmp)!r} resolves outside the target folder")


def _marker(dest: Path, archive: Path) -> Path:
    return dest / MARKER_DIR / (archive.name + ".json")


def is_extracted(archive: str | os.PathLike, dest: str | os.PathLike) -> bool:
    """True when ``archive`` was extracted into ``dest`` by :func:`extract`."""
    return _marker(Path(dest), Path(archive)).is_file()


def extract(archive: str | os.PathLike, dest: str | os.PathLike, *, progress: bool = False) -> list[Path]:
    """Extract ``archive`` into ``dest`` safely; return the top-level paths it created.

    Does nothing (and returns the recorded paths) when it was done before.
    Raises :class:`UnsafeArchiveError` for an unsafe archive and ValueError when a
    top-level entry already exists in ``dest`` without a record of this archive.
    """
    archive, dest = Path(archive), Path(dest)
    marker = _marker(dest, archive)
    if marker.is_file():
        return [dest / name for name in json.loads(marker.read_text())["entries"]]
    try:
        members = list_members(archive)  # raises before anything is written
    except _DAMAGE as err:
        raise _damaged(archive, err) from None
    tops = sorted({m.name.split("/")[0] for m in members})
    clash = [t for t in tops if (dest / t).exists() or (dest / t).is_symlink()]
    if clash:
        raise ValueError(f"dest {str(dest)!r} already holds {clash}, which {archive.name} would replace; "
                         f"remove them (or choose another folder) and re-run")
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))  # same file system: renames are atomic
    try:
        if archive_kind(archive) == "zip":
            with zipfile.ZipFile(archive) as zf:
                pairs = _zip_members(zf)
                for member, info in tqdm(pairs, desc=f"extracting {archive.name}", disable=not progress,
                                         leave=False):
                    target = tmp / member.name
                    if member.kind == "dir":
                        target.mkdir(parents=True, exist_ok=True)
                    elif member.kind == "symlink":
                        target.parent.mkdir(parents=True, exist_ok=True)
                        os.symlink(member.link.replace("\\", "/"), target)
                    else:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with zf.open(info) as src, open(target, "wb") as out:
                            shutil.copyfileobj(src, out, 1 << 20)
        else:
            with tarfile.open(archive, "r:*") as tf:
                infos = [info for _, info in _tar_members(tf)]
                # extractall (not extract per member) so that folder permissions are set last;
                # the 'data' filter (Python >= 3.10.12 / 3.11.4) repeats our checks and drops setuid bits.
                safety = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tf.extractall(tmp, members=tqdm(infos, desc=f"extracting {archive.name}",
                                                disable=not progress, leave=False), **safety)
        _check_links_inside(tmp)
        for top in tops:
            os.replace(tmp / top, dest / top)
    except _DAMAGE as err:
        raise _damaged(archive, err) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    marker.parent.mkdir(exist_ok=True)
    record = marker.with_name(marker.name + ".tmp")
    record.write_text(json.dumps({"archive": archive.name, "entries": tops}))
    os.replace(record, marker)
    return [dest / t for t in tops]
