"""Optimizers and learning-rate schedules (warm-up + constant / poly / cosine / step), per optimisation step."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config.schema import OptimConfig, ScheduleConfig
from ..errors import ConfigError

__all__ = ["build_optimizer", "build_scheduler", "load_scheduler_state", "lr_factor"]


def build_optimizer(cfg: OptimConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD / Adam / AdamW with parameter groups: no weight decay on biases (nor on 1-D norm weights unless
    ``norm_weight_decay``); lr multipliers ``backbone_lr_mult`` on the model's ``.backbone``, ``bias_lr_mult`` on
    biases and ``lr_mult`` by parameter-name prefix, multiplied together.

    Raises:
        ConfigError: an ``lr_mult`` prefix that names no trainable parameter.
    """
    backbone = getattr(model, "backbone", None)
    backbone_ids = {id(p) for p in backbone.parameters()} if isinstance(backbone, nn.Module) else set()
    prefixes = sorted(cfg.lr_mult, key=len, reverse=True)
    used: set[str] = set()
    groups: dict[tuple[bool, bool, bool, float], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_bias = name.rsplit(".", 1)[-1] == "bias"
        no_decay = is_bias or (p.ndim <= 1 and not cfg.norm_weight_decay)
        prefix = next((k for k in prefixes if name == k or name.startswith(k.rstrip(".") + ".")), None)
        mult = 1.0 if prefix is None else float(cfg.lr_mult[prefix])
        if prefix is not None:
            used.add(prefix)
        # Biases get their own groups only when their lr differs: with default options the groups are those of
        # earlier runs, whose optimizer states must still load on resume.
        key = (id(p) in backbone_ids, no_decay, is_bias and cfg.bias_lr_mult != 1.0, mult)
        groups.setdefault(key, []).append(p)
    unused = [k for k in cfg.lr_mult if k not in used]
    if unused:
        tops = sorted({n.split(".", 1)[0] for n, p in model.named_parameters() if p.requires_grad})
        raise ConfigError(
            f"optim.lr_mult: {', '.join(map(repr, unused))} names no trainable parameter of this model; prefixes are "
            f"dotted parameter names such as {', '.join(tops[:8])}"
        )
    param_groups = []
    for (in_backbone, no_decay, scaled_bias, mult), params in sorted(groups.items()):
        lr = cfg.lr * mult * (cfg.backbone_lr_mult if in_backbone else 1.0) * (cfg.bias_lr_mult if scaled_bias else 1.0)
        param_groups.append({"params": params, "lr": lr, "weight_decay": 0.0 if no_decay else cfg.weight_decay})
    if cfg.name == "sgd":
        return torch.optim.SGD(param_groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.name == "adam":
        return torch.optim.Adam(param_groups, lr=cfg.lr, betas=cfg.betas)
    return torch.optim.AdamW(param_groups, lr=cfg.lr, betas=cfg.betas)


def lr_factor(step: int, cfg: ScheduleConfig) -> float:
    """Multiplier of the base learning rate before optimisation step ``step`` (0-based)."""
    total = max(cfg.total_steps, 1)
    if step < cfg.warmup_steps:
        alpha = step / max(cfg.warmup_steps, 1)
        warm = cfg.warmup_factor * (1 - alpha) + alpha
    else:
        warm = 1.0
    progress = min(step, total) / total
    if cfg.name == "constant":
        decay = 1.0
    elif cfg.name == "poly":
        decay = (1 - progress) ** cfg.power
    elif cfg.name == "cosine":
        decay = 0.5 * (1 + math.cos(math.pi * progress))
    elif cfg.name == "step" and cfg.milestones:
        decay = cfg.gamma ** sum(step >= m for m in cfg.milestones)
    elif cfg.name == "step":
        decay = cfg.gamma ** (step // max(cfg.step_size, 1))
    else:  # pragma: no cover - the schema restricts names
        raise ValueError(cfg.name)
    decay = cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * decay
    return warm * decay


def build_scheduler(cfg: ScheduleConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg))


def load_scheduler_state(scheduler: torch.optim.lr_scheduler.LambdaLR, state: dict) -> None:
    """Restore a scheduler's step from a checkpoint and set every group's lr to what *this* scheduler's schedule gives
    there. The lr stored in the optimizer state belongs to the schedule the checkpoint was trained with; after
    ``--resume-with-changes schedule.total_steps=...`` the first update must already follow the new schedule."""
    scheduler.load_state_dict(state)
    step = scheduler.last_epoch
    lrs = [base * fn(step) for base, fn in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = lrs
