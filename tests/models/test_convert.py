"""Converters from official checkpoint layouts (``freqdense.models.convert``).

Every test builds its "official" file itself: a freqdense model's weights written back in the official key layout
(the inverse of the documented renames, docs/reference_code.md#state-dict-names) and container (``module.`` prefix,
``{"model": ...}`` / ``{"state_dict": ..., "best_pred": numpy float}``, Monodepth2's four files). A handful of key
names copied from the official code pin that the inverse really produces the official layout. Conversion must load
strictly and give the source model's outputs exactly.
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from freqdense.errors import CheckpointError, UnknownNameError
from freqdense.models import create_model
from freqdense.models.convert import convert, read_checkpoint_file
from freqdense.models.monodepth import monodepth2_state_dicts


def _official_mtl(model: torch.nn.Module, name: str) -> dict[str, torch.Tensor]:
    """Our state dict in Multi-Task-Learning-PyTorch's names, as nn.DataParallel saves it."""
    out = {}
    for key, value in model.state_dict().items():
        dotted = f".{key}.".replace(".semantic.", ".semseg.")
        if name == "pad_net":
            dotted = dotted.replace(".predictions.", ".conv_out.")
        if name == "multitask_baseline":
            dotted = dotted.replace(".heads.", ".decoders.")
        out["module." + dotted[1:-1]] = value.clone()
    return out


#: Key names as they appear in Multi-Task-Learning-PyTorch's models (models/mti_net.py, padnet.py, models.py).
OFFICIAL_MTL_KEYS = {
    "mti_net": [
        "module.backbone.stage4.1.fuse_layers.0.1.0.weight",
        "module.scale_0.refinement.semseg.0.conv1.weight",
        "module.fpm_scale_3.non_linear.2.weight",
        "module.fpm_scale_3.se.depth.squeeze.0.weight",
        "module.distillation_scale_0.self_attention.semseg.depth.attention.0.weight",
        "module.heads.semseg.last_layer.0.weight",
    ],
    "pad_net": [
        "module.initial_task_prediction_heads.layers.semseg.0.conv1.weight",
        "module.initial_task_prediction_heads.conv_out.depth.weight",
        "module.multi_modal_distillation.self_attention.semseg.depth.conv.weight",
        "module.heads.semseg.2.weight",
    ],
    "multitask_baseline": ["module.decoders.semseg.last_layer.0.weight", "module.decoders.depth.last_layer.3.bias"],
}


@pytest.mark.parametrize("name", ["mti_net", "pad_net", "multitask_baseline"])
@pytest.mark.parametrize("container", ["best_model", "checkpoint"])
def test_mtl_pytorch_checkpoints_load_strictly_and_give_the_same_outputs(tmp_path, name, container):
    torch.manual_seed(0)
    source = create_model(name, backbone="hrnet_w18_small", num_classes=7).eval()
    official = _official_mtl(source, name)
    for key in OFFICIAL_MTL_KEYS[name]:
        assert key in official, key
    payload = official if container == "best_model" else {"model": official, "epoch": 3, "optimizer": {"state": {}}}
    path = tmp_path / f"{container}.pth.tar"
    torch.save(payload, path)

    model, conv = convert("mtl-pytorch", path)

    assert conv.model == {"name": name, "backbone": "hrnet_w18_small", "num_classes": 7, "tasks": ["semantic", "depth"]}
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        want, got = source(x), model(x)
    for task in ("semantic", "depth"):
        assert torch.equal(want[task], got[task]), task


def test_mtl_pytorch_single_task_model_and_hrnet_variant_detection(tmp_path):
    source = create_model("depth_baseline", backbone="hrnet_w18").eval()
    state = {k.replace("heads.depth.", "decoder."): v for k, v in source.state_dict().items()}
    torch.save(state, tmp_path / "m.pth.tar")
    model, conv = convert("mtl-pytorch", tmp_path / "m.pth.tar")
    assert conv.model == {"name": "depth_baseline", "backbone": "hrnet_w18"}
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(source(x)["depth"], model(x)["depth"])


def test_mtl_pytorch_refuses_tasks_freqdense_does_not_predict(tmp_path):
    state = _official_mtl(create_model("multitask_baseline", backbone="hrnet_w18_small"), "multitask_baseline")
    state["module.decoders.normals.last_layer.3.weight"] = torch.zeros(3, 270, 1, 1)
    torch.save(state, tmp_path / "m.pth.tar")
    with pytest.raises(CheckpointError, match="normals"):
        convert("mtl-pytorch", tmp_path / "m.pth.tar")


def test_a_missing_key_is_named_with_its_closest_match(tmp_path):
    state = _official_mtl(create_model("mti_net", backbone="hrnet_w18_small", num_classes=5), "mti_net")
    key = "module.fpm_scale_3.non_linear.2.weight"
    state["module.fpm_scale_3.non_linear.2.weights"] = state.pop(key)  # a typo in one key
    torch.save(state, tmp_path / "m.pth.tar")
    with pytest.raises(CheckpointError) as info:
        convert("mtl-pytorch", tmp_path / "m.pth.tar")
    message = str(info.value)
    assert "1 missing: fpm_scale_3.non_linear.2.weight (closest: fpm_scale_3.non_linear.2.weights)" in message
    assert str(tmp_path / "m.pth.tar") in message


