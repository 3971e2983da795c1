"""The shipped KITTI / Cityscapes / NYUv2 configs of Freq-aware depth's tables (self-supervised depth)."""

from __future__ import annotations

import pytest
import torch

from freqdense.config import config_to_dict, list_shipped_configs, load_config
from freqdense.data.transforms import build_transforms
from freqdense.metrics.depth import DEPTH_PROTOCOLS
from freqdense.models import create_model
from freqdense.ops import auto_blur
from freqdense.tasks import SelfSupervisedDepth, build_task

AB = {"hf_pixel_thresh": 0.2, "hf_area_percent": 60, "area_kernel": 9, "blur_kernel": 11, "blur_sigma": 5.0}
TABLE1 = {
    "kitti/monodepth2_m_r18_192x640": ("M", "kitti_eigen_mono", 66340, 49755),
    "kitti/monodepth2_s_r18_192x640": ("S", "kitti_eigen_stereo", 75320, 56490),
    "kitti/monodepth2_ms_r18_192x640": ("MS", "kitti_eigen_stereo", 66340, 49755),
}
SELFSUP = sorted(
    n
    for n in list_shipped_configs()
    if n.startswith("kitti/") or n.endswith(("kitti_to_cityscapes_eval", "to_nyuv2_eval"))
)


def test_the_tables_are_shipped():
    expected = set()
    for name in TABLE1:
        expected |= {name, f"{name}_freq", f"{name}_eigen_benchmark", f"{name}_freq_eigen_benchmark"}
    expected |= {f"kitti/table2/{r}" for r in ("base_no_pretraining", "auto_blur", "ambiguity_mask")}
    expected |= {f"kitti/table5/{r}" for r in ("lambda_0p15", "lambda_0p25", "s_7", "s_11")}
    expected |= {"cityscapes/monodepth2_kitti_to_cityscapes_eval", "nyuv2/monodepth2_kitti_to_nyuv2_eval"}
    assert expected == set(SELFSUP)


@pytest.mark.parametrize("name", SELFSUP)
def test_config_builds_model_task_and_transforms(name):
    cfg = load_config(name)
    model = create_model(cfg.model.name, **cfg.model.kwargs)
    task = build_task(cfg.task, num_classes=None)
    assert isinstance(task, SelfSupervisedDepth)
    assert (model.min_depth, model.max_depth) == (task.min_depth, task.max_depth) == (0.1, 100.0)
    assert (model.pose_encoder is not None) == (task.mode != "S") or name.endswith("_eval")
    assert task.metric_kwargs == DEPTH_PROTOCOLS[task.eval_protocol]
    build_transforms(cfg.data.train_transforms, train=True)
    build_transforms(cfg.data.val_transforms, train=False)
    assert cfg.data.val_split == "test" and cfg.eval.every == 0  # no model selection on the test set


@pytest.mark.parametrize("name", sorted(TABLE1))
def test_table1_rows_follow_monodepth2(name):
    mode, protocol, steps, step_size = TABLE1[name]
    cfg = load_config(name)
    ss = cfg.task.self_supervised
    assert ss["mode"] == mode and ss["eval_protocol"] == protocol and ss["eval_input_size"] == [192, 640]
    assert ss["auto_blur"] is False and ss["ambiguity_mask"] is None
    assert cfg.model.kwargs["backbone"] == "resnet18" and "pretrained" in cfg.model.kwargs
    assert cfg.data.train_transforms["resize"] == [192, 640] and cfg.data.batch_size == 12
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay) == ("adam", 1e-4, 0.0)
    # 20 epochs, x0.1 after 15, of floor(lines / 12) batches (eigen_zhou 39,810, eigen_full 45,200 lines)
    lines = 45200 if mode == "S" else 39810
    assert (
        (cfg.schedule.total_steps, cfg.schedule.step_size)
        == (steps, step_size)
        == (20 * (lines // 12), 15 * (lines // 12))
    )
    assert cfg.data.val_args["depth"] == "velodyne_forward" and cfg.data.val_batch_size == 1
    if mode != "M":
        assert cfg.data.train_args["stereo_baseline"] == 0.1  # monodepth2's unit, hence the 5.4 of the preset
    freq = config_to_dict(load_config(f"{name}_freq"))
    base = config_to_dict(cfg)
    assert freq["task"]["self_supervised"].pop("auto_blur") == AB
    assert freq["task"]["self_supervised"].pop("ambiguity_mask") == "hard"
    assert freq["task"]["self_supervised"].pop("delta") == 0.3
    for key in ("auto_blur", "ambiguity_mask", "delta"):
        base["task"]["self_supervised"].pop(key, None)
    assert freq == base  # the method is the only difference
    bench = load_config(f"{name}_eigen_benchmark")
    assert bench.data.val_args["depth"] == "improved"
    assert bench.task.self_supervised["eval_protocol"] == protocol.replace("eigen", "eigen_benchmark")


@pytest.mark.parametrize(
    ("row", "changes"),
    [
        ("kitti/table2/base_no_pretraining", {"pretrained": None}),
        ("kitti/table2/auto_blur", {"auto_blur": AB, "ambiguity_mask": None}),
        ("kitti/table2/ambiguity_mask", {"auto_blur": False, "ambiguity_mask": "hard"}),
        ("kitti/table5/lambda_0p15", {"auto_blur": {**AB, "hf_pixel_thresh": 0.15}, "ambiguity_mask": "hard"}),
        ("kitti/table5/lambda_0p25", {"auto_blur": {**AB, "hf_pixel_thresh": 0.25}, "ambiguity_mask": "hard"}),
        ("kitti/table5/s_7", {"auto_blur": {**AB, "area_kernel": 7}, "ambiguity_mask": "hard"}),
        ("kitti/table5/s_11", {"auto_blur": {**AB, "area_kernel": 11}, "ambiguity_mask": "hard"}),
    ],
)
def test_ablation_rows_change_one_thing(row, changes):
    cfg = config_to_dict(load_config(row))
    ref = config_to_dict(load_config("kitti/monodepth2_m_r18_192x640"))
    for key, value in changes.items():
        section = cfg["model"] if key == "pretrained" else cfg["task"]["self_supervised"]
        assert section[key] == value, key
        (ref["model"] if key == "pretrained" else ref["task"]["self_supervised"]).pop(key, None)
        section.pop(key)
    cfg["task"]["self_supervised"].pop("delta", None)
    ref["task"]["self_supervised"].pop("delta", None)
    assert cfg == ref


def test_table5_auto_blur_settings_reach_the_loss():
    task = build_task(load_config("kitti/table5/s_7").task, num_classes=None)
    blur = task.photometric_loss.auto_blur
    assert (blur.area_kernel, blur.hf_pixel_thresh, blur.hf_area_percent) == (7, 0.2, 60)
    img = torch.rand(1, 3, 24, 40)
    assert torch.equal(blur(img), auto_blur(img, 0.2, 60, 7))
