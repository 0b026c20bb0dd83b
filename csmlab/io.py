"""The one atomic-write helper: checkpoints, dataset caches, downloads' records and extractions use it.

A writer never leaves a half-written file under its final name:

- bytes go to a temporary name in the target's folder, unique to the process
  (``.NAME.<pid>.<random>.csmlab-tmp``), so concurrent runs never collide;
- the file is flushed and fsync'ed, then renamed with ``os.replace`` (atomic on
  one file system), and the folder is fsync'ed so that the rename survives a crash;
- on any error, including KeyboardInterrupt, the temporary file is removed;
- a process killed with SIGKILL cannot clean up, so every writer first sweeps the
  folder: a temporary of this pattern whose process is gone is deleted.

This module sits at the lowest layer (beside ``csmlab.config``): it imports nothing from csmlab.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

TEMP_SUFFIX = ".csmlab-tmp"
_TEMP_RE = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}" + re.escape(TEMP_SUFFIX) + r"$")


def temp_path(path: str | os.PathLike) -> Path:
    """A fresh temporary name beside ``path``, unique to this process (and to this call)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else, or we cannot tell: keep its file
    return True


def sweep_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete this helper's temporary files (and folders) in ``folder`` whose writing process is gone.

    Returns what was removed. Temporaries of live processes (a concurrent run) are kept.
    """
    folder = Path(folder)
    removed = []
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for name in names:
        match = _TEMP_RE.match(name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        p = folder / name
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except FileNotFoundError:
            pass  # another process swept it first
    return removed


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", *, perm: int = 0o644,
                 encoding: str | None = None) -> Iterator:
    """``with atomic_write(path) as f: f.write(...)``: ``path`` appears complete or not at all.

    ``mode`` is "wb" or "w" (text, ``encoding`` default utf-8). The parent folder is created.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(path.parent)
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, mode, **({"encoding": encoding or "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, perm)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (utf-8) to ``path`` atomically; return the path."""
    with atomic_write(path, "w") as f:
        f.write(text)
    return Path(path)


def atomic_replace(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Rename a finished file ``src`` (fsync'ed first) onto ``dst`` and make the rename durable."""
    fd = os.open(src, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(src, dst)
    fsync_dir(Path(dst).parent)
