"""csmlab.nets architectures against the official layouts, offline.

Sources of the key lists below (read, not imported: there is no torchvision here):
- pytorch/vision ``torchvision/models/resnet.py`` (BasicBlock/Bottleneck, ``_make_layer``, ``downsample.{0,1}``,
  ``fc``) and ``torchvision/models/vgg.py`` (cfg "D", ``features`` indices, ``classifier.{0,3,6}``); parameter
  totals are the ``num_params`` of ``ResNet18_Weights``/``ResNet50_Weights``/``VGG16_Weights.IMAGENET1K_V1``.
- facebookresearch/dinov2 ``dinov2/models/vision_transformer.py`` (``DinoVisionTransformer``,
  ``interpolate_pos_encoding``), ``dinov2/layers/{block,attention,mlp,layer_scale,patch_embed}.py`` and
  ``dinov2/hub/backbones.py`` (img_size 518, patch 14, init_values 1.0, block_chunks 0).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from csmlab.nets import (
    BasicBlock,
    Bottleneck,
    DinoViT,
    VGG16Features,
    dinov2_vitb14,
    dinov2_vits14,
    imagenet_normalize,
    load_official,
    resnet18,
    resnet50,
)
from csmlab.nets.vgg import DROPPED_KEYS
from csmlab.nets.vit import Block

torch.set_num_threads(1)


# ---------------------------------------------------------------- the official key lists

def _bn(prefix, c):
    return [(f"{prefix}.weight", (c,)), (f"{prefix}.bias", (c,)), (f"{prefix}.running_mean", (c,)),
            (f"{prefix}.running_var", (c,)), (f"{prefix}.num_batches_tracked", ())]


def _resnet_keys(kind: str) -> list:
    """torchvision's resnet18 / resnet50 state_dict, (name, shape) in order."""
    keys = [("conv1.weight", (64, 3, 7, 7))] + _bn("bn1", 64)
    blocks, expansion = ((2, 2, 2, 2), 1) if kind == "resnet18" else ((3, 4, 6, 3), 4)
    c_in = 64
    for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks), start=1):
        for b in range(n):
            p, stride = f"layer{stage}.{b}", (2 if stage > 1 and b == 0 else 1)
            c_out = planes * expansion
            if kind == "resnet18":
                keys += [(f"{p}.conv1.weight", (planes, c_in, 3, 3))] + _bn(f"{p}.bn1", planes)
                keys += [(f"{p}.conv2.weight", (planes, planes, 3, 3))] + _bn(f"{p}.bn2", planes)
            else:
                keys += [(f"{p}.conv1.weight", (planes, c_in, 1, 1))] + _bn(f"{p}.bn1", planes)
                keys += [(f"{p}.conv2.weight", (planes, planes, 3, 3))] + _bn(f"{p}.bn2", planes)
                keys += [(f"{p}.conv3.weight", (c_out, planes, 1, 1))] + _bn(f"{p}.bn3", c_out)
            if b == 0 and (stride != 1 or c_in != c_out):
                keys += [(f"{p}.downsample.0.weight", (c_out, c_in, 1, 1))] + _bn(f"{p}.downsample.1", c_out)
            c_in = c_out
    return keys + [("fc.weight", (1000, c_in)), ("fc.bias", (1000,))]


# torchvision vgg16().state_dict(): the 13 convolutions of cfg "D" at these indices of ``features``, then the head.
VGG16_CONVS = [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256), (14, 256, 256),
               (17, 256, 512), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512), (28, 512, 512)]
VGG16_KEYS = [k for i, c_in, c_out in VGG16_CONVS
              for k in ((f"features.{i}.weight", (c_out, c_in, 3, 3)), (f"features.{i}.bias", (c_out,)))] + [
    ("classifier.0.weight", (4096, 25088)), ("classifier.0.bias", (4096,)), ("classifier.3.weight", (4096, 4096)),
    ("classifier.3.bias", (4096,)), ("classifier.6.weight", (1000, 4096)), ("classifier.6.bias", (1000,))]


