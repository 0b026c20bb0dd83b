"""Downloads against a local HTTP server on 127.0.0.1 (and a fake FTP server): never the internet."""

from __future__ import annotations

import ftplib
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from local_http import LocalServer

from csmlab.data import download as dl
from csmlab.data.download import ChecksumError, DownloadError, ManualDownloadRequired, download, fetch_dataset
from csmlab.data.registry import DATASETS, REGISTRY, RemoteFile, load_registry

DATA = os.urandom(300_000)
SHA = hashlib.sha256(DATA).hexdigest()
REPO = Path(__file__).resolve().parents[1]


def entry(*urls, data=DATA, sha=True, size=True, md5=None, filename="blob.bin", manual="") -> RemoteFile:
    return RemoteFile(name="blob", filename=filename, urls=tuple(urls), size=len(data) if size else None,
                      sha256=hashlib.sha256(data).hexdigest() if sha else None, md5=md5, licence="test",
                      manual=manual)


@pytest.fixture
def server():
    with LocalServer({"blob.bin": DATA, "other.bin": DATA[::-1], "short.bin": DATA[:1000]}) as srv:
        yield srv


def _files(root: Path) -> set[str]:
    return {p.name for p in (root / "downloads").iterdir()}


def test_a_download_completes_verified_and_a_rerun_does_nothing(tmp_path, server):
    e = entry(server.url("range", "blob.bin"))
    path = download(e, tmp_path, progress=False)
    assert path == tmp_path / "downloads" / "blob.bin" and path.read_bytes() == DATA
    assert _files(tmp_path) == {"blob.bin", "blob.bin.sha256"}  # no .part left behind
    assert (tmp_path / "downloads" / "blob.bin.sha256").read_text() == f"{SHA}  blob.bin\n"
    n, mtime = len(server.requests), path.stat().st_mtime_ns
    assert download(e, tmp_path, progress=False) == path
    assert len(server.requests) == n and path.stat().st_mtime_ns == mtime


def test_an_unknown_digest_is_printed_for_recording(tmp_path, server, capsys):
    download(entry(server.url("range", "blob.bin"), sha=False, size=False), tmp_path, progress=False)
    err = capsys.readouterr().err
    assert SHA in err and "not in the registry yet" in err and "300000 bytes" in err


def test_a_connection_dropped_midway_is_resumed_with_range(tmp_path, server):
    server.drops["blob.bin"] = 1
    path = download(entry(server.url("drop", "blob.bin")), tmp_path, progress=False, retries=1, backoff=0)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA
    assert [r for _, r in server.requests] == [None, f"bytes={len(DATA) // 2}-"]


def test_a_killed_download_resumes_in_a_new_process_with_the_same_digest(tmp_path, server):
    part = tmp_path / "downloads" / "blob.bin.part"
    part.parent.mkdir(parents=True)
    # The child runs the transfer layer only, so that it does not pay for importing torch.
    code = ("import sys; from pathlib import Path; from csmlab.data._transport import fetch_into; "
            f"fetch_into({server.url('slow', 'blob.bin')!r}, Path({str(part)!r}), expected_size={len(DATA)}, "
            "timeout=30, progress=False, desc='x')")
    child = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)
    deadline = time.monotonic() + 30
    while not (part.exists() and part.stat().st_size >= 60_000) and time.monotonic() < deadline:
        time.sleep(0.02)
    child.kill()
    child.wait()
    got = part.stat().st_size
    assert 60_000 <= got < len(DATA), "the child should have been killed midway"
    path = download(entry(server.url("range", "blob.bin")), tmp_path, progress=False)
    assert server.requests[-1] == ("/range/blob.bin", f"bytes={got}-")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA


def test_a_server_that_ignores_range_gets_a_clean_restart(tmp_path, server):
    part = tmp_path / "downloads" / "blob.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"garbage from an older, different file" * 100)
    path = download(entry(server.url("norange", "blob.bin")), tmp_path, progress=False)
    assert server.requests[-1][1] == f"bytes={3700}-"  # it asked to resume ...
    assert path.read_bytes() == DATA  # ... got 200 and the whole file, and kept none of the garbage


