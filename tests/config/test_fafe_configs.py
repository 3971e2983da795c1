"""The shipped FAFE configs: NYUD-v2 Tables 1/3/4/5, Cityscapes Table 2, the synthetic Table 1 ladder.

Every config loads, builds its task, transforms and model (on the meta device: no memory, no compute, so HRNet-W48
costs nothing) and runs a meta forward at its training resolution; the ladders differ from their baseline only in
``model.fafe`` and ``task.consistency``.
"""

from __future__ import annotations

import pytest
import torch

from freqdense.config import config_to_dict, list_shipped_configs, load_config
from freqdense.data import list_datasets
from freqdense.data.transforms import build_transforms
from freqdense.errors import ConfigError
from freqdense.models import create_model
from freqdense.tasks import build_task

#: Table 1 / 2 rows -> model.fafe switches (None = baseline) and whether the consistency loss is on.
ROWS = {
    "baseline": (None, False),
    "pi": ({"variant": "fafe", "pi": True, "fd": False, "fr": False}, False),
    "pi_fd": ({"variant": "fafe", "pi": True, "fd": True, "fr": False}, False),
    "fafe": ({"variant": "fafe", "pi": True, "fd": True, "fr": True}, False),
    "fafe_lc": ({"variant": "fafe", "pi": True, "fd": True, "fr": True}, True),
}
LADDERS = {  # family prefix -> row name -> shipped config
    f"{ds}/{arch}_hrnet18s": {row: f"{ds}/{arch}_hrnet18s_{row}" for row in ROWS}
    for ds in ("nyud", "cityscapes")
    for arch in ("mti_net", "pad_net")
}
LADDERS["synthetic/fafe/mti"] = {
    "baseline": "synthetic/fafe/mti_1_baseline",
    "pi": "synthetic/fafe/mti_2_pi",
    "pi_fd": "synthetic/fafe/mti_3_pi_fd",
    "fafe": "synthetic/fafe/mti_4_fafe",
    "fafe_lc": "synthetic/fafe/mti_5_fafe_lc",
}
#: Table 3 (1/2/3-predict, with and without FAFE+L_c), Table 4 (+conv vs +FAFE), Table 5 (HRNet-W48).
OTHERS = {
    "nyud/multitask_baseline_hrnet18s": ("multitask_baseline", "hrnet_w18_small", None, False),
    "nyud/multitask_baseline_hrnet18s_fafe_lc": ("multitask_baseline", "hrnet_w18_small", "fafe", True),
    "nyud/pad_net_3predict_hrnet18s": ("pad_net_3predict", "hrnet_w18_small", None, False),
    "nyud/pad_net_3predict_hrnet18s_fafe_lc": ("pad_net_3predict", "hrnet_w18_small", "fafe", True),
    "nyud/pad_net_hrnet18s_conv": ("pad_net", "hrnet_w18_small", "conv", False),
    "nyud/mti_net_hrnet18s_conv": ("mti_net", "hrnet_w18_small", "conv", False),
    "nyud/mti_net_hrnet48_baseline": ("mti_net", "hrnet_w48", None, False),
    "nyud/mti_net_hrnet48_fafe_lc": ("mti_net", "hrnet_w48", "fafe", True),
    "nyud/pad_net_hrnet48_baseline": ("pad_net", "hrnet_w48", None, False),
    # Table 6 (Cityscapes against the state of the art; backbone assumed, see the config)
    "cityscapes/pad_net_hrnet48_baseline": ("pad_net", "hrnet_w48", None, False),
    "cityscapes/mti_net_hrnet48_baseline": ("mti_net", "hrnet_w48", None, False),
    "cityscapes/pad_net_hrnet48_fafe_lc": ("pad_net", "hrnet_w48", "fafe", True),
}
ALL = sorted({c for ladder in LADDERS.values() for c in ladder.values()} | set(OTHERS))
#: Training resolution per dataset (FAFE's FD weights must be sized for it).
SIZES = {"nyud_mt": (480, 640), "cityscapes_mtan": (128, 256)}
CLASSES = {"nyud_mt": 40, "cityscapes_mtan": 7, "synthetic": 10}


def _load(name: str):
    try:
        return load_config(name)
    except ConfigError as err:  # FAFE wiring of a model still missing (issue 5): skip, naming the reason
        if "fafe" in str(err) and ("not yet wired" in str(err) or "unknown argument 'fafe'" in str(err)):
            pytest.skip(f"{name}: the model does not accept fafe= yet ({err})")
        raise


