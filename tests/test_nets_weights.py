"""csmlab.nets weights: registry entries, download (local HTTP server, fake checkpoint), bad checkpoints, CLI."""

from __future__ import annotations

import hashlib
import io

import pytest
import torch
from local_http import LocalServer

from csmlab.data.download import ChecksumError, DownloadError, describe, is_downloaded
from csmlab.data.registry import REGISTRY, RemoteFile, register
from csmlab.nets import (
    NETS,
    WEIGHT_FILES,
    DinoViT,
    NetSpec,
    WeightsNotFound,
    check,
    fetch_weights,
    load_official,
    pretrained,
    resnet18,
    resnet50,
    status,
)
from csmlab.nets import __main__ as cli
from csmlab.nets import weights as W

torch.set_num_threads(1)


def _tiny() -> DinoViT:
    return DinoViT(embed_dim=16, depth=1, num_heads=2, img_size=56)


def _checkpoint_bytes(seed: int) -> tuple[dict, bytes]:
    torch.manual_seed(seed)
    state = _tiny().state_dict()
    buf = io.BytesIO()
    torch.save(state, buf)
    return state, buf.getvalue()


STATE, DATA = _checkpoint_bytes(0)
SHA = hashlib.sha256(DATA).hexdigest()
OTHER_STATE, OTHER = _checkpoint_bytes(1)


def _spec(*urls, prefix=SHA[:8]) -> NetSpec:
    f = RemoteFile(name="tiny_vit", filename="tiny_vit-%s.pth" % prefix, urls=tuple(urls), size=None, sha256=None,
                   sha256_prefix=prefix, licence="test", manual="download it and save it as {path}")
    return NetSpec("tiny", _tiny, f, "a tiny DINOv2-layout ViT")


@pytest.fixture
def server():
    with LocalServer({"good.pth": DATA, "other.pth": OTHER}) as srv:
        yield srv


def _same_weights(model, state) -> bool:
    return all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_a_download_is_verified_by_its_prefix_and_prints_the_full_digest(tmp_path, server, capsys):
    spec = _spec(server.url("range", "good.pth"))
    model = pretrained(spec, tmp_path, device="cpu", progress=False)
    assert _same_weights(model, STATE) and not model.training
    err = capsys.readouterr().err
    assert SHA in err and f"first digits {SHA[:8]} matched" in err
    assert is_downloaded(spec.file, tmp_path) and status(spec, tmp_path) == "verified"
    n = len(server.requests)
    frozen = pretrained(spec, tmp_path, progress=False, freeze=True)   # verified before: no request, no message
    assert len(server.requests) == n and SHA not in capsys.readouterr().err
    assert not any(p.requires_grad for p in frozen.parameters()) and all(p.requires_grad for p in model.parameters())


def test_an_interrupted_download_is_resumed(tmp_path, server):
    server.drops["good.pth"] = 1
    model = pretrained(_spec(server.url("drop", "good.pth")), tmp_path, progress=False, retries=1, backoff=0)
    assert _same_weights(model, STATE)
    assert [r for _, r in server.requests] == [None, f"bytes={len(DATA) // 2}-"]


def test_a_corrupted_file_is_kept_aside_and_named(tmp_path, server):
    spec = _spec(server.url("range", "other.pth"))   # serves other bytes than the prefix promises
    with pytest.raises(ChecksumError) as info:
        pretrained(spec, tmp_path, progress=False)
    msg = str(info.value)
    assert f"expected a digest starting {SHA[:8]}" in msg and hashlib.sha256(OTHER).hexdigest() in msg
    folder = tmp_path / "downloads"
    assert sorted(p.name for p in folder.iterdir()) == [spec.file.filename + ".bad"]
    assert (folder / (spec.file.filename + ".bad")).read_bytes() == OTHER


def test_offline_the_error_names_the_file_the_url_and_where_to_save_it(tmp_path):
    url = "http://127.0.0.1:9/tiny_vit.pth"   # discard port: nothing listens
    spec = _spec(url)
    with pytest.raises(DownloadError) as info:
        pretrained(spec, tmp_path, progress=False, retries=0)
    msg = str(info.value)
    assert url in msg and f"save it as {tmp_path / 'downloads' / spec.file.filename}" in msg and "\n" not in msg


def test_no_download_works_from_a_file_placed_by_hand_and_names_what_is_missing(tmp_path, server, monkeypatch):
    spec = _spec(server.url("range", "good.pth"))
    with pytest.raises(WeightsNotFound) as info:
        pretrained(spec, tmp_path, download=False)
    assert str(tmp_path / "downloads" / spec.file.filename) in str(info.value) and "download=False" in str(info.value)
    monkeypatch.setenv("CSMLAB_NO_DOWNLOAD", "1")
    with pytest.raises(WeightsNotFound, match="CSMLAB_NO_DOWNLOAD"):
        pretrained(spec, tmp_path)
    assert server.requests == []
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / spec.file.filename).write_bytes(DATA)   # placed by hand: verified, no network
    assert status(spec, tmp_path) == "present, not verified yet"
    assert _same_weights(pretrained(spec, tmp_path, progress=False), STATE)
    assert server.requests == [] and status(spec, tmp_path) == "verified"


