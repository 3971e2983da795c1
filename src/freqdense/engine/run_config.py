"""A run directory means one experiment: refuse a config that differs from the run's, record the changes allowed.

``freqdense train CONFIG --out DIR`` resumes a run in ``DIR``. Before anything is written, the resolved config is
compared key by key with the run's ``config.yaml`` (or, where that is missing, with the config stored in its latest
checkpoint). Three kinds of key:

- **runtime keys** (:data:`RUNTIME_KEYS`) say *how* the run computes, not *what*: device, threads, data workers,
  logging cadence. They may change on any resume; the change is recorded.
- **resumable keys** (:data:`RESUMABLE_KEYS`) may change when the user asks for it with ``--resume-with-changes``
  (``allow_changes=True``): extending ``schedule.total_steps``, evaluation and checkpoint cadence, the learning rate
  (applied to the restored optimizer and schedule, not only written down). The new values take effect at the resume
  step and are recorded in ``run.json`` with that step.
- **every other key** defines the experiment (model, data, task, optimiser, seed, ...): a difference is refused with
  a one-line :class:`~freqdense.errors.ConfigError` listing the keys, and nothing in the directory is touched.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .checkpoint import META_FILE, read_meta

__all__ = [
    "RUNTIME_KEYS",
    "RESUMABLE_KEYS",
    "CONFIG_FILE",
    "flatten_config",
    "config_differences",
    "experiment_differences",
    "stored_config",
    "check_resume_config",
]

CONFIG_FILE = "config.yaml"
#: Keys that change how a run computes, not what it computes.
RUNTIME_KEYS = frozenset({"train.device", "train.num_threads", "train.log_every", "data.num_workers"})
#: Keys a resumed run may change with ``--resume-with-changes``, and what the change means.
RESUMABLE_KEYS = {
    "schedule.total_steps": "extends (or shortens) the run; the lr schedule is re-evaluated for the new length",
    "eval.every": "evaluation cadence from the resume step on",
    "train.checkpoint_every": "checkpoint cadence from the resume step on",
    "train.keep_checkpoints": "how many recent checkpoints are kept",
    "optim.lr": "every param group's lr and the schedule's base lrs are scaled by new/old from the resume step on",
}

_MISSING = "<absent>"


def _plain(data: Any) -> Any:
    # tuples -> lists, as a config.yaml written by yaml.safe_dump reads back
    return yaml.safe_load(yaml.safe_dump(data, sort_keys=True))


def flatten_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """``{"optim": {"lr": 0.1}}`` -> ``{"optim.lr": 0.1}``. Sections and the keys of ``model`` / ``data.args`` and
    other nested mappings are joined with dots; lists stay values."""
    out: dict[str, Any] = {}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, Mapping) and value:
                walk(value, name + ".")
            else:
                out[name] = value

    walk(_plain(dict(data)), "")
    return out


@functools.cache
def _schema_defaults() -> dict[str, Any]:
    """Dotted key -> default of the sections whose dataclasses build without arguments (optim, schedule, ...)."""
    from ..config import schema

    out: dict[str, Any] = {}
    for field in dataclasses.fields(schema.ExperimentConfig):
        try:
            default = field.type if not isinstance(field.type, str) else getattr(schema, field.type)
            section = default()
        except (TypeError, AttributeError):  # model: no defaults
            continue
        out.update(flatten_config({field.name: _plain(dataclasses.asdict(section))}))
    return out


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Dotted key -> ``(old value, new value)`` for every key whose value differs (``"<absent>"`` where missing).

    A key the schema gained after the old run was written is absent from its config; absent and the key's default
    (or an empty mapping, e.g. ``task.detection: {}``) mean the same run."""
    a, b = flatten_config(old), flatten_config(new)
    defaults = _schema_defaults()
    out = {}
    for k in sorted(set(a) | set(b)):
        pair = (a.get(k, _MISSING), b.get(k, _MISSING))
        if pair[0] == pair[1] or (_MISSING in pair and {} in pair):
            continue
        if pair[0] == _MISSING and k in defaults and defaults[k] == pair[1]:
            continue
        out[k] = pair
    return out


