"""The one atomic-write helper: complete or absent, unique temp names, cleanup on error, stale temps swept."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from csmlab.io import TEMP_SUFFIX, atomic_write, atomic_write_text, sweep_stale_temps, temp_path


def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)


def test_a_write_appears_complete_with_ordinary_permissions(tmp_path):
    path = atomic_write_text(tmp_path / "sub" / "a.json", "{}")
    assert path.read_text() == "{}" and os.listdir(tmp_path / "sub") == ["a.json"]
    assert (path.stat().st_mode & 0o777) == 0o644


def test_an_error_mid_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = atomic_write_text(tmp_path / "a.txt", "old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(path, "w") as f:
            f.write("half")
            raise KeyboardInterrupt
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


def test_temp_names_are_unique_per_process_and_per_call(tmp_path):
    a, b = temp_path(tmp_path / "x.pt"), temp_path(tmp_path / "x.pt")
    assert a != b and f".{os.getpid()}." in a.name and a.name.endswith(TEMP_SUFFIX)


def test_stale_temps_of_dead_processes_are_swept_and_live_ones_kept(tmp_path):
    dead = tmp_path / f".x.pt.{_dead_pid()}.0123abcd{TEMP_SUFFIX}"
    dead.write_bytes(b"half")
    dead_dir = tmp_path / f".extract.{_dead_pid()}.89abcdef{TEMP_SUFFIX}"
    (dead_dir / "a").mkdir(parents=True)
    live = temp_path(tmp_path / "y.pt")
    live.write_bytes(b"in progress")
    other = tmp_path / ".x.pt.123.tmp"   # not this helper's pattern: never touched
    other.write_bytes(b"someone else's")
    atomic_write_text(tmp_path / "z.txt", "z")   # every writer sweeps its folder first
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, "z.txt"])
    assert sweep_stale_temps(tmp_path / "missing") == []


def test_bad_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "a", "a"):
            pass
