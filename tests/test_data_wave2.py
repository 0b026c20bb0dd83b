"""Wave-2 datasets: every new registry entry downloaded from a local server (complete, resumed, corrupt),
safe extraction of each new archive format, and the prepare scripts end to end. Never the internet."""

from __future__ import annotations

import hashlib
import io
import json
import os
import runpy
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from fixtures_real import make_tar, make_zip
from fixtures_real2 import build_celeba, build_keypointnet, build_pf_pascal, build_spair
from local_http import LocalServer

from csmlab.data.download import ChecksumError, ManualDownloadRequired, download
from csmlab.data.extract import UnsafeArchiveError, extract
from csmlab.data.registry import DATASETS, REGISTRY, load_registry
from csmlab.data.registry_wave2 import BY_HAND, PLACE

SCRIPTS = Path(__file__).resolve().parents[1] / "data_scripts"
WAVE2 = ("celeba", "spair", "keypointnet", "pf_pascal", "pix3d", "acsm")
NEW_FILES = sorted({n for d in WAVE2 for group in DATASETS[d].requires for n in group})
AUTOMATIC = [n for n in NEW_FILES if REGISTRY[n].urls]
PAYLOAD = os.urandom(200_000)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_every_wave2_file_is_registered_with_a_source_and_a_licence():
    assert len(NEW_FILES) == 16 and set(BY_HAND) == {n for n in NEW_FILES if not REGISTRY[n].urls}
    for name in NEW_FILES:
        e = REGISTRY[name]
        assert e.licence and (e.urls or "{path}" in e.manual) and not set(e.urls) & set(e.dead_urls)
    known = {n for n in NEW_FILES if REGISTRY[n].sha256 is not None}
    # only the KeypointNet files also in the authors' git repository have a recorded size and digest
    assert known == {"keypointnet_chair", "keypointnet_split_train", "keypointnet_split_val", "keypointnet_split_test"}
    assert all(REGISTRY[n].size for n in known) and not any(REGISTRY[n].size for n in set(NEW_FILES) - known)
    assert REGISTRY["spair71k"].urls == ("http://cvlab.postech.ac.kr/research/SPair-71k/data/SPair-71k.tar.gz",)
    assert REGISTRY["keypointnet_car"].urls == (
        "https://huggingface.co/datasets/qq456cvb/KeypointNet/resolve/main/annotations/car.json",)
    assert "celeba_crop.py" in REGISTRY["celeba_in_the_wild"].note


@pytest.fixture
def server():
    with LocalServer({"f.bin": PAYLOAD, "wrong.bin": PAYLOAD[::-1]}) as srv:
        yield srv


def _local(name: str, server, path: str = "f.bin", mode: str = "range") -> dict:
    return load_registry({name: {"urls": [server.url(mode, path)], "size": len(PAYLOAD), "sha256": _sha(PAYLOAD)}})


@pytest.mark.parametrize("name", AUTOMATIC)
def test_each_entry_downloads_completely_then_resumes_then_rejects_a_corrupt_copy(tmp_path, server, name):
    root = tmp_path / "complete"
    path = download(name, root, registry=_local(name, server), progress=False)
    assert path.name == REGISTRY[name].filename and path.read_bytes() == PAYLOAD
    server.drops["f.bin"] = 1  # the connection breaks halfway; the next try resumes with Range
    before = len(server.requests)
    path = download(name, tmp_path / "resume", registry=_local(name, server, mode="drop"), progress=False,
                    retries=1, backoff=0)
    assert path.read_bytes() == PAYLOAD
    assert [r for _, r in server.requests[before:]] == [None, f"bytes={len(PAYLOAD) // 2}-"]
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        download(name, tmp_path / "corrupt", registry=_local(name, server, "wrong.bin"), progress=False)
    assert (tmp_path / "corrupt" / "downloads" / f"{REGISTRY[name].filename}.bad").is_file()


@pytest.mark.parametrize("name", BY_HAND)
def test_each_by_hand_step_says_what_to_do_and_accepts_the_marker(tmp_path, name):
    with pytest.raises(ManualDownloadRequired, match=str(tmp_path / "downloads" / REGISTRY[name].filename)):
        download(name, tmp_path, progress=False)
    (tmp_path / "downloads" / REGISTRY[name].filename).write_bytes(b"")
    assert download(name, tmp_path, progress=False).exists()