def _training_size(cfg) -> tuple[int, int]:
    if cfg.data.dataset == "synthetic":
        return tuple(cfg.data.args["size"])
    return SIZES[cfg.data.dataset]


def test_every_fafe_config_is_shipped():
    assert set(ALL) <= set(list_shipped_configs())


@pytest.mark.parametrize("name", ALL)
def test_config_loads_and_builds_at_its_training_size(name):
    cfg = _load(name)
    assert cfg.data.dataset in list_datasets()
    assert cfg.model.kwargs["num_classes"] == CLASSES[cfg.data.dataset]
    build_transforms(cfg.data.train_transforms, train=True)
    build_transforms(cfg.data.val_transforms, train=False)
    task = build_task(cfg.task, num_classes=cfg.model.kwargs["num_classes"])
    h, w = _training_size(cfg)
    fafe = cfg.model.kwargs.get("fafe")
    if fafe is not None and fafe.get("fd", True):
        assert tuple(fafe["input_size"]) == (h, w), "FD weights must be sized for the training input"
    try:
        with torch.device("meta"):
            model = create_model(cfg.model.name, **cfg.model.kwargs)
            # shapes at the training size (HRNet-W48: build only, its meta forward is slow and adds nothing)
            out = None if cfg.model.kwargs["backbone"] == "hrnet_w48" else model.eval()(torch.empty(1, 3, h, w))
    except ConfigError as err:
        if "not yet wired" in str(err):
            pytest.skip(f"{name}: {err}")
        raise
    assert set(task.keys) == {"semantic", "depth"} and set(task.keys) <= set(model.tasks)
    if out is not None:
        assert out["semantic"].shape == (1, cfg.model.kwargs["num_classes"], h, w)
        assert out["depth"].shape == (1, 1, h, w)
    assert cfg.task.loss_weights == {"semantic": 1.0, "depth": 1.0}  # lambda_1 = lambda_2 = 1 (Eq. 4)
    if cfg.data.dataset != "synthetic":  # paper §4.1: Adam 1e-4, batch 6
        assert (cfg.optim.name, cfg.optim.lr, cfg.data.batch_size) == ("adam", 1e-4, 6)


@pytest.mark.parametrize("family", sorted(LADDERS))
def test_ladder_rows_differ_from_the_baseline_only_in_fafe_and_consistency(family):
    rows = LADDERS[family]
    ref = config_to_dict(_load(rows["baseline"]))
    for row, (switches, lc) in ROWS.items():
        cfg = _load(rows[row])
        mine = config_to_dict(cfg)
        fafe = cfg.model.kwargs.get("fafe")
        if switches is None:
            assert fafe is None, row
        else:
            assert {k: fafe[k] for k in switches} == switches, row
        if lc:
            assert cfg.task.consistency == {"weight": 0.1, "threshold": 1.0, "seg_mode": "scaled_onehot"}, row
        else:
            assert cfg.task.consistency is None, row
        for section in ref:
            if section not in ("model", "task"):
                assert mine[section] == ref[section], (row, section)
        drop = {"fafe"}
        assert {k: v for k, v in mine["model"].items() if k not in drop} == {
            k: v for k, v in ref["model"].items() if k not in drop
        }, row
        assert {k: v for k, v in mine["task"].items() if k != "consistency"} == {
            k: v for k, v in ref["task"].items() if k != "consistency"
        }, row


@pytest.mark.parametrize("name", sorted(OTHERS))
def test_tables_3_4_5_rows(name):
    model, backbone, variant, lc = OTHERS[name]
    cfg = _load(name)
    assert (cfg.model.name, cfg.model.kwargs["backbone"]) == (model, backbone)
    fafe = cfg.model.kwargs.get("fafe")
    assert (fafe or {}).get("variant") == variant
    if variant is not None:
        assert fafe["pi"] and fafe["fd"] and fafe["fr"]
    assert (cfg.task.consistency is not None) == lc
    # everything but the model and the consistency loss is the HRNet-18 baseline of the same architecture family
    dataset = name.split("/")[0]
    ref_name = (
        "nyud/multitask_baseline_hrnet18s" if model == "multitask_baseline" else f"{dataset}/pad_net_hrnet18s_baseline"
    )
    if model == "mti_net":
        ref_name = f"{dataset}/mti_net_hrnet18s_baseline"
    ref, mine = config_to_dict(_load(ref_name)), config_to_dict(cfg)
    for section in ("data", "optim", "schedule", "eval", "train"):
        assert mine[section] == ref[section], section