def test_monodepth2_folder_converts_with_the_pose_network_and_same_disparities(tmp_path):
    torch.manual_seed(0)
    source = create_model("monodepth", backbone="resnet18", backbone_kwargs={"base_width": 16}, pose=True).eval()
    for stem, state in monodepth2_state_dicts(source, height=96, width=320).items():
        torch.save(state, tmp_path / f"{stem}.pth")
    model, conv = convert("monodepth2", tmp_path)
    assert conv.model == {
        "name": "monodepth",
        "backbone": "resnet18",
        "pose": True,
        "backbone_kwargs": {"base_width": 16},
    }
    assert conv.extra == {"train_height": 96, "train_width": 320, "use_stereo": False}
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        want, got = source(x), model(x)
        assert torch.equal(want["disp:0"], got["disp:0"]) and torch.equal(want["depth"], got["depth"])
        pair = torch.rand(1, 3, 64, 96)
        assert torch.equal(source.pose(x, pair), model.pose(x, pair))


def test_monodepth2_folder_without_pose_files_and_resnet50(tmp_path):
    source = create_model("monodepth", backbone="resnet50", backbone_kwargs={"base_width": 8}, pose=False).eval()
    states = monodepth2_state_dicts(source)
    for stem in ("encoder", "depth"):
        torch.save(states[stem], tmp_path / f"{stem}.pth")
    model, conv = convert("monodepth2", tmp_path, {"max_depth": 80.0})
    assert conv.model["backbone"] == "resnet50" and conv.model["pose"] is False and model.max_depth == 80.0


def test_deeplab_jfzhang95_tar_with_numpy_best_pred_and_output_stride_option(tmp_path):
    torch.manual_seed(0)
    source = create_model("deeplabv3plus", backbone="resnet50", num_classes=5, output_stride=8).eval()
    state = {"module." + k: v for k, v in source.state_dict().items()}
    payload = {
        "epoch": 12,
        "state_dict": state,
        "optimizer": {"state": {}, "param_groups": []},
        "best_pred": np.float64(0.7),
    }
    torch.save(payload, tmp_path / "model_best.pth.tar")
    model, conv = convert("deeplab-jfzhang95", tmp_path / "model_best.pth.tar", {"output_stride": 8})
    assert conv.model["backbone"] == "resnet50" and conv.model["num_classes"] == 5 and conv.model["output_stride"] == 8
    x = torch.rand(1, 3, 65, 65)
    with torch.no_grad():
        assert torch.equal(source(x)["semantic"], model(x)["semantic"])


def test_deeplab_jfzhang95_other_backbones_are_refused_by_name(tmp_path):
    torch.save(
        {
            "state_dict": {
                "backbone.entry_flow.conv1.weight": torch.zeros(1),
                "decoder.last_conv.8.weight": torch.zeros(1),
            }
        },
        tmp_path / "x.pth.tar",
    )
    with pytest.raises(CheckpointError, match="xception"):
        convert("deeplab-jfzhang95", tmp_path / "x.pth.tar")


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_malicious_pickle_is_refused_and_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth.tar"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": _Payload()}, f)
    with pytest.raises(CheckpointError, match="refused to unpickle|cannot read"):
        read_checkpoint_file(path)
    torch.save({"state_dict": {"a": torch.zeros(1)}, "hook": _Payload()}, path)
    with pytest.raises(CheckpointError, match="refused to unpickle"):
        read_checkpoint_file(path)
    assert not (tmp_path / "pwned").exists()


def test_unknown_format_and_missing_source_are_named(tmp_path):
    with pytest.raises(UnknownNameError, match="mtl-pytorch"):
        convert("detectron", tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        convert("mtl-pytorch", tmp_path / "nope.pth")


def test_model_options_that_contradict_the_weights_are_refused(tmp_path):
    torch.save(
        _official_mtl(create_model("pad_net", backbone="hrnet_w18_small", num_classes=4), "pad_net"), tmp_path / "p.pth"
    )
    with pytest.raises(CheckpointError, match="model.num_classes=40 but the checkpoint has 4"):
        convert("mtl-pytorch", tmp_path / "p.pth", {"num_classes": 40})


def test_official_fafnet_checkpoint_as_main_py_saves_it(tmp_path):
    from freqdense.models.convert.fafnet import freqdense_to_fafnet_official

    torch.manual_seed(0)
    tiny = {"num_classes": 5, "backbone": "resnet50", "backbone_kwargs": {"base_width": 8}}
    source = create_model("fafnet_official", **tiny).eval()
    official = {"module." + k: v for k, v in freqdense_to_fafnet_official(source.state_dict()).items()}
    payload = {"cur_itrs": 10, "model_state": official, "optimizer_state": {"state": {}}, "best_score": 0.4}
    torch.save(payload, tmp_path / "best_fafnet.pth")
    model, conv = convert("fafnet", tmp_path / "best_fafnet.pth")
    assert conv.model["name"] == "fafnet_official" and conv.model["num_classes"] == 5
    image, hha = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(source(image, hha)["semantic"], model(image, hha)["semantic"])
