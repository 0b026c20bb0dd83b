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


# --- adversarial archives (issue 20): each asserts the error class and that nothing was written outside dest


def _assert_refused(archive: Path, tmp_path: Path, dest: Path, before: set[str], match: str) -> None:
    """``extract`` raises UnsafeArchiveError (matching ``match``) and writes nothing anywhere."""
    with pytest.raises(UnsafeArchiveError, match=match):
        extract(archive, dest)
    _assert_nothing_written(tmp_path, dest, before)


def _zip_symlink(zf: zipfile.ZipFile, name: str, target: str) -> None:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    zf.writestr(info, target)


# Each hop looks inside on its own (x/l1 -> l0/.. is x), but l0 is really the root, so l3 is outside dest.
_CHAIN = [("x/l0", ".."), ("x/l1", "l0/.."), ("x/l2", "l1/.."), ("x/l3", "l2/../pwned.txt")]


def test_zip_symlink_chain_with_a_same_name_member_is_refused_before_writing(tmp_path, sandbox):
    dest, before = sandbox
    archive = tmp_path / "chain.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("x/real.txt", b"fine")
        for name, target in _CHAIN:
            _zip_symlink(zf, name, target)
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr("x/l3", b"pwned")  # a regular member of the link's name: old code wrote through the chain
    _assert_refused(archive, tmp_path, dest, before, "outside")
    assert not list(tmp_path.rglob("pwned.txt"))


def test_zip_same_name_member_over_a_harmless_link_is_refused(tmp_path, sandbox):
    dest, before = sandbox
    archive = tmp_path / "dup.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("x/real.txt", b"fine")
        _zip_symlink(zf, "x/alias", "real.txt")
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr("x/alias", b"replaced")
    _assert_refused(archive, tmp_path, dest, before, "appears twice")
    assert (tmp_path / "box").exists() and not list(dest.iterdir())


def test_zip_duplicate_regular_members_are_refused(tmp_path, sandbox):
    dest, before = sandbox
    archive = tmp_path / "dup2.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.txt", b"one")
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr("a.txt", b"two")
    _assert_refused(archive, tmp_path, dest, before, "appears twice")


@pytest.mark.parametrize("hard_target", ["x/l3/etc/passwd", "x/l2/../../etc/passwd", "x/alias"])
def test_tar_hardlink_through_a_symlink_chain_is_refused(tmp_path, sandbox, hard_target):
    dest, before = sandbox
    entries = [_file("x/real.txt", b"fine"), _link("x/alias", "real.txt")]
    if hard_target != "x/alias":
        entries += [_link(name, target) for name, target in _CHAIN]
    archive = _tar(tmp_path / "hard.tgz", entries + [_link("passwd", hard_target, tarfile.LNKTYPE)])
    _assert_refused(archive, tmp_path, dest, before, "outside|regular file member")


def test_python_data_filter_errors_become_unsafe_archive_errors(tmp_path, sandbox, monkeypatch):
    if not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no tarfile data filter")
    from csmlab.data import extract as ex

    dest, before = sandbox
    monkeypatch.setattr(ex, "validate", lambda members: None)  # only Python's filter is left to stop it
    archive = _tar(tmp_path / "f.tgz", [_file("ok.txt"), _link("link", "../../outside")])
    _assert_refused(archive, tmp_path, dest, before, "data filter.*LinkOutsideDestinationError")


def test_our_rules_hold_on_a_python_without_the_data_filter(tmp_path, sandbox, monkeypatch):
    dest, before = sandbox
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    for i, entries in enumerate([[_link(n, t) for n, t in _CHAIN], [_link("passwd", "/etc/passwd", tarfile.LNKTYPE)]]):
        with pytest.raises(UnsafeArchiveError):
            extract(_tar(tmp_path / f"nofilter{i}.tgz", entries), dest)
    _assert_nothing_written(tmp_path, dest, before)


@pytest.mark.parametrize("name", ["..\\evil.txt", "a\\..\\..\\evil.txt", "C:\\evil.txt", "\\evil.txt"])
def test_backslash_escapes_are_refused(tmp_path, sandbox, name):
    dest, before = sandbox
    archive = tmp_path / "bs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", b"fine")
        zf.writestr(name, b"pwned")
    _assert_refused(archive, tmp_path, dest, before, "'\\.\\.'|absolute")
    assert not list(tmp_path.rglob("*evil*"))


def test_a_zip_bomb_over_the_ratio_limit_is_refused(tmp_path, sandbox):
    from csmlab.data.extract import DEFAULT_MAX_RATIO, RATIO_FLOOR_BYTES

    dest, before = sandbox
    archive = tmp_path / "bomb.zip"
    zeros = b"\0" * (1 << 20)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("bomb.bin", "w", force_zip64=True) as f:
        for _ in range(RATIO_FLOOR_BYTES // len(zeros) + 16):
            f.write(zeros)
    assert archive.stat().st_size * DEFAULT_MAX_RATIO < RATIO_FLOOR_BYTES  # it really is a bomb
    _assert_refused(archive, tmp_path, dest, before, "max_ratio=.*zip bomb")


def test_the_size_limit_is_checked_first_and_can_be_lifted(tmp_path, monkeypatch):
    archive = _tar(tmp_path / "big.tgz", [_file("a.bin", b"a" * 5000), _file("b.bin", b"b" * 5000)])
    with pytest.raises(UnsafeArchiveError, match="10000 bytes, over the limit max_total_bytes=8000"):
        extract(archive, tmp_path / "out", max_total_bytes=8000)
    assert not (tmp_path / "out").exists()
    monkeypatch.setenv("CSMLAB_EXTRACT_NO_LIMITS", "1")
    assert [p.name for p in extract(archive, tmp_path / "out", max_total_bytes=8000)] == ["a.bin", "b.bin"]


def test_a_killed_extraction_leaves_no_temp_folder_after_the_next_run(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dest = tmp_path / "out"
    stale = dest / f".extract.{int(dead.stdout)}.0123abcd.csmlab-tmp"
    (stale / "DATA").mkdir(parents=True)
    (stale / "DATA" / "half.bin").write_bytes(b"half")
    extract(_tar(tmp_path / "a.tgz", [_file("DATA/x.txt")]), dest)
    assert sorted(p.name for p in dest.iterdir()) == [MARKER_DIR, "DATA"]


def test_modes_lose_setuid_and_group_write(tmp_path):
    info, data = _file("run.sh", b"#!/bin/sh\n")
    info.mode = 0o6777
    extract(_tar(tmp_path / "m.tgz", [(info, data)]), tmp_path / "out")
    assert stat.S_IMODE((tmp_path / "out" / "run.sh").stat().st_mode) == 0o755


def test_a_member_colliding_on_disk_is_refused(tmp_path, sandbox, monkeypatch):
    from csmlab.data import extract as ex

    dest, before = sandbox
    monkeypatch.setattr(ex, "validate", lambda members: None)   # as on a case-insensitive disk: names differ
    archive = _tar(tmp_path / "case.tgz", [_file("a.txt", b"1"), _file("a.txt", b"2")])
    _assert_refused(archive, tmp_path, dest, before, "collides with an earlier member")
