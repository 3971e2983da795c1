"""Bad-input cases: out-of-range config values and ``eval.metric`` typos are refused at load, before any work.

Each case runs ``freqdense train`` on the tiny config with one bad value and asserts exit 1, no traceback, a
message naming the key and the value, and that the run directory was never created (nothing half-written).
"""

from __future__ import annotations

import math

import pytest
from _harness import api_refused, refused

from freqdense.config import load_config
from freqdense.errors import ConfigError

# (key, bad value, a fragment of the stated valid range)
RANGE_CASES = [
    ("eval.every", -1, ">= 0"),
    ("eval.max_batches", 0, ">= 1"),
    ("eval.scales", [1.0, 0.0], "(0.0, inf]"),
    ("eval.scales", [], "non-empty"),
    ("schedule.step_size", 0, ">= 1"),
    ("schedule.milestones", [5, 3], "strictly increasing"),
    ("schedule.milestones", [0, 4], ">= 1"),
    ("schedule.total_steps", 0, ">= 1"),
    ("schedule.total_steps", -5, ">= 1"),
    ("schedule.warmup_steps", -1, ">= 0"),
    ("schedule.warmup_steps", 9, "at most schedule.total_steps=8"),
    ("schedule.gamma", 1.5, "(0.0, 1.0]"),
    ("schedule.gamma", 0.0, "(0.0, 1.0]"),
    ("schedule.power", -0.9, "(0.0, inf]"),
    ("schedule.warmup_factor", 2.0, "[0.0, 1.0]"),
    ("schedule.min_lr_ratio", -0.1, "[0.0, 1.0]"),
    ("task.loss_weights", {"semantic": -1.0}, "[0.0, inf]"),
    ("task.loss_weights", {"depth": math.inf}, "finite"),
    ("task.aux_weight", -0.5, "[0.0, inf]"),
    ("task.consistency", {"weight": -0.1}, "[0.0, inf]"),
    ("task.consistency", {"weight": math.nan}, "finite"),
    ("task.max_depth", 0.0, "(0.0, inf]"),
    ("task.min_depth", 30.0, "greater than task.min_depth"),
    ("optim.lr", -0.001, "[0.0, inf]"),
    ("optim.lr", math.nan, "finite"),
    ("optim.lr", math.inf, "finite"),
    ("optim.weight_decay", -1e-4, "[0.0, inf]"),
    ("optim.momentum", 1.0, "[0.0, 1.0)"),
    ("optim.betas", [0.9, 1.0], "[0.0, 1.0)"),
    ("optim.betas", [-0.1, 0.999], "[0.0, 1.0)"),
    ("optim.clip_grad_norm", 0.0, "(0.0, inf]"),
    ("optim.backbone_lr_mult", -1.0, "[0.0, inf]"),
    ("optim.bias_lr_mult", -2.0, "[0.0, inf]"),
    ("optim.lr_mult", {"pose_encoder": -1.0}, "[0.0, inf]"),
    ("data.batch_size", 0, ">= 1"),
    ("data.val_batch_size", 0, ">= 1"),
    ("data.num_workers", -1, ">= 0"),
    ("train.seed", -1, "[0, 4294967295]"),
    ("train.seed", 2**32, "[0, 4294967295]"),
    ("train.log_every", 0, ">= 1"),
    ("train.checkpoint_every", -1, ">= 0"),
    ("train.keep_checkpoints", 0, ">= 1"),
    ("train.num_threads", 0, ">= 1"),
    ("prune.encoder_rate", 1.0, "[0.0, 1.0)"),
    ("prune.decoder_rate", -0.2, "[0.0, 1.0)"),
    ("prune.every_epochs", 0, ">= 1"),
]


