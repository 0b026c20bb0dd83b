"""`python -m csmlab.methods.csm --init FILE`: fine-tuning starts from the file's network, and only a matching one."""

import pytest
import torch

from csmlab.methods.csm import get_config
from csmlab.methods.csm.__main__ import initial_network
from csmlab.methods.csm.fit import build_model, load_category
from csmlab.methods.csm.pretrained import save_pretrained


def test_init_loads_the_files_network_and_refuses_another_architecture(tmp_path):
    cfg = get_config("smoke", unet_base=4, cam_base=4)
    category = load_category("birds")
    model = build_model(cfg, category.template, category.template_uv)
    with torch.no_grad():                       # unlike a fresh network of the same seed
        for p in model.parameters():
            p.add_(0.1)
    path = save_pretrained(tmp_path / "start.pt", model, cfg, {"transfer_pck": 0.5}, command="python -m test")

    assert initial_network(None, cfg, category) == (None, {})
    start, info = initial_network(path, cfg, category)
    for key, value in model.state_dict().items():
        if not key.startswith("template."):     # float16 on disk: equal to the half-rounded weights
            assert torch.equal(start.state_dict()[key], value.half().to(value.dtype) if value.is_floating_point()
                               else value), key
    assert info["init"]["file"] == "start.pt" and info["init"]["metrics"] == {"transfer_pck": 0.5}
    assert info["init"]["command"] == "python -m test" and info["init"]["data"] == "rung B"

    with pytest.raises(SystemExit, match="unet_base"):
        initial_network(path, get_config("smoke", unet_base=8, cam_base=4), category)