def _evil(out: Path, mode: str) -> Path:
    with tarfile.open(out, mode) as tf:
        for arc, data in (("SPair-71k/ok.txt", b"ok"), ("SPair-71k/../../evil.txt", b"evil")):
            info = tarfile.TarInfo(arc)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return out


@pytest.mark.parametrize("fmt", ["tar.gz", "tar", "zip"])
def test_safe_extraction_of_each_new_archive_format(tmp_path, fmt):
    """SPair-71k is a .tar.gz, ACSM's templates a plain .tar, PF-PASCAL and Pix3D are zips."""
    src = tmp_path / "src"
    build_spair(src)
    out = tmp_path / f"a.{fmt}"
    (make_zip(out, src, ["SPair-71k"]) if fmt == "zip" else make_tar(out, src, ["SPair-71k"],
                                                                        "w:gz" if fmt == "tar.gz" else "w"))
    assert extract(out, tmp_path / "dest") == [tmp_path / "dest" / "SPair-71k"]
    assert (tmp_path / "dest" / "SPair-71k" / "Layout" / "large" / "test.txt").is_file()
    if fmt == "zip":
        import zipfile
        with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
            zf.writestr("SPair-71k/ok.txt", b"ok")
            zf.writestr("SPair-71k/../../evil.txt", b"evil")
        evil = tmp_path / "evil.zip"
    else:
        evil = _evil(tmp_path / f"evil.{fmt}", "w:gz" if fmt == "tar.gz" else "w")
    with pytest.raises(UnsafeArchiveError):
        extract(evil, tmp_path / "dest2")
    assert not (tmp_path / "dest2").exists() and not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("script", [f"prepare_{d}.py" for d in WAVE2])
