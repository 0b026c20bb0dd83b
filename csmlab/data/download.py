"""Resumable, verified downloads of the files in :mod:`csmlab.data.registry`.

``download("cub_200_2011")`` puts ``CUB_200_2011.tgz`` in ``<data_root>/downloads/``:

- bytes go to ``NAME.part``; an interrupted run leaves it there and the next run
  resumes it with an HTTP ``Range`` request (FTP ``REST``). A server that
  ignores the range gets a clean restart from byte 0;
- a tqdm bar shows progress; transient network errors are retried with back-off,
  then the next mirror is tried (mirrors are assumed to serve the same bytes,
  which the checksum then confirms);
- the finished file is checked against the registry's size and sha256 (or its
  published md5 while the sha256 is unknown, in which case the sha256 is
  printed so that it can be recorded), and only then renamed into place;
- a mismatch moves the file aside to ``NAME.bad`` and raises :class:`ChecksumError`
  naming both digests and the mirrors;
- ``NAME.sha256`` (``sha256sum`` format) records a verified file, so a re-run of a
  completed download does nothing. A file you placed by hand (for the sources
  that need a browser) is verified once, the same way.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

from ..config import data_root
from ..io import atomic_replace, atomic_write_text
from ._transport import NETWORK_ERRORS, HashState, MirrorRefused, fetch_into, hash_file, server_error_is_transient
from .registry import REGISTRY, RemoteFile, dataset_files, load_registry

__all__ = [
    "DownloadError", "ChecksumError", "ManualDownloadRequired", "download", "fetch_dataset",
    "downloads_dir", "is_downloaded", "describe", "load_registry", "REGISTRY",
]


class DownloadError(RuntimeError):
    """No source delivered the file."""


class ChecksumError(DownloadError):
    """The file arrived but its size or digest is not the registry's; it was moved aside."""


class ManualDownloadRequired(DownloadError):
    """The file has no source that can be fetched without a browser; the message says what to do."""


def downloads_dir(root: str | os.PathLike | None = None) -> Path:
    """``<data_root>/downloads``: where archives and their ``.sha256`` records live."""
    return data_root(root) / "downloads"


def _entry(name: str | RemoteFile, registry: dict[str, RemoteFile] | None) -> RemoteFile:
    if isinstance(name, RemoteFile):
        return name
    registry = REGISTRY if registry is None else registry
    if name not in registry:
        raise ValueError(f"name must be a registered file, one of {sorted(registry)}; got {name!r}")
    return registry[name]


def _sidecar(final: Path) -> Path:
    return final.with_name(final.name + ".sha256")


def _recorded_digest(final: Path) -> str | None:
    try:
        return _sidecar(final).read_text().split()[0]
    except (OSError, IndexError):
        return None


def is_downloaded(name: str | RemoteFile, root=None, registry=None) -> bool:
    """True when the file is in place with a verification record matching the registry."""
    entry = _entry(name, registry)
    final = downloads_dir(root) / entry.filename
    recorded = _recorded_digest(final)
    return (final.is_file() and recorded is not None
            and (entry.sha256 is None or recorded == entry.sha256)
            and (entry.sha256_prefix is None or recorded.startswith(entry.sha256_prefix))
            and (entry.size is None or final.stat().st_size == entry.size))


def _check(entry: RemoteFile, size: int, hashes: HashState) -> str | None:
    """What is wrong with a file of this size and these digests, or None."""
    sha = hashes.sha256.hexdigest()
    if entry.size is not None and size != entry.size:
        return f"size mismatch: expected {entry.size} bytes, received {size} bytes (sha256 {sha})"
    if entry.sha256 is not None and sha != entry.sha256:
        return f"sha256 mismatch: expected {entry.sha256}, received {sha}"
    if entry.sha256_prefix is not None and not sha.startswith(entry.sha256_prefix):
        return f"sha256 mismatch: expected a digest starting {entry.sha256_prefix}, received {sha}"
    if entry.sha256 is None and entry.md5 is not None and hashes.md5.hexdigest() != entry.md5:
        return f"md5 mismatch: expected {entry.md5}, received {hashes.md5.hexdigest()} (sha256 {sha})"
    return None


def _verify_into_place(entry: RemoteFile, src: Path, final: Path, hashes: HashState) -> Path:
    """Check ``src``; rename it to ``final`` and record its digest, or move it aside and raise."""
    size = src.stat().st_size
    problem = _check(entry, size, hashes)
    if problem is not None:
        bad = final.with_name(final.name + ".bad")
        os.replace(src, bad)
        sources = ", ".join(entry.urls) or "none (manual download)"
        raise ChecksumError(f"{entry.filename}: {problem}; the file is kept aside as {bad}; "
                            f"mirrors: {sources}. Re-run to fetch it again, or add a trusted mirror "
                            f"with a registry override")
    if src != final:
        atomic_replace(src, final)
    sha = hashes.sha256.hexdigest()
    atomic_write_text(_sidecar(final), f"{sha}  {final.name}\n")
    if entry.sha256 is None:
        how = (f"its first digits {entry.sha256_prefix} matched" if entry.sha256_prefix else
               f"md5 {entry.md5} matched" if entry.md5 else "no digest to check against")
        print(f"{entry.name}: sha256 {sha} ({size} bytes; {how}) is not in the registry yet; "
              f"record it where {entry.name!r} is declared (csmlab/data/registry.py for datasets)", file=sys.stderr)
    return final