def experiment_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """:func:`config_differences` without the :data:`RUNTIME_KEYS`: the keys in which ``new`` is another experiment
    than ``old`` (what a finished run may be reused under)."""
    return {k: v for k, v in config_differences(old, new).items() if k not in RUNTIME_KEYS}


def stored_config(run_dir: Path, checkpoint: Path | None) -> tuple[dict[str, Any] | None, Path | None]:
    """The config a run directory holds: ``config.yaml``, else the latest checkpoint's ``meta.json`` config.

    Returns ``(config, file it came from)``, or ``(None, None)`` for a directory that holds no run.

    Raises:
        ConfigError: the file exists but cannot be read as a config.
    """
    path = Path(run_dir) / CONFIG_FILE
    if path.is_file():
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(
                f"{path}: unreadable ({err}); this directory holds a run whose config is damaged: train into a new "
                "--out, or restore the file"
            ) from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: not a config mapping; train into a new --out, or restore the file")
        return data, path
    if checkpoint is not None:
        meta = Path(checkpoint) / META_FILE
        config = read_meta(checkpoint).get("config")  # CheckpointError names an unreadable file
        if not isinstance(config, dict):
            raise ConfigError(f"{meta}: no config entry; train into a new --out, or delete the checkpoint")
        return config, meta
    return None, None


def _fmt(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def check_resume_config(
    run_dir: Path,
    new: Mapping[str, Any],
    *,
    checkpoint: Path | None,
    step: int,
    allow_changes: bool,
) -> dict[str, tuple[Any, Any]]:
    """Compare the config a run would resume with against the one the run directory holds.

    Args:
        run_dir: the run directory.
        new: the resolved config (``config_to_dict``) about to be trained.
        checkpoint: the checkpoint the run resumes from (None: the run has not saved one yet).
        step: the step it resumes at.
        allow_changes: ``--resume-with-changes``: accept differences in :data:`RESUMABLE_KEYS`.

    Returns:
        The accepted differences (runtime and, with ``allow_changes``, resumable keys); empty for a fresh directory.

    Raises:
        ConfigError: any other key differs, a resumable key differs without ``allow_changes``, or
            ``schedule.total_steps`` would end the run before the step it has reached.
    """
    old, source = stored_config(run_dir, checkpoint)
    if old is None:
        return {}
    diffs = config_differences(old, new)
    refused = {k: v for k, v in diffs.items() if k not in RUNTIME_KEYS and k not in RESUMABLE_KEYS}
    resumable = {k: v for k, v in diffs.items() if k in RESUMABLE_KEYS}
    listed = "; ".join(f"{k}: {_fmt(a)} -> {_fmt(b)}" for k, (a, b) in {**refused, **resumable}.items())
    if refused:
        fix = f"Train into a new --out, or delete {run_dir} to start over"
        if resumable:
            fix += f"; of these keys only {', '.join(resumable)} may change with --resume-with-changes"
        raise ConfigError(f"{run_dir} holds a run whose config ({source}) differs from this one: {listed}. {fix}")
    if resumable and not allow_changes:
        raise ConfigError(
            f"{run_dir} holds a run whose config ({source}) differs from this one: {listed}. Pass "
            "--resume-with-changes to continue that run with the new values from its step "
            f"{step} on, or train into a new --out"
        )
    total = resumable.get("schedule.total_steps")
    if total is not None and isinstance(total[1], int) and total[1] < step:
        raise ConfigError(
            f"schedule.total_steps={total[1]} is below step {step}, which the run in {run_dir} has already reached; "
            f"choose schedule.total_steps >= {step}"
        )
    return {k: v for k, v in diffs.items() if k in RUNTIME_KEYS or k in resumable}
