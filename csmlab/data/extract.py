"""Safe extraction of zip and tar archives (tar, tar.gz/tgz, tar.bz2, tar.xz).

``extract(archive, dest)`` first reads the whole member list and refuses the
archive (:class:`UnsafeArchiveError`, nothing written) when

- a member has an absolute path (``/x``, ``C:\\x``) or a ``..`` component
  (``/`` and ``\\`` both separate components);
- two members have the same name (a link and a file of one name is the classic escape);
- a member is a device file, a FIFO or another special file;
- a member's path passes through a link member (``link/file``) or through a file;
- a symlink leads outside the tree, following every symlink member on the way
  (a chain of hops that each look inside is resolved as a whole);
- a hard link does not name a regular file member that comes before it, as is;
- the members add up to more than ``max_total_bytes`` (default 64 GiB), or expand
  more than ``max_ratio`` (default 200) times the archive's size: a zip bomb.
  Pass ``max_total_bytes=None`` / ``max_ratio=None`` (or set
  ``CSMLAB_EXTRACT_NO_LIMITS=1`` for the data scripts) to lift them.

These are the rules of Python's ``tarfile`` "data" filter, checked on the whole
member table; where Python has that filter, it also runs on every member (zip
members included) and its errors are raised as :class:`UnsafeArchiveError`.

Writing happens in a fresh temporary folder inside ``dest``: every file is
created with ``O_EXCL | O_NOFOLLOW`` under parents that are checked to be real
folders, so nothing can be written through a link. Modes lose setuid/setgid and
group/other write bits. Each top-level entry is then renamed into ``dest``. A
marker in ``dest/.csmlab_extracted/`` records the extraction, so a second call
does nothing. Existing entries in ``dest`` are never overwritten.
"""

from __future__ import annotations

import gzip
import json
import lzma
import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..io import atomic_write_text, sweep_stale_temps, temp_path

MARKER_DIR = ".csmlab_extracted"
DEFAULT_MAX_TOTAL_BYTES = 64 * 2**30   # PASCAL3D+ (about 7.5 GB unpacked) and CUB (1.2 GB) fit many times
DEFAULT_MAX_RATIO = 200                # JPEGs and .mat files barely compress; a zip bomb expands > 1000x
RATIO_FLOOR_BYTES = 64 * 2**20         # small archives (fixtures, text) may expand as they like
NO_LIMITS_ENV = "CSMLAB_EXTRACT_NO_LIMITS"
_MAX_LINK_HOPS = 40
_CHUNK = 1 << 20


class UnsafeArchiveError(ValueError):
    """The archive holds a member that could write outside the target, a special file, or a bomb."""


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
    size: int = 0      # bytes of a file member
    mode: int = 0o644  # permission bits as stored


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


def _parts(name: str) -> list[str]:
    """Components of a stored path; both separators count, '.' and empty ones drop, '..' stays."""
    return [p for p in re.split(r"[/\\]+", name) if p not in ("", ".")]


def _is_absolute(name: str) -> bool:
    return name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) is not None


def _check_name(raw: str, is_dir: bool) -> str:
    """The member's normalised relative name; "" for the archive's own root folder ("./")."""
    if _is_absolute(raw):
        raise UnsafeArchiveError(f"member {raw!r} has an absolute path")
    parts = _parts(raw)
    if ".." in parts:
        raise UnsafeArchiveError(f"member {raw!r} has a '..' component")
    if not parts and not is_dir:
        raise UnsafeArchiveError(f"member {raw!r} has an empty name")
    return "/".join(parts)


def _tar_members(tf: tarfile.TarFile) -> list[tuple[Member, tarfile.TarInfo]]:
    out = []
    for info in tf.getmembers():
        name = _check_name(info.name, info.isdir())
        if not name:
            continue  # "./": the folder we extract into
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
        link = info.linkname if kind in ("symlink", "hardlink") else ""
        out.append((Member(name, kind, link, info.size if kind == "file" else 0, info.mode), info))
    return out


