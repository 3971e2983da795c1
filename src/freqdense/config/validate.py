"""Range checks of a typed experiment config, one function per section, run by ``build_config`` at load time.

The schema (``schema.py``) fixes the *types*; this module refuses values of the right type that cannot work (a
negative learning rate, ``schedule.step_size: 0``, ``eval.every: -1``, a typo in ``eval.metric``, ...) before any
dataset, model or run directory is touched. Every message names the key, the value and the valid range.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError
from .schema import (
    DataConfig,
    EvalConfig,
    ExperimentConfig,
    OptimConfig,
    PruneConfig,
    ScheduleConfig,
    TaskConfig,
    TrainConfig,
)

__all__ = ["validate_config", "valid_metric_names", "MAX_SEED"]

#: Largest seed numpy's legacy seeding (and so ``seed_everything``) accepts.
MAX_SEED = 2**32 - 1

#: Metric names each task part logs (``<part>/<name>``); the segmentation part also logs ``iou/<class name>``.
_SEMANTIC_METRICS = ("miou", "mean_acc", "pixel_acc")
_TASK_PARTS = {
    "segmentation": ("semantic",),
    "depth": ("depth",),
    "multitask": ("semantic", "depth"),
    "self_supervised_depth": ("depth",),
    "detection": ("detection",),
}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Checker:
    """Collects nothing: raises on the first value outside its range, naming ``<source>: <key>=<value>``."""

    def __init__(self, source: str, section: str) -> None:
        self.source = source
        self.section = section

    def fail(self, key: str, value: Any, rule: str) -> None:
        raise ConfigError(
            f"{self.source}: {self.section}.{key}={value!r} is out of range: it must be {rule}; "
            f"fix {self.section}.{key} in the config or its override"
        )

    def check(self, key: str, value: Any, ok: Callable[[Any], bool], rule: str) -> None:
        if not ok(value):
            self.fail(key, value, rule)

    def finite(self, key: str, value: Any, low: float | None, high: float | None, *, lo_open=False, hi_open=False):
        """A finite number in [low, high] (``lo_open`` / ``hi_open`` exclude the bound)."""
        lo = "(" if lo_open else "["
        hi = ")" if hi_open else "]"
        rule = f"a finite number in {lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
        ok = _is_number(value) and math.isfinite(value)
        if ok and low is not None:
            ok = value > low if lo_open else value >= low
        if ok and high is not None:
            ok = value < high if hi_open else value <= high
        if not ok:
            self.fail(key, value, rule)

    def integer(self, key: str, value: Any, low: int, high: int | None = None) -> None:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)
        if not ok:
            self.fail(key, value, f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]")


def _check_data(cfg: DataConfig, source: str) -> None:
    c = _Checker(source, "data")
    c.integer("batch_size", cfg.batch_size, 1)
    c.integer("val_batch_size", cfg.val_batch_size, 1)
    c.integer("num_workers", cfg.num_workers, 0)


def _check_task(cfg: TaskConfig, source: str) -> None:
    c = _Checker(source, "task")
    for name, weight in cfg.loss_weights.items():
        c.finite(f"loss_weights.{name}", weight, 0.0, None)
    c.finite("aux_weight", cfg.aux_weight, 0.0, None)
    if isinstance(cfg.consistency, dict) and "weight" in cfg.consistency:
        c.finite("consistency.weight", cfg.consistency["weight"], 0.0, None)
    c.finite("min_depth", cfg.min_depth, 0.0, None)
    c.finite("max_depth", cfg.max_depth, 0.0, None, lo_open=True)
    if cfg.max_depth <= cfg.min_depth:
        c.fail("max_depth", cfg.max_depth, f"greater than task.min_depth={cfg.min_depth!r}")
    _check_detection_options(cfg, c)


def _check_detection_options(cfg: TaskConfig, c: _Checker) -> None:
    """Ranges of ``task.detection`` (the keys themselves are checked by ``build_task``)."""
    opts = cfg.detection
    if not opts:
        return
    if cfg.name != "detection":
        c.fail("detection", opts, "empty unless task.name is detection (these are detection options)")
    for key in ("score_thr", "nms_iou"):
        if key in opts:
            c.finite(f"detection.{key}", opts[key], 0.0, 1.0)
    for key in ("max_per_image", "pre_nms_top_k"):
        if key in opts:
            c.integer(f"detection.{key}", opts[key], 1)
    if "min_size" in opts:
        c.finite("detection.min_size", opts["min_size"], 0.0, None)
    weights = opts.get("loss_weights")
    if isinstance(weights, dict):
        for name, weight in weights.items():
            c.finite(f"detection.loss_weights.{name}", weight, 0.0, None)


def _check_optim(cfg: OptimConfig, source: str) -> None:
    c = _Checker(source, "optim")
    c.finite("lr", cfg.lr, 0.0, None)
    c.finite("weight_decay", cfg.weight_decay, 0.0, None)
    c.finite("momentum", cfg.momentum, 0.0, 1.0, hi_open=True)
    for i, beta in enumerate(cfg.betas):
        c.finite(f"betas[{i}]", beta, 0.0, 1.0, hi_open=True)
    if cfg.clip_grad_norm is not None:
        c.finite("clip_grad_norm", cfg.clip_grad_norm, 0.0, None, lo_open=True)
    c.finite("backbone_lr_mult", cfg.backbone_lr_mult, 0.0, None)
    c.finite("bias_lr_mult", cfg.bias_lr_mult, 0.0, None)
    for prefix, mult in cfg.lr_mult.items():
        c.finite(f"lr_mult.{prefix}", mult, 0.0, None)
    if cfg.name == "sgd" and cfg.nesterov and cfg.momentum == 0:
        c.fail("momentum", cfg.momentum, "> 0 with optim.nesterov: true (Nesterov momentum needs a momentum)")


def _check_schedule(cfg: ScheduleConfig, source: str) -> None:
    c = _Checker(source, "schedule")
    c.integer("total_steps", cfg.total_steps, 1)
    c.integer("warmup_steps", cfg.warmup_steps, 0)
    if cfg.warmup_steps > cfg.total_steps:  # equal is allowed: a smoke test may be all warm-up
        c.fail(
            "warmup_steps",
            cfg.warmup_steps,
            f"at most schedule.total_steps={cfg.total_steps} (the learning rate would never reach optim.lr)",
        )
    c.finite("warmup_factor", cfg.warmup_factor, 0.0, 1.0)
    c.finite("power", cfg.power, 0.0, None, lo_open=True)
    c.integer("step_size", cfg.step_size, 1)
    for i, milestone in enumerate(cfg.milestones):
        c.integer(f"milestones[{i}]", milestone, 1)
    if list(cfg.milestones) != sorted(set(cfg.milestones)):
        c.fail("milestones", list(cfg.milestones), "strictly increasing steps (e.g. [58632, 80619])")
    if cfg.milestones and cfg.name != "step":
        c.fail("milestones", list(cfg.milestones), f"empty unless schedule.name is 'step' (it is {cfg.name!r})")
    c.finite("gamma", cfg.gamma, 0.0, 1.0, lo_open=True)
    c.finite("min_lr_ratio", cfg.min_lr_ratio, 0.0, 1.0)


def _check_eval(cfg: EvalConfig, task: TaskConfig, source: str) -> None:
    c = _Checker(source, "eval")
    c.integer("every", cfg.every, 0)
    if cfg.max_batches is not None:
        c.integer("max_batches", cfg.max_batches, 1)
    if not cfg.scales:
        c.fail("scales", cfg.scales, "a non-empty list of positive factors, e.g. [1.0]")
    for i, scale in enumerate(cfg.scales):
        c.finite(f"scales[{i}]", scale, 0.0, None, lo_open=True)
    if task.name == "detection" and (list(cfg.scales) != [1.0] or cfg.flip):
        c.fail(
            "scales" if list(cfg.scales) != [1.0] else "flip",
            list(cfg.scales) if list(cfg.scales) != [1.0] else cfg.flip,
            "[1.0] / false for task detection (multi-scale and flip averaging are for dense maps; detection TTA "
            "would need box voting)",
        )
    valid = valid_metric_names(task)
    if cfg.metric not in valid and not _is_class_iou(cfg.metric, task):
        close = difflib.get_close_matches(cfg.metric, valid, n=1, cutoff=0.5)
        if not close:  # a name without its part, e.g. "miou" for "semantic/miou"
            by_name = {name.split("/", 1)[1]: name for name in valid}
            close = [by_name[n] for n in difflib.get_close_matches(cfg.metric.split("/")[-1], list(by_name), n=1)]
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"{source}: eval.metric={cfg.metric!r} is not a metric task {task.name!r} logs.{hint} "
            f"Valid: {', '.join(valid)} (or semantic/iou/<class> where the task segments)"
        )


def _check_train(cfg: TrainConfig, source: str) -> None:
    c = _Checker(source, "train")
    c.integer("seed", cfg.seed, 0, MAX_SEED)
    c.integer("log_every", cfg.log_every, 1)
    c.integer("checkpoint_every", cfg.checkpoint_every, 0)
    c.integer("keep_checkpoints", cfg.keep_checkpoints, 1)
    if cfg.num_threads is not None:
        c.integer("num_threads", cfg.num_threads, 1)


def _check_prune(cfg: PruneConfig, source: str) -> None:
    c = _Checker(source, "prune")
    c.finite("encoder_rate", cfg.encoder_rate, 0.0, 1.0, hi_open=True)
    c.finite("decoder_rate", cfg.decoder_rate, 0.0, 1.0, hi_open=True)
    c.integer("every_epochs", cfg.every_epochs, 1)


def valid_metric_names(task: TaskConfig) -> list[str]:
    """The ``<part>/<metric>`` names an evaluation of ``task`` logs (besides ``semantic/iou/<class>``)."""
    from ..metrics.depth import DEPTH_METRIC_NAMES
    from ..metrics.detection import DETECTION_METRIC_NAMES

    if task.name == "detection":
        voc = task.detection.get("voc_ap50", True) if isinstance(task.detection, dict) else True
        return [f"detection/{m}" for m in DETECTION_METRIC_NAMES if voc or m != "ap50_voc"]
    median = task.median_scaling or bool(task.self_supervised.get("median_scaling"))
    depth = (*DEPTH_METRIC_NAMES, *(("median_ratio_mean", "median_ratio_std") if median else ()))
    names = []
    for part in _TASK_PARTS[task.name]:
        names += [f"{part}/{m}" for m in (_SEMANTIC_METRICS if part == "semantic" else depth)]
    return names


def _is_class_iou(metric: str, task: TaskConfig) -> bool:
    return "semantic" in _TASK_PARTS[task.name] and metric.startswith("semantic/iou/") and len(metric) > 13


def validate_config(cfg: ExperimentConfig, source: str = "config") -> None:
    """Refuse out-of-range values of every section (raises :class:`~freqdense.errors.ConfigError`)."""
    _check_data(cfg.data, source)
    _check_task(cfg.task, source)
    _check_optim(cfg.optim, source)
    _check_schedule(cfg.schedule, source)
    _check_eval(cfg.eval, cfg.task, source)
    _check_train(cfg.train, source)
    _check_prune(cfg.prune, source)
