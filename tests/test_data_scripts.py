"""data_scripts/*.py: --help, and full prepare runs against a local HTTP server (never the internet)."""

from __future__ import annotations

import hashlib
import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures_real import build_cmr_cachedir, build_cub, build_pascal3d, build_synface, make_tar, make_zip
from local_http import LocalServer

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "data_scripts"


def _main(script: str):
    return runpy.run_path(str(SCRIPTS / script))["main"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """The three datasets' official archives, built from the fixtures."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("archives")
    build_cub(src / "cub")
    build_cmr_cachedir(src / "cub")
    build_pascal3d(src / "p3d")
    build_synface(src / "sf")
    return {"CUB_200_2011.tgz": make_tar(out / "CUB_200_2011.tgz", src / "cub", ["CUB_200_2011", "attributes.txt"]),
            "cachedir.tar.gz": make_tar(out / "cachedir.tar.gz", src / "cub", ["cachedir"]),
            "PASCAL3D+_release1.1.zip": make_zip(out / "PASCAL3D+_release1.1.zip", src / "p3d",
                                                 ["PASCAL3D+_release1.1"]),
            "synface.zip": make_zip(out / "synface.zip", src / "sf", ["synface"])}


@pytest.fixture
def server(archives):
    with LocalServer({name: path.read_bytes() for name, path in archives.items()}) as srv:
        yield srv


def _registry(tmp_path: Path, server: LocalServer, archives: dict, **corrupt) -> Path:
    """Overrides pointing each automatic file at the local server, with the fixtures' true digests."""
    names = {"cub_200_2011": "CUB_200_2011.tgz", "pascal3d_release1_1": "PASCAL3D+_release1.1.zip",
             "unsup3d_synface": "synface.zip"}
    reg = {key: {"urls": [server.url("range", fname)], "size": archives[fname].stat().st_size,
                 "sha256": corrupt.get(key, _sha(archives[fname])), "md5": None} for key, fname in names.items()}
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(reg))
    return path


@pytest.mark.parametrize("script", ["download.py", "prepare_cub.py", "prepare_pascal3d.py", "prepare_synface.py"])
def test_every_script_has_help(script):
    run = subprocess.run([sys.executable, str(SCRIPTS / script), "--help"], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0 and run.stdout.startswith("usage: " + script) and "--root" in run.stdout


def test_prepare_cub_end_to_end_then_idempotent(tmp_path, server, archives, capsys):
    root = tmp_path / "data"
    (root / "downloads").mkdir(parents=True)
    # CMR's archive has no live link: the learner places it by hand, and the script verifies it.
    (root / "downloads" / "cachedir.tar.gz").write_bytes(archives["cachedir.tar.gz"].read_bytes())
    argv = ["--root", str(root), "--registry", str(_registry(tmp_path, server, archives)), "--no-progress"]
    assert _main("prepare_cub.py")(argv) == 0
    first = capsys.readouterr()
    assert "images: 3\ntrain: 2\ntest: 1\n" in first.out and "cmr_val: True" in first.out
    assert f"cmr_cachedir: sha256 {_sha(archives['cachedir.tar.gz'])}" in first.err  # the digest to record
    assert (root / "cub" / "CUB_200_2011" / "images.txt").is_file()
    assert (root / "cub" / "cachedir" / "cub" / "sfm" / "anno_train.mat").is_file()
    n = len(server.requests)
    assert _main("prepare_cub.py")(argv) == 0
    assert len(server.requests) == n  # nothing downloaded again
    assert capsys.readouterr().out == first.out

    from csmlab.data.real.cub import CubDataset
    assert len(CubDataset(root, "train")) == 2 and len(CubDataset(root, "test")) == 1


def test_a_failing_prepare_script_exits_non_zero_with_one_line(tmp_path):
    run = subprocess.run([sys.executable, str(SCRIPTS / "prepare_synface.py"), "--root", str(tmp_path),
                          "--no-download", "--no-progress"], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)  # from elsewhere: the script finds csmlab on its own
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr == f"prepare_synface.py: error: synface.zip is not in {tmp_path / 'downloads'}; " \
                         "run without --no-download, or place it there\n"


def test_prepare_cub_says_in_one_line_where_cmrs_files_come_from(tmp_path, server, archives, capsys):
    root = tmp_path / "data"
    assert _main("prepare_cub.py")(["--root", str(root), "--registry", str(_registry(tmp_path, server, archives)),
                                    "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("prepare_cub.py: error: ") and err.count("\n") == 1
    assert "dropbox.com/sh/ea3yprgrcjuzse5" in err and str(root / "downloads" / "cachedir.tar.gz") in err
    assert _main("prepare_cub.py")(["--root", str(root), "--registry", str(_registry(tmp_path, server, archives)),
                                    "--no-progress", "--without-cmr"]) == 0
    assert "images: 3" in capsys.readouterr().out


def test_prepare_pascal3d_and_synface(tmp_path, server, archives, capsys):
    root, reg = tmp_path / "data", str(_registry(tmp_path, server, archives))
    assert _main("prepare_pascal3d.py")(["--root", str(root), "--registry", reg, "--no-progress"]) == 0
    assert "car_pascal: 2\ncar_imagenet: 2\n" in capsys.readouterr().out
    assert _main("prepare_synface.py")(["--root", str(root), "--registry", reg, "--no-progress"]) == 0
    assert "train: 4\nval: 1\ntest: 2\n" in capsys.readouterr().out
    assert _main("prepare_synface.py")(["--root", str(root), "--registry", reg, "--no-download",
                                        "--no-progress"]) == 0  # idempotent, and offline

    from csmlab.data.real.pascal3d import Pascal3DDataset
    from csmlab.data.real.synface import SynfaceDataset
    assert len(Pascal3DDataset(root, "car", "train")) == 2 and len(SynfaceDataset(root, "test")) == 2


def test_download_script_reports_a_bad_checksum_in_one_line(tmp_path, server, archives, capsys):
    root = tmp_path / "data"
    reg = _registry(tmp_path, server, archives, unsup3d_synface="0" * 64)
    assert _main("download.py")(["synface", "--root", str(root), "--registry", str(reg), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("download.py: error: synface.zip: sha256 mismatch: expected " + "0" * 64)
    assert _sha(archives["synface.zip"]) in err and err.count("\n") == 1
    assert (root / "downloads" / "synface.zip.bad").is_file() and not (root / "downloads" / "synface.zip").exists()


def test_download_script_lists_sources_and_fetches_single_files(tmp_path, server, archives, capsys):
    assert _main("download.py")(["--list"]) == 0
    out = capsys.readouterr().out
    assert "cub_200_2011: CUB_200_2011.tgz, 1.15 GB, sha256 unknown (md5 97eceeb196236b17998738112f37df78" in out
    assert "retired link (not tried): https://people.eecs.berkeley.edu/~shubhtuls/cachedir/cmr/cachedir.tar.gz" in out
    root, reg = tmp_path / "data", str(_registry(tmp_path, server, archives))
    assert _main("download.py")(["unsup3d_synface", "--root", str(root), "--registry", reg, "--no-progress"]) == 0
    assert capsys.readouterr().out == f"unsup3d_synface: {root / 'downloads' / 'synface.zip'}\n"
    assert _main("prepare_pascal3d.py")(["--root", str(root), "--no-download", "--no-progress"]) == 1
    assert "PASCAL3D+_release1.1.zip is not in" in capsys.readouterr().err


def test_bad_arguments_exit_non_zero():
    run = subprocess.run([sys.executable, str(SCRIPTS / "download.py")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "error: name a dataset or a file" in run.stderr
