"""The shipped FAFNet configs: the synthetic Table 1 ladder and the NYUv2 / SUN RGB-D full-size configs."""

from __future__ import annotations

import pytest
import torch

from freqdense.config import config_to_dict, list_shipped_configs, load_config
from freqdense.data import list_datasets
from freqdense.models import create_model
from freqdense.tasks import build_task

pytest.importorskip("freqdense.models.fafnet")  # registers fafnet / two_stream_deeplabv3plus

LADDER = {
    "sum_baseline": ("two_stream_deeplabv3plus", {"fusion": "sum"}),
    "no_fam": ("fafnet", {"fuse_fam": False, "decoder_fam": False, "acfm": True}),
    "decoder_fam": ("fafnet", {"fuse_fam": False, "decoder_fam": True, "acfm": True}),
    "fuse_fam": ("fafnet", {"fuse_fam": True, "decoder_fam": False, "acfm": True}),
    "all_fams": ("fafnet", {"fuse_fam": True, "decoder_fam": True, "acfm": True}),
    "all_fams_no_acfm": ("fafnet", {"fuse_fam": True, "decoder_fam": True, "acfm": False}),
    "sagate": ("two_stream_deeplabv3plus", {"fusion": "sagate"}),
}


def test_the_ladder_is_shipped_and_complete():
    shipped = {n.split("/")[-1] for n in list_shipped_configs() if n.startswith("synthetic/fafnet/")}
    assert shipped == set(LADDER)


@pytest.mark.parametrize("row", sorted(LADDER))
def test_ladder_rows_differ_only_in_the_model(row):
    cfg = load_config(f"synthetic/fafnet/{row}")
    name, switches = LADDER[row]
    assert cfg.model.name == name
    for key, value in switches.items():
        assert cfg.model.kwargs[key] == value, key
    ref = config_to_dict(load_config("synthetic/fafnet/all_fams"))
    mine = config_to_dict(cfg)
    for section in ref:
        if section != "model":
            assert mine[section] == ref[section], section
    assert mine["model"]["backbone_kwargs"] == ref["model"]["backbone_kwargs"]
    assert cfg.task.inputs == ["image", "hha"]
    assert cfg.data.args["misalignment"] > 1 and "sensor" in cfg.data.args["modalities"]
    assert cfg.data.train_transforms["hha"] == cfg.data.val_transforms["hha"] == "sensor_depth"


@pytest.mark.parametrize("row", ["sum_baseline", "all_fams", "sagate"])
def test_ladder_model_trains_on_a_batch_of_the_configured_inputs(row):
    cfg = load_config(f"synthetic/fafnet/{row}")
    torch.manual_seed(0)
    model = create_model(cfg.model.name, **cfg.model.kwargs)
    task = build_task(cfg.task, num_classes=10)
    h, w = cfg.data.args["size"]
    batch = {
        "image": torch.rand(2, 3, h, w),
        "hha": torch.rand(2, 3, h, w),
        "semantic": torch.randint(0, 10, (2, h, w)),
    }
    losses = task.training_step(model, batch)
    assert torch.isfinite(losses["total"])


@pytest.mark.parametrize(
    ("name", "dataset", "model", "classes"),
    [
        ("nyuv2/fafnet_r101_hha", "nyuv2", "fafnet", 40),
        ("nyuv2/two_stream_deeplabv3plus_r101", "nyuv2", "two_stream_deeplabv3plus", 40),
        ("sunrgbd/fafnet_r101_hha", "sunrgbd", "fafnet", 37),
    ],
)
def test_full_configs_follow_the_paper(name, dataset, model, classes):
    if dataset not in list_datasets():
        pytest.skip(f"dataset {dataset!r} is not registered yet (added by the RGB-D data work)")
    cfg = load_config(name)  # also checks the model kwargs against the factory signature
    assert cfg.model.name == model and cfg.model.kwargs["num_classes"] == classes
    assert cfg.model.kwargs["backbone"] == "resnet101" and cfg.model.kwargs["output_stride"] == 16
    assert cfg.data.dataset == dataset and cfg.data.args["hha"] in ("load", "compute")
    assert cfg.data.train_split == "train" and cfg.data.val_split == "test"
    # FAFNet §4.1-4.2: 464 (NYU) / 448 (SUN) inputs, batch 8, lr 0.005, 40k iterations, multi-scale inference
    crop = 464 if dataset == "nyuv2" else 448
    assert cfg.data.train_transforms["crop"] == [crop, crop] and cfg.data.batch_size == 8
    assert cfg.optim.lr == pytest.approx(0.005) and cfg.schedule.total_steps == 40000
    assert cfg.schedule.name == "step" and cfg.schedule.warmup_steps > 0
    assert len(cfg.eval.scales) > 1 and cfg.eval.flip
    assert cfg.task.inputs == ["image", "hha"]