def test_a_corrupted_file_is_rejected_kept_aside_and_reported(tmp_path, server):
    e = entry(server.url("range", "other.bin"), server.url("range", "blob.bin"))
    with pytest.raises(ChecksumError) as info:
        download(e, tmp_path, progress=False)
    msg = str(info.value)
    wrong = hashlib.sha256(DATA[::-1]).hexdigest()
    assert f"expected {SHA}" in msg and f"received {wrong}" in msg
    assert server.url("range", "other.bin") in msg and server.url("range", "blob.bin") in msg
    assert "\n" not in msg
    assert _files(tmp_path) == {"blob.bin.bad"}
    assert (tmp_path / "downloads" / "blob.bin.bad").read_bytes() == DATA[::-1]


def test_a_published_md5_is_checked_while_the_sha256_is_unknown(tmp_path, server):
    with pytest.raises(ChecksumError, match=r"md5 mismatch: expected 0{32}"):
        download(entry(server.url("range", "blob.bin"), sha=False, md5="0" * 32), tmp_path, progress=False)
    good_md5 = hashlib.md5(DATA).hexdigest()
    (tmp_path / "downloads" / "blob.bin.bad").unlink()
    path = download(entry(server.url("range", "blob.bin"), sha=False, md5=good_md5), tmp_path, progress=False)
    assert path.read_bytes() == DATA


def test_bad_mirrors_are_skipped_for_the_next_one(tmp_path, server):
    e = entry(server.url("range", "missing.bin"),   # 404
              server.url("html", "blob.bin"),       # a confirmation page, not the file
              server.url("range", "short.bin"),     # the wrong size
              server.url("range", "blob.bin"))
    assert download(e, tmp_path, progress=False, retries=0).read_bytes() == DATA


def test_when_every_source_fails_the_partial_file_is_kept(tmp_path, server):
    server.drops["blob.bin"] = 10
    with pytest.raises(DownloadError, match="every source failed") as info:
        download(entry(server.url("drop", "blob.bin")), tmp_path, progress=False, retries=1, backoff=0)
    assert "for a later resume" in str(info.value)
    part = tmp_path / "downloads" / "blob.bin.part"
    assert part.stat().st_size == len(DATA) // 2 + (len(DATA) - len(DATA) // 2) // 2
    assert part.read_bytes() == DATA[:part.stat().st_size]


def test_a_manual_file_explains_itself_then_accepts_a_placed_copy(tmp_path):
    e = entry(manual="open https://example.org/share and save it as {path}")
    with pytest.raises(ManualDownloadRequired, match=f"save it as {tmp_path / 'downloads' / 'blob.bin'}"):
        download(e, tmp_path, progress=False)
    (tmp_path / "downloads" / "blob.bin").write_bytes(DATA)
    assert download(e, tmp_path, progress=False).read_bytes() == DATA
    assert dl.is_downloaded(e, tmp_path)
    (tmp_path / "downloads" / "blob.bin.sha256").unlink()
    (tmp_path / "downloads" / "blob.bin").write_bytes(DATA[:-1] + bytes([DATA[-1] ^ 1]))  # a wrong copy placed by hand
    # (the last byte flipped, never kept: a fixed byte equals random DATA's last one time in 256)
    with pytest.raises(ChecksumError, match="sha256 mismatch|size mismatch"):
        download(e, tmp_path, progress=False)
    assert _files(tmp_path) == {"blob.bin.bad"}


class _FakeFTP:
    """Enough of ftplib.FTP for _fetch_ftp: serves DATA, optionally cutting the first transfer."""

    log: list = []
    refuse_rest = False
    cut_first = False

    def __init__(self, timeout=None):
        pass

    def connect(self, host, port):
        self.log.append(("connect", host, port))

    def login(self, user, password):
        self.log.append(("login", user))

    def voidcmd(self, cmd):
        pass

    def size(self, path):
        return len(DATA)

    def transfercmd(self, cmd, rest=None):
        self.log.append((cmd, rest))
        if rest and _FakeFTP.refuse_rest:
            raise ftplib.error_perm("502 REST not implemented")
        payload = DATA[rest or 0:]
        if _FakeFTP.cut_first:
            _FakeFTP.cut_first = False
            payload = payload[:100_000]
        ours, theirs = socket.socketpair()

        def send():
            with ours:
                ours.sendall(payload)
        threading.Thread(target=send, daemon=True).start()
        return theirs

    def voidresp(self):
        pass

    def close(self):
        pass