def _zip_members(zf: zipfile.ZipFile) -> list[tuple[Member, zipfile.ZipInfo]]:
    out = []
    for info in zf.infolist():
        mode = info.external_attr >> 16
        ftype = stat.S_IFMT(mode)
        is_dir = info.is_dir() or ftype == stat.S_IFDIR
        name = _check_name(info.filename, is_dir)
        if not name:
            continue
        if is_dir:
            kind = "dir"
        elif ftype == stat.S_IFLNK:
            kind = "symlink"
        elif ftype in (0, stat.S_IFREG):  # 0: made on a system that stores no Unix mode
            kind = "file"
        else:
            raise UnsafeArchiveError(f"member {info.filename!r} is a special file (mode {oct(mode)})")
        if kind == "symlink" and info.file_size > 4096:
            raise UnsafeArchiveError(f"symlink {info.filename!r} has a {info.file_size}-byte target")
        link = zf.read(info).decode("utf-8", "replace") if kind == "symlink" else ""
        perm = stat.S_IMODE(mode) or 0o644
        out.append((Member(name, kind, link, info.file_size if kind == "file" else 0, perm), info))
    return out


def _resolve(parts: list[str], symlinks: dict[str, str], what: str) -> list[str]:
    """Where ``parts`` leads in the archive's tree, following symlink members; raise if it leaves the tree."""
    out: list[str] = []
    todo = list(parts)
    hops = 0
    while todo:
        p = todo.pop(0)
        if p == "..":
            if not out:
                raise UnsafeArchiveError(f"{what} leads outside the target folder")
            out.pop()
            continue
        out.append(p)
        target = symlinks.get("/".join(out))
        if target is not None:
            hops += 1
            if hops > _MAX_LINK_HOPS:
                raise UnsafeArchiveError(f"{what} goes through more than {_MAX_LINK_HOPS} links (a loop?)")
            if _is_absolute(target):
                raise UnsafeArchiveError(f"{what} goes through a link to the absolute path {target!r}")
            out.pop()
            todo = _parts(target) + todo
    return out


def check_limits(total: int, archive_size: int, max_total_bytes: int | None, max_ratio: float | None,
                 name: str = "archive") -> None:
    """Refuse ``total`` unpacked bytes over ``max_total_bytes``, or over ``max_ratio`` x ``archive_size``."""
    how = (f"pass max_total_bytes=None / max_ratio=None to extract(), or set {NO_LIMITS_ENV}=1, "
           f"if you trust it")
    if max_total_bytes is not None and total > max_total_bytes:
        raise UnsafeArchiveError(f"{name} would unpack to {total} bytes, over the limit max_total_bytes="
                                 f"{max_total_bytes}; {how}")
    if max_ratio is not None and total > RATIO_FLOOR_BYTES and total > max_ratio * max(archive_size, 1):
        raise UnsafeArchiveError(f"{name} would unpack to {total} bytes from {archive_size} "
                                 f"({total / max(archive_size, 1):.0f}x), over the limit max_ratio={max_ratio} "
                                 f"(a zip bomb?); {how}")


def validate(members: list[Member]) -> None:
    """The rules of the module docstring that concern the member table (not the limits)."""
    seen: dict[str, str] = {}
    symlinks = {m.name: m.link for m in members if m.kind == "symlink"}
    links = {m.name for m in members if m.kind in ("symlink", "hardlink")}
    for m in members:
        if m.name in seen and not (m.kind == "dir" and seen[m.name] == "dir"):
            raise UnsafeArchiveError(f"member {m.name!r} appears twice ({seen[m.name]} and {m.kind}); "
                                     f"the second would replace or write through the first")
        parts = m.name.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in links:
                raise UnsafeArchiveError(f"member {m.name!r} would be written through the link {parent!r}")
            if seen.get(parent, "dir") != "dir":
                raise UnsafeArchiveError(f"member {m.name!r} would be written under the {seen[parent]} {parent!r}")
        if m.kind == "symlink":
            if _is_absolute(m.link):
                raise UnsafeArchiveError(f"link {m.name!r} points to the absolute path {m.link!r}")
            _resolve(parts[:-1] + _parts(m.link), symlinks, f"link {m.name!r} -> {m.link!r}")
        elif m.kind == "hardlink":
            if _is_absolute(m.link):
                raise UnsafeArchiveError(f"link {m.name!r} points to the absolute path {m.link!r}")
            _resolve(_parts(m.link), {}, f"link {m.name!r} -> {m.link!r}")  # '..' escaping the root
            target = "/".join(_parts(m.link))
            if seen.get(target) != "file":
                raise UnsafeArchiveError(f"hard link {m.name!r} -> {m.link!r} must name a regular file member "
                                         f"that comes before it (without links on the way)")
        seen.setdefault(m.name, m.kind)