def download(name: str | RemoteFile, root: str | os.PathLike | None = None, *,
             registry: dict[str, RemoteFile] | None = None, progress: bool = True,
             timeout: float = 60.0, retries: int = 3, backoff: float = 2.0) -> Path:
    """Fetch one registered file into ``<data_root>/downloads`` and return its path.

    ``retries`` more attempts are made on the same URL after a transient error
    (each resumes where the last stopped), sleeping ``backoff * 2**k`` seconds;
    then the next mirror is tried. Raises :class:`ChecksumError` (file moved
    aside), :class:`ManualDownloadRequired` (no fetchable source), or
    :class:`DownloadError` (every source failed; the ``.part`` stays for a resume).
    """
    entry = _entry(name, registry)
    if not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an int >= 0, got {retries!r}")
    if not timeout > 0 or backoff < 0:
        raise ValueError(f"timeout must be > 0 and backoff >= 0, got timeout={timeout!r}, backoff={backoff!r}")
    folder = downloads_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / entry.filename

    if final.exists():
        if is_downloaded(entry, root):
            return final  # verified before: nothing to do
        return _verify_into_place(entry, final, final, hash_file(final, progress, "verifying"))
    if not entry.urls:
        raise ManualDownloadRequired(f"{entry.name} has no automatic source: "
                                     + entry.manual.format(path=final) + ", then re-run")

    part = final.with_name(final.name + ".part")
    errors: list[str] = []
    for url in entry.urls:
        for attempt in range(retries + 1):
            try:
                hashes = fetch_into(url, part, expected_size=entry.size, timeout=timeout, progress=progress,
                                    desc=entry.filename)
            except MirrorRefused as err:
                errors.append(f"{url}: {err}")
                break  # this mirror will not serve the file: next mirror
            except NETWORK_ERRORS as err:
                if not server_error_is_transient(err):
                    errors.append(f"{url}: {err}")
                    break
                errors.append(f"{url} (attempt {attempt + 1}): {type(err).__name__}: {err}")
                if attempt < retries:
                    time.sleep(backoff * 2 ** attempt)
                continue
            return _verify_into_place(entry, part, final, hashes)
    kept = f"; {part.stat().st_size} bytes kept in {part} for a later resume" if part.exists() else ""
    manual = f"; by hand: {entry.manual.format(path=final)}" if entry.manual else ""
    raise DownloadError(f"{entry.name}: every source failed ({' | '.join(errors)}){kept}{manual}")


def fetch_dataset(dataset: str, root: str | os.PathLike | None = None, *,
                  registry: dict[str, RemoteFile] | None = None, progress: bool = True,
                  exclude: tuple[str, ...] = (), **download_kwargs) -> dict[str, Path]:
    """Download every file group ``dataset`` needs; return ``{file name: path}``.

    In a group of alternatives a file already on disk wins; otherwise they are
    tried in order. When none can be fetched, the errors of all are reported.
    Files named in ``exclude`` are left out (a group left empty is skipped).
    """
    spec = dataset_files(dataset)
    registry = REGISTRY if registry is None else registry
    folder = downloads_dir(root)
    out: dict[str, Path] = {}
    for group in spec.requires:
        group = tuple(n for n in group if n not in exclude)
        if not group:
            continue
        on_disk = [n for n in group if (folder / registry[n].filename).exists()]
        order = on_disk + [n for n in group if n not in on_disk]
        failures: list[DownloadError] = []
        for name in order:
            try:
                out[name] = download(name, root, registry=registry, progress=progress, **download_kwargs)
                break
            except ChecksumError:
                raise  # a wrong file is never papered over by an alternative
            except DownloadError as err:
                failures.append(err)
        else:
            if len(failures) == 1:
                raise failures[0]
            kind = (ManualDownloadRequired if all(isinstance(f, ManualDownloadRequired) for f in failures)
                    else DownloadError)
            raise kind(f"{dataset} needs one of {list(group)}: " + " | OR | ".join(str(f) for f in failures))
    return out


def _human(size: int | None) -> str:
    if size is None:
        return "size unknown"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.2f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def describe(name: str | RemoteFile, registry: dict[str, RemoteFile] | None = None) -> str:
    """A few lines about one file: name, size, digest status, sources, licence."""
    e = _entry(name, registry)
    digest = (f"sha256 {e.sha256}" if e.sha256 else
              f"sha256 {e.sha256_prefix}... (first digits checked; full digest printed on first download)"
              if e.sha256_prefix else
              f"sha256 unknown (md5 {e.md5} is checked)" if e.md5 else "sha256 unknown (printed on first download)")
    lines = [f"{e.name}: {e.filename}, {_human(e.size)}, {digest}"]
    lines += [f"  url: {u}" for u in e.urls]
    lines += [f"  retired link (not tried): {u}" for u in e.dead_urls]
    if e.manual:
        lines.append("  by hand: " + e.manual.format(path=f"<data_root>/downloads/{e.filename}"))
    lines.append(f"  licence: {e.licence}")
    return "\n".join(lines)


def sha256_of(path: str | os.PathLike) -> str:
    """The sha256 of a file on disk (for recording a digest by hand)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