def test_every_wave2_script_has_help(script):
    run = subprocess.run([sys.executable, str(SCRIPTS / script), "--help"], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0 and run.stdout.startswith("usage: " + script) and "--root" in run.stdout


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The fixtures' official archives and plain files, on a local server, with registry overrides."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("files")
    build_spair(src / "spair")
    build_pf_pascal(src / "pf")
    build_keypointnet(src / "kpnet")
    build_celeba(src / "celeba")
    files = {"spair71k": make_tar(out / "SPair-71k.tar.gz", src / "spair", ["SPair-71k"]),
             "pf_pascal": make_zip(out / "PF-dataset-PASCAL.zip", src / "pf", ["PF-dataset-PASCAL"]),
             "unsup3d_celeba_crop_bbox": src / "celeba" / "celeba_crop_bbox.txt"}
    for split in ("val", "test"):
        files[f"pf_pascal_{split}_pairs"] = src / "pf" / "PF-dataset-PASCAL" / f"{split}_pairs_pf_pascal.csv"
    for split in ("train", "val", "test"):
        files[f"keypointnet_split_{split}"] = src / "kpnet" / "splits" / f"{split}.txt"
    files["keypointnet_chair"] = src / "kpnet" / "annotations" / "chair.json"
    for cat in ("airplane", "car"):  # empty categories in the fixture
        (out / f"{cat}.json").write_text("[]")
        files[f"keypointnet_{cat}"] = out / f"{cat}.json"
    with LocalServer({name: p.read_bytes() for name, p in files.items()}) as srv:
        reg = {name: {"urls": [srv.url("range", name)], "size": p.stat().st_size or None,
                      "sha256": _sha(p.read_bytes())}
               for name, p in files.items()}
        path = out / "registry.json"
        path.write_text(json.dumps(reg))
        yield {"server": srv, "registry": str(path), "src": src}


def _main(script: str):
    return runpy.run_path(str(SCRIPTS / script))["main"]


def test_prepare_spair_and_pf_pascal_end_to_end_then_idempotent(tmp_path, served, capsys):
    root, argv = tmp_path / "data", ["--no-progress", "--registry", served["registry"]]
    assert _main("prepare_spair.py")(["--root", str(root), *argv]) == 0
    first = capsys.readouterr().out
    assert "images: 3\ntrn: 1\nval: 0\ntest: 3\n" in first
    n = len(served["server"].requests)
    assert _main("prepare_spair.py")(["--root", str(root), *argv]) == 0
    assert len(served["server"].requests) == n and capsys.readouterr().out == first
    assert _main("prepare_pf_pascal.py")(["--root", str(root), *argv]) == 0
    assert "val_pairs: 1\ntest_pairs: 3\n" in capsys.readouterr().out

    from csmlab.data.real.pf_pascal import PfPascalPairs
    from csmlab.data.real.spair import SpairPairs
    assert len(SpairPairs(root, "test", category="aeroplane")) == 2 and len(PfPascalPairs(root, "test")) == 2


def test_prepare_keypointnet_and_celeba_need_their_by_hand_steps(tmp_path, served, capsys):
    root, argv = tmp_path / "data", ["--no-progress", "--registry", served["registry"]]
    assert _main("prepare_keypointnet.py")(["--root", str(root), *argv]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "hf download qq456cvb/KeypointNet" in err
    assert (root / "keypointnet" / "annotations").exists() is False  # nothing placed before every file is there
    import shutil
    shutil.copytree(served["src"] / "kpnet" / "pcds", root / "keypointnet" / "pcds")
    (root / "downloads" / REGISTRY["keypointnet_pcds"].filename).write_bytes(b"")
    assert _main("prepare_keypointnet.py")(["--root", str(root), *argv]) == 0
    assert "chair: 3\n" in capsys.readouterr().out
    assert (root / "keypointnet" / PLACE["keypointnet_split_val"]).read_text().startswith("03001627-m_b")

    assert _main("prepare_celeba.py")(["--root", str(root), *argv]) == 1
    assert "img_celeba.7z" in capsys.readouterr().err
    shutil.copytree(served["src"] / "celeba" / "img_celeba", root / "celeba" / "img_celeba")
    (root / "downloads" / REGISTRY["celeba_in_the_wild"].filename).write_bytes(b"")
    assert _main("prepare_celeba.py")(["--root", str(root), *argv]) == 0
    assert "train: 2\nval: 0\ntest: 1\n" in capsys.readouterr().out

    from csmlab.data.real.celeba import CelebaDataset
    from csmlab.data.real.keypointnet import load_keypointnet
    assert len(CelebaDataset(root, "train")) == 2 and load_keypointnet(root, "chair")["points"].shape[0] == 3


def test_prepare_pix3d_and_acsm_extract_into_their_layouts(tmp_path, capsys):
    from fixtures_real2 import build_acsm, build_pix3d

    src, out = tmp_path / "src", tmp_path / "files"
    out.mkdir()
    build_pix3d(src / "pix3d")
    build_acsm(src / "acsm", src / "voc", src / "imagenet")
    files = {"pix3d": make_zip(out / "pix3d.zip", src / "pix3d", ["pix3d.json", "img", "mask", "model"]),
             "acsm_templates": make_tar(out / "cachedir.tar", src / "acsm" / "templates", ["cachedir"], "w"),
             "acsm_annotations": make_tar(out / "cachedir.tar.gz", src / "acsm" / "annotations", ["cachedir"])}
    with LocalServer({n: p.read_bytes() for n, p in files.items()}) as srv:
        reg = tmp_path / "registry.json"
        reg.write_text(json.dumps({n: {"urls": [srv.url("range", n)], "size": p.stat().st_size,
                                       "sha256": _sha(p.read_bytes())} for n, p in files.items()}))
        argv = ["--root", str(tmp_path / "data"), "--registry", str(reg), "--no-progress"]
        assert _main("prepare_pix3d.py")(argv) == 0
        assert "chair: 2\nsofa: 1\n" in capsys.readouterr().out
        assert _main("prepare_acsm.py")(argv) == 0
        first = capsys.readouterr().out
        assert "templates: horse\npascal_files: 3\nimagenet_files: 1\n" in first
        assert _main("prepare_acsm.py")(argv + ["--no-download"]) == 0  # idempotent, offline
        assert capsys.readouterr().out == first

    from csmlab.data.real.acsm import load_template
    from csmlab.data.real.pix3d import Pix3dDataset
    assert len(Pix3dDataset(tmp_path / "data")) == 2
    assert load_template(tmp_path / "data", "horse")["part_names"] == ["body", "L_leg", "R_leg"]


def test_a_failing_wave2_script_exits_1_with_one_line(tmp_path):
    run = subprocess.run([sys.executable, str(SCRIPTS / "prepare_spair.py"), "--root", str(tmp_path), "--no-download"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr == f"prepare_spair.py: error: SPair-71k.tar.gz is not in {tmp_path / 'downloads'}; " \
                         "run without --no-download, or place it there\n"
