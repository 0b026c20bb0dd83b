"""Byte transport for :mod:`csmlab.data.download`: HTTP(S) with Range, FTP with REST, file://.

``fetch_into(url, part, ...)`` makes ``part`` hold the whole remote file,
resuming from the bytes already in it when the server allows, and returns the
sha256/md5 of the complete content. It raises :class:`MirrorRefused` when this
source will never serve the file (404, an HTML page, the wrong size...) and a
network error (one of ``NETWORK_ERRORS``) when trying again may help.
"""

from __future__ import annotations

import ftplib
import hashlib
import http.client
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

CHUNK = 1 << 16
USER_AGENT = "csmlab-downloader/0.1 (python urllib)"


class MirrorRefused(Exception):
    """This source will not deliver the file; try the next mirror."""


class IncompleteTransfer(ConnectionError):
    """The connection ended before the announced number of bytes arrived."""


NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError,
                  socket.timeout, ftplib.Error, EOFError)


def server_error_is_transient(err: BaseException) -> bool:
    """False for HTTP client errors other than 408/429 (retrying the same URL will not help)."""
    if isinstance(err, urllib.error.HTTPError):
        return err.code >= 500 or err.code in (408, 429)
    return not isinstance(err, ftplib.error_perm)


@dataclass
class HashState:
    sha256: "hashlib._Hash" = field(default_factory=hashlib.sha256)
    md5: "hashlib._Hash" = field(default_factory=hashlib.md5)

    def update(self, chunk: bytes) -> None:
        self.sha256.update(chunk)
        self.md5.update(chunk)


def _bar(total: int | None, initial: int, desc: str, progress: bool):
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=desc, disable=not progress, leave=False)


def hash_file(path: Path, progress: bool = False, desc: str = "hashing") -> HashState:
    """Digests of a file on disk (used to resume, and to verify a file placed by hand)."""
    state = HashState()
    if not path.exists():
        return state
    with open(path, "rb") as f, _bar(path.stat().st_size, 0, desc, progress) as bar:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            state.update(chunk)
            bar.update(len(chunk))
    return state


def _copy_stream(read, part: Path, append: bool, expected: int | None, total: int | None,
                 desc: str, progress: bool) -> HashState:
    """Append (or write from scratch) what ``read(n)`` yields; check the byte count."""
    state = hash_file(part) if append else HashState()
    offset = part.stat().st_size if append else 0
    received = 0
    with open(part, "ab" if append else "wb") as f, _bar(total, offset, desc, progress) as bar:
        while True:
            chunk = read(CHUNK)
            if not chunk:
                break
            f.write(chunk)
            state.update(chunk)
            bar.update(len(chunk))
            received += len(chunk)
    if expected is not None and received < expected:
        raise IncompleteTransfer(f"connection closed after {offset + received} of "
                                 f"{offset + expected} bytes")
    return state


def _check_total(total: int | None, expected_size: int | None) -> None:
    if total is not None and expected_size is not None and total != expected_size:
        raise MirrorRefused(f"serves {total} bytes but the registry expects {expected_size}")


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _fetch_http(url: str, part: Path, expected_size: int | None, timeout: float, progress: bool,
                desc: str) -> HashState:
    for _ in range(2):  # a second pass only after a clean restart
        offset = part.stat().st_size if part.exists() else 0
        if expected_size is not None and offset > expected_size:
            part.unlink()  # longer than the file can be: start over
            offset = 0
        if expected_size is not None and offset == expected_size:
            return hash_file(part)  # a previous run got every byte before it stopped
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
        except urllib.error.HTTPError as err:
            if err.code == 416 and offset:
                m = re.search(r"/(\d+)", err.headers.get("Content-Range", "") or "")
                if m and int(m.group(1)) == offset:
                    return hash_file(part)  # the part already holds the whole file
                part.unlink()  # the part is longer than the remote file: clean restart
                continue
            if 400 <= err.code < 500 and err.code not in (408, 429):
                raise MirrorRefused(f"HTTP {err.code} {err.reason}") from None
            raise
        with resp:
            ctype = resp.headers.get("Content-Type", "") or ""
            if ctype.startswith("text/html") and not part.name.removesuffix(".part").endswith((".html", ".htm")):
                raise MirrorRefused("returned an HTML page instead of the file (a login or confirmation page?)")
            length = resp.headers.get("Content-Length")
            length = int(length) if length is not None and length.isdigit() else None
            if resp.status == 206:
                m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", "") or "")
                if m is None or int(m.group(1)) != offset:
                    part.unlink()  # the server sent some other range: restart cleanly
                    continue
                total = int(m.group(3)) if m.group(3) != "*" else None
                _check_total(total, expected_size)
                return _copy_stream(resp.read, part, True, length, total, desc, progress)
            if resp.status == 200:
                # Either a fresh start or a server that ignores Range: both write from byte 0.
                _check_total(length, expected_size)
                return _copy_stream(resp.read, part, False, length, length, desc, progress)
            raise MirrorRefused(f"unexpected HTTP status {resp.status}")
    raise MirrorRefused("the server keeps answering with a range we did not ask for")


def _fetch_ftp(url: str, part: Path, expected_size: int | None, timeout: float, progress: bool,
               desc: str) -> HashState:
    u = urllib.parse.urlsplit(url)
    path = urllib.parse.unquote(u.path)
    ftp = ftplib.FTP(timeout=timeout)
    try:
        ftp.connect(u.hostname, u.port or 21)
        ftp.login(u.username or "anonymous", u.password or "anonymous@")
        ftp.voidcmd("TYPE I")
        try:
            total = ftp.size(path)
        except ftplib.error_perm:
            total = None  # SIZE is optional in FTP
        _check_total(total, expected_size)
        offset = part.stat().st_size if part.exists() else 0
        if total is not None and offset > total:
            part.unlink()
            offset = 0
        if total is not None and offset == total and offset:
            return hash_file(part)
        try:
            conn = ftp.transfercmd(f"RETR {path}", rest=offset or None)
        except ftplib.error_perm:
            if not offset:
                raise
            offset = 0  # this server refuses REST: clean restart
            conn = ftp.transfercmd(f"RETR {path}")
        with conn:
            expected = None if total is None else total - offset
            state = _copy_stream(conn.recv, part, offset > 0, expected, total, desc, progress)
        ftp.voidresp()
        return state
    finally:
        ftp.close()


def _fetch_file(url: str, part: Path, expected_size: int | None, timeout: float, progress: bool,
                desc: str) -> HashState:
    src = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    if not src.is_file():
        raise MirrorRefused(f"no such file {src}")
    total = src.stat().st_size
    _check_total(total, expected_size)
    offset = part.stat().st_size if part.exists() else 0
    if offset > total:
        part.unlink()
        offset = 0
    with open(src, "rb") as f:
        f.seek(offset)
        return _copy_stream(f.read, part, offset > 0, total - offset, total, desc, progress)


_SCHEMES = {"http": _fetch_http, "https": _fetch_http, "ftp": _fetch_ftp, "file": _fetch_file}


def fetch_into(url: str, part: Path, *, expected_size: int | None, timeout: float, progress: bool,
               desc: str) -> HashState:
    """Make ``part`` hold the file at ``url`` (resuming when possible); return its digests."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in _SCHEMES:
        raise MirrorRefused(f"unsupported URL scheme {scheme!r}")
    return _SCHEMES[scheme](url, part, expected_size, timeout, progress, desc)