def _dinov2_keys(d: int, depth: int = 12) -> list:
    """DINOv2 hub backbone state_dict (518 px, patch 14, layer scale, MLP, unchunked blocks)."""
    keys = [("cls_token", (1, 1, d)), ("pos_embed", (1, 1 + 37 * 37, d)), ("mask_token", (1, d)),
            ("patch_embed.proj.weight", (d, 3, 14, 14)), ("patch_embed.proj.bias", (d,))]
    for i in range(depth):
        p = f"blocks.{i}"
        keys += [(f"{p}.norm1.weight", (d,)), (f"{p}.norm1.bias", (d,)),
                 (f"{p}.attn.qkv.weight", (3 * d, d)), (f"{p}.attn.qkv.bias", (3 * d,)),
                 (f"{p}.attn.proj.weight", (d, d)), (f"{p}.attn.proj.bias", (d,)), (f"{p}.ls1.gamma", (d,)),
                 (f"{p}.norm2.weight", (d,)), (f"{p}.norm2.bias", (d,)),
                 (f"{p}.mlp.fc1.weight", (4 * d, d)), (f"{p}.mlp.fc1.bias", (4 * d,)),
                 (f"{p}.mlp.fc2.weight", (d, 4 * d)), (f"{p}.mlp.fc2.bias", (d,)), (f"{p}.ls2.gamma", (d,))]
    return keys + [("norm.weight", (d,)), ("norm.bias", (d,))]


OFFICIAL = {
    "resnet18": (resnet18, _resnet_keys("resnet18")),
    "resnet50": (resnet50, _resnet_keys("resnet50")),
    "vgg16": (VGG16Features, VGG16_KEYS),
    "dinov2_vits14": (dinov2_vits14, _dinov2_keys(384)),
    "dinov2_vitb14": (dinov2_vitb14, _dinov2_keys(768)),
}
PUBLISHED_PARAMS = {"resnet18": 11689512, "resnet50": 25557032, "vgg16": 138357544}   # torchvision num_params


def _shapes(model: nn.Module) -> dict:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_key_names_and_shapes_equal_the_official_list(name):
    build, official = OFFICIAL[name]
    built = _shapes(build())
    dropped = dict(DROPPED_KEYS) if name == "vgg16" else {}
    assert {**built, **dropped} == dict(official)
    assert not set(built) & set(dropped)
    if name.startswith("resnet"):   # same order too (the order torchvision's modules register them in)
        assert list(built) == [k for k, _ in official]
    if name in PUBLISHED_PARAMS:
        assert sum(math.prod(s) for k, s in official if not k.endswith(("running_mean", "running_var", "tracked"))) \
            == PUBLISHED_PARAMS[name]


def _official_state(keys: list, seed: int, with_counters: bool = True, unused=()) -> dict:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, shape in keys:
        if k in unused:   # entries the model does not build: right shape, no memory (and a tiny file)
            state[k] = torch.zeros(()).expand(shape)
        elif k.endswith("num_batches_tracked"):
            if with_counters:
                state[k] = torch.tensor(7, dtype=torch.long)
        elif k.endswith("running_var"):
            state[k] = torch.rand(shape, generator=g) + 0.5
        else:
            state[k] = torch.randn(shape, generator=g) * 0.05
    return state


@pytest.mark.parametrize("name, with_counters", [("resnet18", True), ("resnet18", False), ("resnet50", True),
                                                 ("vgg16", True), ("dinov2_vits14", True)])
def test_an_official_layout_file_loads_strictly_and_round_trips(tmp_path, name, with_counters):
    build, official = OFFICIAL[name]
    dropped = DROPPED_KEYS if name == "vgg16" else ()
    state = _official_state(official, seed=1, with_counters=with_counters, unused={k for k, _ in dropped})
    path = tmp_path / "official.pth"
    torch.save(state, path)   # a plain dict, as the official files are
    model = load_official(build(), path, dropped=dropped)
    loaded = model.state_dict()
    for k, v in loaded.items():
        if k in state:
            assert torch.equal(v, state[k]), k
        else:   # only an older file's missing BatchNorm counter may be absent; it keeps the module's own (0)
            assert k.endswith("num_batches_tracked") and not with_counters and int(v) == 0
    again = tmp_path / "again.pth"
    torch.save(loaded, again)
    twin = load_official(build(), again)   # our own state dict: no unused entries
    x = torch.rand(1, 3, 56, 56)
    a, b = model.eval()(x), twin.eval()(x)
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key


# ---------------------------------------------------------------- forward shapes

