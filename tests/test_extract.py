"""Safe extraction: official-looking archives unpack; hostile ones are refused with nothing written."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from csmlab.data.extract import MARKER_DIR, UnsafeArchiveError, extract, is_extracted, list_members


def _tar(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _everything_under(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*")}


@pytest.fixture
def sandbox(tmp_path):
    """(dest, witness): dest is the target; witness lists what exists around it beforehand."""
    dest = tmp_path / "box" / "dest"
    dest.mkdir(parents=True)
    return dest, _everything_under(tmp_path)


def _assert_nothing_written(tmp_path: Path, dest: Path, before: set[str]) -> None:
    after = _everything_under(tmp_path)
    assert after - before <= {p for p in after if p.endswith((".zip", ".tgz", ".tar"))}, after - before
    assert list(dest.iterdir()) == []


@pytest.mark.parametrize("kind", ["tgz", "tar", "zip"])
def test_official_layout_extracts_and_second_run_is_a_no_op(tmp_path, kind):
    src = tmp_path / "src"
    (src / "DATA" / "images" / "a").mkdir(parents=True)
    (src / "DATA" / "images" / "a" / "1.jpg").write_bytes(b"\xff\xd8jpeg")
    (src / "DATA" / "list.txt").write_text("1 a/1.jpg\n")
    (src / "attributes.txt").write_text("attr\n")
    archive = tmp_path / f"a.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for p in sorted(src.rglob("*")):
                zf.write(p, p.relative_to(src).as_posix())
    else:
        with tarfile.open(archive, "w:gz" if kind == "tgz" else "w") as tf:
            tf.add(src / "DATA", arcname="DATA")
            tf.add(src / "attributes.txt", arcname="attributes.txt")
    dest = tmp_path / "out"
    tops = extract(archive, dest)
    assert sorted(p.name for p in tops) == ["DATA", "attributes.txt"]
    assert (dest / "DATA" / "images" / "a" / "1.jpg").read_bytes() == b"\xff\xd8jpeg"
    assert is_extracted(archive, dest)
    assert sorted(p.name for p in dest.iterdir()) == [MARKER_DIR, "DATA", "attributes.txt"]  # no temp left
    mtime = (dest / "DATA" / "list.txt").stat().st_mtime_ns
    (dest / "DATA" / "list.txt").write_text("edited\n")  # a re-run must not touch extracted files
    assert extract(archive, dest) == tops
    assert (dest / "DATA" / "list.txt").read_text() == "edited\n"
    assert mtime <= (dest / "DATA" / "list.txt").stat().st_mtime_ns


def test_a_tar_made_from_inside_its_folder_extracts(tmp_path):
    root_entry = tarfile.TarInfo("./")
    root_entry.type = tarfile.DIRTYPE
    archive = _tar(tmp_path / "dot.tgz", [(root_entry, None), _file("./DATA/x.txt", b"x"), _file("./y.txt", b"y")])
    assert sorted(p.name for p in extract(archive, tmp_path / "out")) == ["DATA", "y.txt"]
    assert (tmp_path / "out" / "DATA" / "x.txt").read_bytes() == b"x"


def test_zip_with_dotdot_is_rejected_and_nothing_is_written(tmp_path, sandbox):
    dest, before = sandbox
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("good/ok.txt", b"fine")
        zf.writestr("../evil", b"pwned")
    with pytest.raises(UnsafeArchiveError, match=r"'\.\.\/evil'.*'\.\.'"):
        extract(archive, dest)
    _assert_nothing_written(tmp_path, dest, before)
    assert not (dest.parent / "evil").exists() and not (tmp_path / "evil").exists()


@pytest.mark.parametrize("name", ["/tmp/csmlab_abs_evil", "C:/evil.txt", "a/../../evil"])
def test_tar_with_absolute_or_escaping_path_is_rejected(tmp_path, sandbox, name):
    dest, before = sandbox
    archive = _tar(tmp_path / "evil.tgz", [_file("ok.txt"), _file(name, b"pwned")])
    with pytest.raises(UnsafeArchiveError, match="absolute|'\\.\\.'"):
        extract(archive, dest)
    _assert_nothing_written(tmp_path, dest, before)
    assert not Path("/tmp/csmlab_abs_evil").exists()


@pytest.mark.parametrize("entries, message", [
    ([_link("link", "../../outside")], "outside"),
    ([_link("link", "/etc/passwd")], "absolute"),
    ([_link("sub/link", "../../x")], "outside"),
    ([_link("hard", "../outside", tarfile.LNKTYPE)], "outside"),
    ([_link("hard", "/etc/passwd", tarfile.LNKTYPE)], "absolute"),
    ([_link("d", "sub"), _file("d/through.txt")], "through the link"),
])
def test_tar_with_a_link_leaving_the_target_is_rejected(tmp_path, sandbox, entries, message):
    dest, before = sandbox
    archive = _tar(tmp_path / "links.tgz", [_file("sub/ok.txt"), *entries])
    with pytest.raises(UnsafeArchiveError, match=message):
        extract(archive, dest)
    _assert_nothing_written(tmp_path, dest, before)


@pytest.mark.parametrize("kind, word", [(tarfile.CHRTYPE, "device"), (tarfile.BLKTYPE, "device"),
                                        (tarfile.FIFOTYPE, "FIFO")])
def test_tar_with_special_files_is_rejected(tmp_path, sandbox, kind, word):
    dest, before = sandbox
    info = tarfile.TarInfo("dev/null0")
    info.type, info.devmajor, info.devminor = kind, 1, 3
    archive = _tar(tmp_path / "dev.tar", [_file("ok.txt"), (info, None)], mode="w")
    with pytest.raises(UnsafeArchiveError, match=word):
        extract(archive, dest)
    _assert_nothing_written(tmp_path, dest, before)


def test_zip_symlink_pointing_outside_is_rejected(tmp_path, sandbox):
    dest, before = sandbox
    archive = tmp_path / "zlink.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("data/link")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "../../../etc")
    with pytest.raises(UnsafeArchiveError, match="outside"):
        extract(archive, dest)
    _assert_nothing_written(tmp_path, dest, before)


def test_links_inside_the_tree_are_kept(tmp_path):
    archive = _tar(tmp_path / "ok.tgz", [_file("pkg/real.txt", b"hello"), _link("pkg/alias.txt", "real.txt"),
                                         _link("pkg/copy.txt", "pkg/real.txt", tarfile.LNKTYPE)])
    assert [m.kind for m in list_members(archive)] == ["file", "symlink", "hardlink"]
    extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "pkg" / "alias.txt").is_symlink()
    assert (tmp_path / "out" / "pkg" / "alias.txt").read_bytes() == b"hello"
    assert (tmp_path / "out" / "pkg" / "copy.txt").read_bytes() == b"hello"


def test_existing_entries_are_never_overwritten(tmp_path):
    archive = _tar(tmp_path / "a.tgz", [_file("DATA/x.txt", b"new")])
    dest = tmp_path / "out"
    (dest / "DATA").mkdir(parents=True)
    (dest / "DATA" / "x.txt").write_bytes(b"mine")
    with pytest.raises(ValueError, match="already holds"):
        extract(archive, dest)
    assert (dest / "DATA" / "x.txt").read_bytes() == b"mine"


def test_a_damaged_archive_leaves_no_partial_output(tmp_path):
    archive = tmp_path / "damaged.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("DATA/first.bin", b"A" * 5000)
        zf.writestr("DATA/second.bin", b"B" * 5000)
    raw = bytearray(archive.read_bytes())
    raw[raw.index(b"B" * 100) + 50] ^= 0xFF  # corrupt the second member's data: its CRC fails mid-extraction
    archive.write_bytes(bytes(raw))
    dest = tmp_path / "out"
    with pytest.raises(ValueError, match="damaged or truncated"):
        extract(archive, dest)
    assert [p.name for p in dest.iterdir()] == []  # the first member went to a temp folder, now removed


def test_a_truncated_archive_is_reported_as_damaged(tmp_path):
    good = _tar(tmp_path / "good.tar", [_file("DATA/a.bin", os.urandom(200_000)), _file("DATA/b.bin", b"b")], "w")
    broken = tmp_path / "broken.tar"
    broken.write_bytes(good.read_bytes()[:150_000])
    with pytest.raises(ValueError, match="damaged or truncated"):
        extract(broken, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_non_archives_are_refused_with_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="neither a zip nor a tar"):
        extract(tmp_path / "notes.txt", tmp_path / "out")
    with pytest.raises(ValueError, match="existing file"):
        extract(tmp_path / "missing.zip", tmp_path / "out")