@pytest.mark.parametrize("refuse_rest", [False, True])
def test_ftp_resumes_with_rest_or_restarts_cleanly(tmp_path, monkeypatch, refuse_rest):
    monkeypatch.setattr(ftplib, "FTP", _FakeFTP)
    monkeypatch.setattr(_FakeFTP, "log", [])
    monkeypatch.setattr(_FakeFTP, "refuse_rest", refuse_rest)
    monkeypatch.setattr(_FakeFTP, "cut_first", True)
    url = "ftp://cs.example.org/cs/cvgl/PASCAL3D+_release1.1.zip"
    path = download(entry(url), tmp_path, progress=False, retries=1, backoff=0)
    assert path.read_bytes() == DATA
    retr = [x for x in _FakeFTP.log if x[0].startswith("RETR")]
    assert retr[0] == ("RETR /cs/cvgl/PASCAL3D+_release1.1.zip", None)
    assert retr[1] == ("RETR /cs/cvgl/PASCAL3D+_release1.1.zip", 100_000)  # resumed where it stopped
    assert len(retr) == (3 if refuse_rest else 2)  # a refused REST means one clean restart from 0


def test_dataset_groups_need_one_alternative_and_say_how_to_get_each(tmp_path, server):
    registry = load_registry({"cub_200_2011": {"urls": [server.url("range", "blob.bin")], "size": len(DATA),
                                               "md5": None, "sha256": SHA}})
    with pytest.raises(ManualDownloadRequired) as info:
        fetch_dataset("cub", tmp_path, registry=registry, progress=False)
    msg = str(info.value)
    assert "dropbox.com/sh/ea3yprgrcjuzse5" in msg and "cmu.box.com" in msg and "\n" not in msg
    assert (tmp_path / "downloads" / "CUB_200_2011.tgz").read_bytes() == DATA  # the first group did finish
    (tmp_path / "downloads" / "cachedir.zip").write_bytes(b"placed by hand")
    paths = fetch_dataset("cub", tmp_path, registry=registry, progress=False)
    assert sorted(paths) == ["csm_cachedir", "cub_200_2011"]


def test_the_registry_records_what_is_known_and_only_that():
    cub = REGISTRY["cub_200_2011"]
    assert cub.size == 1150585339 and cub.md5 == "97eceeb196236b17998738112f37df78"
    assert cub.urls[0].startswith("https://data.caltech.edu/records/65de6-vp158/")
    cmr = REGISTRY["cmr_cachedir"]
    assert cmr.urls == () and all("berkeley.edu" in u for u in cmr.dead_urls) and "dropbox" in cmr.manual
    assert REGISTRY["unsup3d_synface"].urls == ("https://www.robots.ox.ac.uk/~vgg/research/unsup3d/data/synface.zip",)
    assert REGISTRY["pascal3d_release1_1"].urls[0].startswith("ftp://cs.stanford.edu/")
    for e in REGISTRY.values():
        assert e.licence and not set(e.urls) & set(e.dead_urls)
    for spec in DATASETS.values():
        assert all(name in REGISTRY for group in spec.requires for name in group)
    assert "retired link (not tried)" in dl.describe("cmr_cachedir")


def test_registry_overrides_are_validated():
    with pytest.raises(ValueError, match="unknown file"):
        load_registry({"nope": {}})
    with pytest.raises(ValueError, match="keys among"):
        load_registry({"cub_200_2011": {"licence": "mine"}})
    with pytest.raises(ValueError, match="64 lowercase hex"):
        load_registry({"cub_200_2011": {"sha256": "abc"}})
    assert load_registry({"cub_200_2011": {"md5": None}})["cub_200_2011"].md5 is None
    with pytest.raises(ValueError, match="registered file"):
        download("no_such_file")