@pytest.mark.parametrize("size", [224, 448])
def test_resnet18_pyramid_shapes(size):
    out = resnet18().eval()(torch.rand(2, 3, size, size))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        f"s{s}": (2, c, size // s, size // s) for s, c in zip((4, 8, 16, 32), (64, 128, 256, 512))}


def test_resnet50_pyramid_shapes_and_classifier():
    net = resnet50().eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 224, 224))
        assert [tuple(v.shape) for v in out.values()] == [(1, 256, 56, 56), (1, 512, 28, 28), (1, 1024, 14, 14),
                                                          (1, 2048, 7, 7)]
        assert net.channels == (256, 512, 1024, 2048)
        assert net.classify(torch.rand(1, 3, 448, 448)).shape == (1, 1000)


@pytest.mark.parametrize("size", [224, 448])
def test_vgg16_taps_shapes(size):
    with torch.no_grad():
        out = VGG16Features().eval()(torch.rand(1, 3, size, size))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "relu1_2": (1, 64, size, size), "relu2_2": (1, 128, size // 2, size // 2),
        "relu3_3": (1, 256, size // 4, size // 4)}


def test_vgg16_normalises_inputs_of_either_range_identically():
    net = VGG16Features().eval()
    signed = VGG16Features(value_range=(-1, 1)).eval()
    signed.load_state_dict(net.state_dict())
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        ours = net(x)["relu3_3"]
        assert torch.allclose(signed(2 * x - 1)["relu3_3"], ours, atol=1e-5)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        assert torch.allclose(net.features((x - mean) / std), ours, atol=1e-6)
    assert torch.allclose(imagenet_normalize(x), (x - mean) / std, atol=1e-6)


def _tiny_vit(**kw) -> DinoViT:
    return DinoViT(embed_dim=32, depth=2, num_heads=4, **kw)


@pytest.mark.parametrize("size", [224, 448])
def test_vit_s14_token_shapes_and_patch_count(size):
    net = dinov2_vits14().eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, size, size))
    n = (size // 14) ** 2
    assert out["x_norm_patchtokens"].shape == (1, n, 384)
    assert out["x_prenorm"].shape == (1, 1 + n, 384) and out["x_norm_clstoken"].shape == (1, 384)
    # the normed tokens are the final LayerNorm of the pre-norm ones
    assert torch.allclose(net.norm(out["x_prenorm"])[:, 1:], out["x_norm_patchtokens"], atol=1e-5)


def test_vit_b14_token_shapes_and_a_non_square_image():
    net = dinov2_vitb14().eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 224, 224))
        assert out["x_norm_patchtokens"].shape == (1, 256, 768)
        fmap = _tiny_vit().eval().patch_features(torch.rand(2, 3, 224, 448))
    assert fmap.shape == (2, 32, 16, 32)


def test_pos_embed_from_518_to_448_gives_32x32_tokens_as_dinov2_computes_them():
    net = dinov2_vits14()
    pos = net.interpolate_pos_encoding(32, 32)
    assert pos.shape == (1, 1 + 32 * 32, 384)
    # DINOv2's own formula (interpolate_offset = 0.1, scale factor, bicubic, no antialias)
    grid = net.pos_embed[:, 1:].reshape(1, 37, 37, 384).permute(0, 3, 1, 2)
    ref = F.interpolate(grid, scale_factor=(32.1 / 37, 32.1 / 37), mode="bicubic", antialias=False)
    assert torch.allclose(pos[:, 1:], ref.permute(0, 2, 3, 1).reshape(1, 1024, 384), atol=1e-6)
    assert torch.equal(pos[:, :1], net.pos_embed[:, :1])
    # and it differs from a plain size=(32, 32) resize: the offset matters
    plain = F.interpolate(grid, size=(32, 32), mode="bicubic", antialias=False)
    assert not torch.allclose(ref, plain, atol=1e-4)
    assert net.interpolate_pos_encoding(37, 37) is net.pos_embed   # 518 px: the stored table itself


def test_pos_embed_interpolation_keeps_rows_as_rows():
    net = _tiny_vit(img_size=14 * 8)
    with torch.no_grad():   # an embedding that varies along the rows only
        rows = torch.linspace(-1, 1, 8).view(8, 1, 1).expand(8, 8, 32)
        net.pos_embed[0, 1:] = rows.reshape(64, 32)
    pos = net.interpolate_pos_encoding(4, 12)[0, 1:].reshape(4, 12, 32)
    assert torch.allclose(pos, pos[:, :1].expand_as(pos), atol=1e-6)   # constant along each row
    assert (pos[1:, 0, 0] > pos[:-1, 0, 0]).all()                       # increasing down the columns