def _culprit_key(key: str, value) -> str:
    """The dotted key the message names (maps and lists name their entry)."""
    if key == "task.loss_weights":
        return f"task.loss_weights.{next(iter(value))}"
    if key == "task.consistency":
        return "task.consistency.weight"
    if key == "task.min_depth":
        return "task.max_depth"  # min_depth 30 > max_depth 20: the message names the pair through max_depth
    if key == "optim.betas":
        return "optim.betas[1]" if value[1] >= 1 else "optim.betas[0]"
    if key == "optim.lr_mult":
        return f"optim.lr_mult.{next(iter(value))}"
    if key == "schedule.milestones" and value[0] < 1:
        return "schedule.milestones[0]"
    if key == "eval.scales" and value:
        return "eval.scales[1]"
    return key


@pytest.mark.parametrize(("key", "value", "rule"), RANGE_CASES, ids=[f"{k}={v!r}" for k, v, _ in RANGE_CASES])
def test_out_of_range_value_is_refused_at_load(cli, write_config, tmp_path, unchanged, key, value, rule):
    # The tiny config has no prune section: those values come as a command-line override instead.
    config = write_config() if key.startswith("prune.") else write_config(**{key: value})
    overrides = [f"{key}={value}"] if key.startswith("prune.") else []
    out = tmp_path / "run"
    with unchanged(tmp_path / "cache"):
        outcome = cli("train", config, *overrides, "--out", out)
    message = refused(outcome, _culprit_key(key, value), rule)
    assert "out of range" in message
    assert not out.exists(), "a refused config must not create the run directory"


def test_sgd_nesterov_without_momentum_is_refused(write_config):
    config = write_config(**{"optim.name": "sgd", "optim.nesterov": True, "optim.momentum": 0.0})
    api_refused(lambda: load_config(config), ConfigError, "optim.momentum", "Nesterov")


METRIC_CASES = [
    ("semantic/mIoU", "multitask", "semantic/miou"),
    ("semantic/miou_", "multitask", "semantic/miou"),
    ("depth/absrel", "multitask", "depth/abs_rel"),
    ("depth/rsme", "depth", "depth/rmse"),
    ("semantic/miou", "depth", None),  # a depth-only task logs no segmentation metric
    ("miou", "segmentation", "semantic/miou"),
]


@pytest.mark.parametrize(("metric", "task", "suggestion"), METRIC_CASES, ids=[f"{t}:{m}" for m, t, _ in METRIC_CASES])
def test_eval_metric_typo_is_refused_at_load(cli, write_config, tmp_path, metric, task, suggestion):
    config = write_config(**{"eval.metric": metric, "task.name": task})
    out = tmp_path / "run"
    message = refused(cli("config", "show", config), "eval.metric", repr(metric))
    if suggestion:
        assert f"Did you mean {suggestion!r}" in message
    assert not out.exists()


@pytest.mark.parametrize(
    "metric", ["semantic/miou", "semantic/pixel_acc", "depth/abs_rel", "depth/delta1", "semantic/iou/wall"]
)
def test_valid_metric_names_load(write_config, metric):
    cfg = load_config(write_config(**{"eval.metric": metric}))
    assert cfg.eval.metric == metric


def test_median_ratio_is_valid_only_with_median_scaling(write_config):
    api_refused(
        lambda: load_config(write_config(**{"eval.metric": "depth/median_ratio_mean"})),
        ConfigError,
        "depth/median_ratio_mean",
    )
    cfg = load_config(write_config(**{"eval.metric": "depth/median_ratio_mean", "task.median_scaling": True}))
    assert cfg.eval.metric == "depth/median_ratio_mean"


def test_in_range_edges_load(write_config):
    """The edges of each range are accepted (0 evaluations between the end, lr 0, seed 2**32 - 1, ...)."""
    edges = {
        "eval.every": 0,
        "optim.lr": 0.0,
        "optim.momentum": 0.0,
        "train.seed": 2**32 - 1,
        "train.checkpoint_every": 0,
        "schedule.warmup_steps": 8,
        "schedule.gamma": 1.0,
        "data.num_workers": 0,
    }
    cfg = load_config(write_config(**edges))
    assert cfg.train.seed == 2**32 - 1 and cfg.schedule.warmup_steps == 8