def _read_members(archive: Path, kind: str):
    if kind == "zip":
        with zipfile.ZipFile(archive) as zf:
            return _zip_members(zf)
    with tarfile.open(archive, "r:*") as tf:
        return _tar_members(tf)


def _limits_from_env(max_total_bytes, max_ratio):
    if os.environ.get(NO_LIMITS_ENV, "") not in ("", "0"):
        return None, None
    return max_total_bytes, max_ratio


def list_members(archive: str | os.PathLike, *, max_total_bytes: int | None = DEFAULT_MAX_TOTAL_BYTES,
                 max_ratio: float | None = DEFAULT_MAX_RATIO) -> list[Member]:
    """Every member of ``archive``, validated; raises :class:`UnsafeArchiveError` on the first bad one."""
    archive = Path(archive)
    members = [m for m, _ in _read_members(archive, archive_kind(archive))]
    validate(members)
    max_total_bytes, max_ratio = _limits_from_env(max_total_bytes, max_ratio)
    check_limits(sum(m.size for m in members), archive.stat().st_size, max_total_bytes, max_ratio, archive.name)
    return members


def _safe_mode(m: Member) -> int:
    """The 'data' filter's modes: no setuid/setgid/sticky, no group/other write, owner read+write."""
    mode = m.mode & 0o755
    if not mode & 0o100:
        mode &= ~0o111
    return mode | 0o600


def _as_tarinfo(m: Member) -> tarfile.TarInfo:
    info = tarfile.TarInfo(m.name)
    info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                 "hardlink": tarfile.LNKTYPE}[m.kind]
    info.linkname, info.size, info.mode = m.link.replace("\\", "/"), m.size, m.mode
    return info


def _python_data_filter(m: Member, tmp: Path) -> None:
    """Run Python's own 'data' filter where it exists (3.10.12+, 3.11.4+); its errors become ours."""
    data_filter = getattr(tarfile, "data_filter", None)
    if data_filter is None:
        return  # our checks above implement the same rules
    try:
        data_filter(_as_tarinfo(m), str(tmp))
    except tarfile.FilterError as err:
        raise UnsafeArchiveError(f"member {m.name!r} refused by tarfile's data filter: "
                                 f"{type(err).__name__}: {err}") from None


def _real_parent(tmp: Path, name: str) -> Path:
    """The member's parent folder inside ``tmp``, created as needed; every step must be a real folder."""
    folder = tmp
    for part in name.split("/")[:-1]:
        folder = folder / part
        try:
            os.mkdir(folder, 0o755)
        except FileExistsError:
            pass
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            raise UnsafeArchiveError(f"member {name!r}: {part!r} is not a real folder")
    return folder


def _write_member(tmp: Path, m: Member, open_data, budget: list[int]) -> None:
    try:
        _write_member_unchecked(tmp, m, open_data, budget)
    except FileExistsError:   # names that differ only where the file system does not look (case)
        raise UnsafeArchiveError(f"member {m.name!r} collides with an earlier member on this file system "
                                 f"(names differing only in case?)") from None