def test_a_vit_block_equals_a_multihead_attention_reference():
    torch.manual_seed(0)
    dim, heads = 64, 4
    block = Block(dim, heads).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    mha = nn.MultiheadAttention(dim, heads, batch_first=True).eval()
    with torch.no_grad():
        mha.in_proj_weight.copy_(block.attn.qkv.weight)
        mha.in_proj_bias.copy_(block.attn.qkv.bias)
        mha.out_proj.weight.copy_(block.attn.proj.weight)
        mha.out_proj.bias.copy_(block.attn.proj.bias)
    x = torch.randn(3, 17, dim)
    with torch.no_grad():
        h = F.layer_norm(x, (dim,), block.norm1.weight, block.norm1.bias, eps=1e-6)
        y = x + block.ls1.gamma * mha(h, h, h, need_weights=False)[0]
        h = F.layer_norm(y, (dim,), block.norm2.weight, block.norm2.bias, eps=1e-6)
        h = F.linear(F.gelu(F.linear(h, block.mlp.fc1.weight, block.mlp.fc1.bias)), block.mlp.fc2.weight,
                     block.mlp.fc2.bias)
        ref = y + block.ls2.gamma * h
        assert (block(x) - ref).abs().max() < 1e-5


# ---------------------------------------------------------------- residual blocks by hand

def _randomise(module: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            t.copy_(torch.rand(t.shape, generator=g) + 0.5 if name.endswith("running_var")
                    else torch.randn(t.shape, generator=g) * 0.3)


def _bn_by_hand(x, bn):
    shape = (1, -1, 1, 1)
    return ((x - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + bn.eps)
            * bn.weight.view(shape) + bn.bias.view(shape))


@pytest.mark.parametrize("stride, c_in", [(1, 16), (2, 8)])
def test_basic_block_equals_hand_written_convolutions(stride, c_in):
    down = nn.Sequential(nn.Conv2d(c_in, 16, 1, stride=stride, bias=False), nn.BatchNorm2d(16)) \
        if (stride, c_in) != (1, 16) else None
    block = BasicBlock(c_in, 16, stride, down).eval()
    _randomise(block, 3)
    x = torch.randn(2, c_in, 12, 12)
    with torch.no_grad():
        y = F.relu(_bn_by_hand(F.conv2d(x, block.conv1.weight, stride=stride, padding=1), block.bn1))
        y = _bn_by_hand(F.conv2d(y, block.conv2.weight, padding=1), block.bn2)
        short = x if down is None else _bn_by_hand(F.conv2d(x, down[0].weight, stride=stride), down[1])
        assert torch.allclose(block(x), F.relu(y + short), atol=1e-5)


@pytest.mark.parametrize("stride, c_in", [(1, 32), (2, 16)])
def test_bottleneck_equals_hand_written_convolutions(stride, c_in):
    planes = 8
    down = nn.Sequential(nn.Conv2d(c_in, 32, 1, stride=stride, bias=False), nn.BatchNorm2d(32)) \
        if (stride, c_in) != (1, 32) else None
    block = Bottleneck(c_in, planes, stride, down).eval()
    _randomise(block, 4)
    x = torch.randn(2, c_in, 12, 12)
    with torch.no_grad():
        y = F.relu(_bn_by_hand(F.conv2d(x, block.conv1.weight), block.bn1))
        y = F.relu(_bn_by_hand(F.conv2d(y, block.conv2.weight, stride=stride, padding=1), block.bn2))  # V1.5
        y = _bn_by_hand(F.conv2d(y, block.conv3.weight), block.bn3)
        short = x if down is None else _bn_by_hand(F.conv2d(x, down[0].weight, stride=stride), down[1])
        assert torch.allclose(block(x), F.relu(y + short), atol=1e-5)


# ---------------------------------------------------------------- bad input

def test_a_vit_refuses_an_image_size_that_is_not_a_multiple_of_14():
    net = _tiny_vit()
    with pytest.raises(ValueError, match=r"multiples of the patch size 14, got 225x224 \(nearest: 224x224\)"):
        net(torch.rand(1, 3, 225, 224))
    with pytest.raises(ValueError, match=r"\[B,3,H,W\]"):
        net(torch.rand(3, 224, 224))


def test_backbones_refuse_non_image_input():
    with pytest.raises(ValueError, match=r"x must be a \[B,3,H,W\]"):
        resnet18()(torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"img must be a float \[B,3,H,W\]"):
        VGG16Features()(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