def test_a_truncated_checkpoint_gets_one_clear_error_naming_the_file(tmp_path):
    path = tmp_path / "cut.pth"
    path.write_bytes(DATA[: len(DATA) // 2])
    with pytest.raises(ValueError) as info:
        load_official(_tiny(), path)
    msg = str(info.value)
    assert str(path) in msg and "truncated" in msg and "\n" not in msg


def test_a_checkpoint_of_another_architecture_names_the_file_and_the_first_mismatching_key(tmp_path):
    path = tmp_path / "wide.pth"
    torch.save(DinoViT(embed_dim=24, depth=1, num_heads=2, img_size=56).state_dict(), path)
    with pytest.raises(ValueError) as info:
        load_official(_tiny(), path)
    msg = str(info.value)
    assert str(path) in msg and "first mismatching key 'cls_token' has shape [1, 1, 24], expected [1, 1, 16]" in msg
    with pytest.raises(ValueError, match=r"first mismatching key 'layer1\.0\.conv1\.weight' has shape "
                                         r"\[64, 64, 1, 1\], expected \[64, 64, 3, 3\]"):
        load_official(resnet18(), resnet50().state_dict(), label="resnet50 weights")
    state = dict(STATE)
    state["head.weight"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"first mismatching key 'head.weight' is not expected"):
        load_official(_tiny(), state)
    del state["head.weight"], state["norm.bias"]
    with pytest.raises(ValueError, match=r"'norm.bias' is missing"):
        load_official(_tiny(), state)


def test_a_file_that_is_not_a_state_dict_is_refused(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ValueError, match=f"checkpoint {path} must hold a state dict"):
        load_official(_tiny(), path)


def test_the_registry_holds_the_official_files_with_what_is_known():
    expected = {"torchvision_resnet18": ("resnet18-f37072fd.pth", "f37072fd"),
                "torchvision_resnet50": ("resnet50-0676ba61.pth", "0676ba61"),
                "torchvision_vgg16": ("vgg16-397923af.pth", "397923af"),
                "dinov2_vits14": ("dinov2_vits14_pretrain.pth", None),
                "dinov2_vitb14": ("dinov2_vitb14_pretrain.pth", None)}
    assert {k: (f.filename, f.sha256_prefix) for k, f in WEIGHT_FILES.items()} == expected
    for key, f in WEIGHT_FILES.items():
        assert REGISTRY[key] is f and f.sha256 is None and f.size is None   # not checked from here: unknown
        assert f.urls == ((f"https://download.pytorch.org/models/{f.filename}",) if key.startswith("torchvision")
                          else (f"https://dl.fbaipublicfiles.com/dinov2/{key}/{f.filename}",))
        assert ("BSD-3-Clause" if key.startswith("torchvision") else "Apache-2.0") in f.licence
        assert f.urls[0] in f.manual and "{path}" in f.manual
    assert "first digits checked" in describe("torchvision_vgg16")
    assert [s.file.name for s in NETS.values()] == list(WEIGHT_FILES)
    register(WEIGHT_FILES["dinov2_vits14"])   # the same entry again: fine
    with pytest.raises(ValueError, match="different entry named 'dinov2_vits14'"):
        register(RemoteFile(name="dinov2_vits14", filename="x.pth", urls=("http://x",), size=None, sha256=None,
                            licence="x"))
    with pytest.raises(ValueError, match="sha256_prefix must be 8 to 63"):
        RemoteFile(name="x", filename="x", urls=("http://x",), size=None, sha256=None, licence="x",
                   sha256_prefix="F37072FD")
    with pytest.raises(ValueError, match="name must be one of"):
        pretrained("resnet34")


def test_the_command_line_lists_checks_and_reports(tmp_path, monkeypatch, capsys):
    spec = _spec("http://127.0.0.1:9/tiny.pth")
    monkeypatch.setattr(W, "NETS", {**NETS, "tiny": spec})
    monkeypatch.setattr(cli, "NETS", W.NETS)
    assert cli.main(["--root", str(tmp_path), "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in NETS) and "[missing]" in out and "sha256 starts f37072fd" in out
    assert cli.main(["--root", str(tmp_path), "check", "tiny"]) == 1
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / spec.file.filename).write_bytes(DATA)
    assert cli.main(["--root", str(tmp_path), "check", "tiny"]) == 0
    out = capsys.readouterr().out
    assert SHA in out and f"starts with {SHA[:8]}" in out and f"{len(STATE)} tensors loaded strictly" in out
    (tmp_path / "downloads" / spec.file.filename).write_bytes(OTHER)
    assert cli.main(["--root", str(tmp_path), "check", "tiny"]) == 1
    assert "sha256 prefix mismatch" in capsys.readouterr().err
    assert check  # the same function the CLI calls
    with pytest.raises(WeightsNotFound):
        fetch_weights(spec, tmp_path / "elsewhere", download_ok=False)


def test_the_layer_imports_point_down_only():
    """csmlab.nets uses only the layers below it (config, checks, data, geometry); the data layer never imports nets
    (docs/design.md, section 1)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "csmlab"
    pattern = re.compile(r"^\s*(?:from|import)\s+(csmlab\.\w+|\.\.\w+|\.\.)", re.M)
    for path in (root / "nets").glob("*.py"):
        for target in pattern.findall(path.read_text()):
            layer = target.replace("csmlab.", "").lstrip(".")
            assert layer in ("config", "checks", "data", "geometry"), f"{path.name} imports {target}"
    upward = re.compile(r"^\s*(?:from|import)\s+(?:csmlab|\.\.+)\.?(?:nets|methods|viz)\b", re.M)
    for path in (root / "data").rglob("*.py"):
        assert not upward.search(path.read_text()), path
    assert upward.search("from ..nets import x") and upward.search("import csmlab.nets")   # the check can fail
