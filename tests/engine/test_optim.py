"""Learning-rate schedules against their closed forms; optimizer parameter groups."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from freqdense.config.schema import OptimConfig, ScheduleConfig
from freqdense.engine.optim import build_optimizer, build_scheduler, load_scheduler_state, lr_factor
from freqdense.errors import ConfigError


def test_poly_closed_form():
    cfg = ScheduleConfig(name="poly", total_steps=100, power=0.9)
    for step in (0, 1, 50, 99, 100):
        assert lr_factor(step, cfg) == pytest.approx((1 - step / 100) ** 0.9)


def test_cosine_closed_form_with_floor():
    cfg = ScheduleConfig(name="cosine", total_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, cfg) == pytest.approx(1.0)
    assert lr_factor(5, cfg) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(10, cfg) == pytest.approx(0.1)


def test_step_schedule():
    cfg = ScheduleConfig(name="step", total_steps=100, step_size=30, gamma=0.5)
    assert [lr_factor(s, cfg) for s in (0, 29, 30, 60, 95)] == [1.0, 1.0, 0.5, 0.25, 0.125]


def test_linear_warmup_then_schedule():
    cfg = ScheduleConfig(name="constant", total_steps=100, warmup_steps=10, warmup_factor=0.0)
    assert [lr_factor(s, cfg) for s in (0, 5, 10, 50)] == [0.0, 0.5, 1.0, 1.0]


def test_scheduler_drives_optimizer_lr():
    model = nn.Linear(3, 2)
    opt = build_optimizer(OptimConfig(name="sgd", lr=0.1), model)
    sched = build_scheduler(ScheduleConfig(name="poly", total_steps=4, power=1.0), opt)
    seen = []
    for _ in range(4):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.1, 0.075, 0.05, 0.025])


def test_no_weight_decay_on_biases_and_norms_and_backbone_multiplier():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
            self.head = nn.Conv2d(4, 2, 1)

    net = Net()
    opt = build_optimizer(OptimConfig(name="adamw", lr=1e-3, weight_decay=0.05, backbone_lr_mult=0.1), net)
    by_param = {}
    for group in opt.param_groups:
        for p in group["params"]:
            by_param[id(p)] = (group["lr"], group["weight_decay"])
    assert by_param[id(net.backbone[0].weight)] == (pytest.approx(1e-4), 0.05)
    assert by_param[id(net.backbone[1].weight)] == (pytest.approx(1e-4), 0.0)
    assert by_param[id(net.head.weight)] == (pytest.approx(1e-3), 0.05)
    assert by_param[id(net.head.bias)] == (pytest.approx(1e-3), 0.0)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(net.parameters()))
    assert math.isclose(
        sum(p.numel() for g in opt.param_groups for p in g["params"]), sum(p.numel() for p in net.parameters())
    )
    assert isinstance(opt, torch.optim.AdamW)


def test_resumed_scheduler_uses_the_extended_schedule_from_the_first_update():
    model = nn.Linear(3, 2)
    short, long = ScheduleConfig(name="poly", total_steps=8), ScheduleConfig(name="poly", total_steps=16)
    opt = build_optimizer(OptimConfig(name="sgd", lr=0.1), model)
    sched = build_scheduler(short, opt)
    for _ in range(8):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0)  # the 8-step poly schedule has ended
    opt_state, sched_state = opt.state_dict(), sched.state_dict()

    resumed_opt = build_optimizer(OptimConfig(name="sgd", lr=0.1), model)
    resumed = build_scheduler(long, resumed_opt)
    resumed_opt.load_state_dict(opt_state)  # restores the stale lr 0.0
    load_scheduler_state(resumed, sched_state)
    expected = 0.1 * (1 - 8 / 16) ** 0.9
    assert resumed.last_epoch == 8
    assert [g["lr"] for g in resumed_opt.param_groups] == pytest.approx([expected] * len(resumed_opt.param_groups))
    assert resumed.get_last_lr() == pytest.approx([expected] * len(resumed_opt.param_groups))


def test_step_schedule_with_milestones_decays_at_each():
    # mmdetection's 1x: x0.1 after epochs 8 and 11 of 12 (here 8 and 11 steps), warm-up first.
    cfg = ScheduleConfig(name="step", total_steps=12, milestones=[8, 11], gamma=0.1)
    assert [lr_factor(s, cfg) for s in (0, 7, 8, 10, 11)] == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01])


def _group_of(opt, param):
    (group,) = [g for g in opt.param_groups if any(p is param for p in g["params"])]
    return group["lr"], group["weight_decay"]


def test_bias_lr_multiplier_and_decayed_norm_weights_as_mmdetection_fcos():
    # FCOS's paramwise_cfg: bias_lr_mult 2, no decay on biases; mmdetection decays (Group)Norm weights by default.
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.Conv2d(4, 2, 1))
    cfg = OptimConfig(name="sgd", lr=0.01, weight_decay=1e-4, bias_lr_mult=2.0, norm_weight_decay=True)
    opt = build_optimizer(cfg, net)
    assert _group_of(opt, net[0].weight) == (pytest.approx(0.01), 1e-4)
    assert _group_of(opt, net[0].bias) == (pytest.approx(0.02), 0.0)
    assert _group_of(opt, net[1].weight) == (pytest.approx(0.01), 1e-4)
    assert _group_of(opt, net[1].bias) == (pytest.approx(0.02), 0.0)
    assert _group_of(opt, net[2].bias) == (pytest.approx(0.02), 0.0)
    # the scheduler keeps the ratio: every group follows the same factor of its own base lr
    sched = build_scheduler(ScheduleConfig(name="step", total_steps=4, milestones=[2]), opt)
    for _ in range(2):
        opt.step()
        sched.step()
    assert _group_of(opt, net[0].bias)[0] == pytest.approx(0.002)


def test_default_grouping_is_unchanged_so_older_optimizer_states_load():
    # Runs written before bias_lr_mult existed hold two groups per backbone / non-backbone part; resuming them must
    # build the same groups in the same order.
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))
    opt = build_optimizer(OptimConfig(name="sgd", lr=0.1), net)
    assert [len(g["params"]) for g in opt.param_groups] == [2, 4]
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-4, 0.0]


def test_lr_multipliers_by_parameter_name_prefix():
    # e.g. a from-scratch pose network at 10x the depth network's lr; the longest prefix wins; multipliers combine.
    net = nn.ModuleDict({"depth": nn.Linear(2, 2), "pose_encoder": nn.Linear(2, 2), "pose_decoder": nn.Linear(2, 2)})
    net.pose_decoder.add_module("last", nn.Linear(2, 1))
    cfg = OptimConfig(
        name="adam", lr=1e-4, weight_decay=0.0, bias_lr_mult=2.0, lr_mult={"pose_": 99.0, "pose_encoder": 10.0}
    )
    with pytest.raises(ConfigError, match=r"'pose_' names no trainable parameter.*depth, pose_decoder, pose_encoder"):
        build_optimizer(cfg, net)  # prefixes are dotted names: 'pose_' is not one
    cfg = OptimConfig(
        name="adam",
        lr=1e-4,
        weight_decay=0.0,
        bias_lr_mult=2.0,
        lr_mult={"pose_encoder": 10.0, "pose_decoder": 10.0, "pose_decoder.last": 0.5},
    )
    opt = build_optimizer(cfg, net)
    assert _group_of(opt, net.depth.weight)[0] == pytest.approx(1e-4)
    assert _group_of(opt, net.pose_encoder.weight)[0] == pytest.approx(1e-3)
    assert _group_of(opt, net.pose_encoder.bias)[0] == pytest.approx(2e-3)
    assert _group_of(opt, net.pose_decoder.weight)[0] == pytest.approx(1e-3)
    assert _group_of(opt, net.pose_decoder.last.weight)[0] == pytest.approx(5e-5)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(net.parameters()))