def _write_member_unchecked(tmp: Path, m: Member, open_data, budget: list[int]) -> None:
    _python_data_filter(m, tmp)
    target = _real_parent(tmp, m.name) / m.name.split("/")[-1]
    if m.kind == "dir":
        target.mkdir(exist_ok=True)
        if not stat.S_ISDIR(os.lstat(target).st_mode):
            raise UnsafeArchiveError(f"member {m.name!r} is not a real folder")
    elif m.kind == "symlink":
        os.symlink(m.link.replace("\\", "/"), target)
    elif m.kind == "hardlink":
        source = tmp / "/".join(_parts(m.link))
        os.link(source, target, follow_symlinks=False)
    else:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "wb") as out, open_data() as src:
            while chunk := src.read(_CHUNK):
                budget[0] -= len(chunk)
                if budget[0] < 0:
                    raise UnsafeArchiveError(f"member {m.name!r} unpacks to more bytes than its header says")
                out.write(chunk)
        os.chmod(target, _safe_mode(m))


def _check_links_inside(tmp: Path) -> None:
    """A last look at what was written (before anything reaches ``dest``): every link resolves inside."""
    root = os.path.realpath(tmp)
    for dirpath, dirnames, filenames in os.walk(tmp):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            if os.path.islink(p) and os.path.commonpath([root, os.path.realpath(p)]) != root:
                raise UnsafeArchiveError(f"link {os.path.relpath(p, tmp)!r} resolves outside the target folder")


def _marker(dest: Path, archive: Path) -> Path:
    return dest / MARKER_DIR / (archive.name + ".json")


def is_extracted(archive: str | os.PathLike, dest: str | os.PathLike) -> bool:
    """True when ``archive`` was extracted into ``dest`` by :func:`extract`."""
    return _marker(Path(dest), Path(archive)).is_file()


def extract(archive: str | os.PathLike, dest: str | os.PathLike, *, progress: bool = False,
            max_total_bytes: int | None = DEFAULT_MAX_TOTAL_BYTES,
            max_ratio: float | None = DEFAULT_MAX_RATIO) -> list[Path]:
    """Extract ``archive`` into ``dest`` safely; return the top-level paths it created.

    Does nothing (and returns the recorded paths) when it was done before.
    Raises :class:`UnsafeArchiveError` for an unsafe archive (before anything is
    written), ValueError for a damaged one, or when a top-level entry already
    exists in ``dest`` without a record of this archive.
    """
    archive, dest = Path(archive), Path(dest)
    marker = _marker(dest, archive)
    if marker.is_file():
        return [dest / name for name in json.loads(marker.read_text())["entries"]]
    try:
        kind = archive_kind(archive)
        members = list_members(archive, max_total_bytes=max_total_bytes, max_ratio=max_ratio)
    except _DAMAGE as err:
        raise _damaged(archive, err) from None
    tops = sorted({m.name.split("/")[0] for m in members})
    clash = [t for t in tops if (dest / t).exists() or (dest / t).is_symlink()]
    if clash:
        raise ValueError(f"dest {str(dest)!r} already holds {clash}, which {archive.name} would replace; "
                         f"remove them (or choose another folder) and re-run")
    dest.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(dest)  # what a killed extraction left
    tmp = temp_path(dest / "extract")  # same file system as dest: the renames below are atomic
    os.mkdir(tmp, 0o700)
    budget = [sum(m.size for m in members)]
    try:
        with (zipfile.ZipFile(archive) if kind == "zip" else tarfile.open(archive, "r:*")) as af:
            pairs = _zip_members(af) if kind == "zip" else _tar_members(af)
            for member, info in tqdm(pairs, desc=f"extracting {archive.name}", disable=not progress, leave=False):
                opener = (lambda i=info: af.open(i)) if kind == "zip" else (lambda i=info: af.extractfile(i))
                _write_member(tmp, member, opener, budget)
        _check_links_inside(tmp)
        for top in tops:
            os.rename(tmp / top, dest / top)
    except _DAMAGE as err:
        raise _damaged(archive, err) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    atomic_write_text(marker, json.dumps({"archive": archive.name, "entries": tops}))
    return [dest / t for t in tops]
