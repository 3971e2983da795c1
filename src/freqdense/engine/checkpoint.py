"""Checkpoints: ``model.safetensors`` + ``meta.json`` (+ ``train_state.pt`` for resuming), written atomically.

Layout of a run directory::

    checkpoints/step_00000200/{model.safetensors, meta.json, train_state.pt}
    checkpoints/pointers.json {"latest": {"dir": "step_00000200", "step": 200},
                               "best": {"dir": "...", "step": ..., "metric": "semantic/miou", "value": ...}}

A checkpoint directory is filled under a temporary name and renamed into place; both pointers live in ONE file
replaced with ``os.replace``, so a kill at any moment leaves the previous checkpoint intact and the two pointers
consistent with each other (runs made before keep their ``latest.json`` / ``best.json``, which are still read).
Pruning never deletes a checkpoint a pointer refers to. A full disk raises :class:`~freqdense.errors.DiskFullError`
naming the file and the space needed; the temporary files are removed and the previous checkpoint stays.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import nn

from .._finite import check_finite_state
from .._paths import check_inside
from ..errors import CheckpointError, DiskFullError

log = logging.getLogger(__name__)

__all__ = [
    "save_checkpoint",
    "latest_checkpoint",
    "best_checkpoint",
    "resolve_checkpoint",
    "read_meta",
    "load_train_state",
    "load_weights",
    "load_model",
    "write_json_atomic",
    "write_text_atomic",
    "json_safe",
    "disk_full_error",
    "POINTERS_FILE",
    "read_pointers",
    "restore_best_pointer",
]

MODEL_FILE, META_FILE, STATE_FILE = "model.safetensors", "meta.json", "train_state.pt"
POINTERS_FILE = "pointers.json"
_LEGACY_POINTERS = {"latest": "latest.json", "best": "best.json"}  # the two-file layout of runs made before
_DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.1f} MB"


def disk_full_error(
    path: Path, err: BaseException, *, needed: int | None = None, note: str = ""
) -> DiskFullError | None:
    """A :class:`DiskFullError` naming ``path`` (and the bytes ``needed``) if ``err`` is a full disk or quota, else
    None. Callers re-raise it ``from None``: one clear line instead of an OS or serialiser error."""
    if not (isinstance(err, OSError) and err.errno in _DISK_FULL):
        return None
    space = f"free at least {_mb(needed)} there" if needed else "free some space there"
    return DiskFullError(f"no space left on the device holding {path} ({err.strerror}): {space}{note} and run again")


def write_text_atomic(path: Path, text: str) -> None:
    """Write text to a temporary file in the same directory, fsync, then ``os.replace``: readers see the old file
    or the whole new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        full = disk_full_error(path, err, needed=len(text.encode("utf-8")))
        if full is None:
            raise
        raise full from None
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, data: Any) -> None:
    """JSON (strict: NaN/inf become null) written with :func:`write_text_atomic`."""
    write_text_atomic(
        path, json.dumps(json_safe(data), indent=2, sort_keys=False, default=_json_default, allow_nan=False)
    )


def json_safe(obj: Any) -> Any:
    """NaN/inf -> None so the files stay strict JSON (per-class IoU of an absent class is NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, (tuple, set)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _numpy_state_to_torch(state: dict[str, Any]) -> dict[str, Any]:
    # numpy's RNG state holds an ndarray, which torch.load(weights_only=True) refuses: store it as a tensor.
    out = dict(state)
    if "numpy" in out:
        name, keys, pos, has_gauss, gauss = out["numpy"]
        out["numpy"] = (
            name,
            torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            int(pos),
            int(has_gauss),
            float(gauss),
        )
    return out


def _numpy_state_from_torch(state: dict[str, Any]) -> dict[str, Any]:
    out = dict(state)
    if "numpy" in out:
        name, keys, pos, has_gauss, gauss = out["numpy"]
        out["numpy"] = (name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss)
    return out


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: nn.Module,
    *,
    meta: dict[str, Any],
    train_state: dict[str, Any] | None = None,
    keep: int = 1,
    best: dict[str, Any] | None = None,
) -> Path:
    """Write a complete checkpoint for ``step`` and move the ``latest`` (and, if given, ``best``) pointers to it.

    Args:
        best: ``{"metric": name, "value": v}`` if this checkpoint is the new best model.
        keep: how many recent checkpoints to keep besides the best one.
    """
    ckpt_root = Path(run_dir) / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:08d}"
    final = ckpt_root / name
    tmp = ckpt_root / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    state_dict = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # Every file is serialised in memory and written with open(): the weights get the permissions of every other run
    # file (save_file would create them 0600), and a full disk is one OSError here, never a serialiser's own error.
    files = {MODEL_FILE: safetensors.torch.save(state_dict, metadata={"format": "pt"})}
    files[META_FILE] = json.dumps(
        json_safe({**meta, "step": step}), indent=2, default=_json_default, allow_nan=False
    ).encode()
    if train_state is not None:
        state = dict(train_state)
        if "rng" in state:
            state["rng"] = _numpy_state_to_torch(state["rng"])
        buffer = io.BytesIO()
        torch.save(state, buffer)
        files[STATE_FILE] = buffer.getvalue()
    needed = sum(len(data) for data in files.values())
    writing = tmp
    try:
        tmp.mkdir()
        for file_name, data in files.items():
            writing = tmp / file_name
            with open(writing, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        full = disk_full_error(
            final / writing.relative_to(tmp), err, needed=needed, note=f" (one checkpoint is {_mb(needed)})"
        )
        if full is None:
            raise
        kept = latest_checkpoint(run_dir)
        raise DiskFullError(f"{full}; kept: {kept if kept is not None else 'no checkpoint yet'}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():  # the same step saved again after a resume: swap it out, never leave it missing
        old = ckpt_root / f".old-{name}-{os.getpid()}"
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old)
    else:
        os.rename(tmp, final)
    pointers = read_pointers(ckpt_root)
    pointers["latest"] = {"dir": name, "step": step}
    if best is not None:
        pointers["best"] = {"dir": name, "step": step, **best}
    # latest and best change together in one os.replace: no kill can leave them pointing at different states
    write_json_atomic(ckpt_root / POINTERS_FILE, pointers)
    for legacy in _LEGACY_POINTERS.values():
        (ckpt_root / legacy).unlink(missing_ok=True)  # superseded by pointers.json (read only when it is absent)
    _prune(ckpt_root, keep)
    return final


def read_pointers(ckpt_root: Path) -> dict[str, Any]:
    """``{"latest": {...}, "best": {...}}`` of a checkpoints folder (``pointers.json``, else the legacy
    ``latest.json`` / ``best.json``); an unreadable file is ignored with a warning (the directories remain)."""
    ckpt_root = Path(ckpt_root)
    path = ckpt_root / POINTERS_FILE
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            log.warning("ignoring unreadable %s: %s", path, err)
            return {}
        return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}
    out = {}
    for which, file_name in _LEGACY_POINTERS.items():
        legacy = ckpt_root / file_name
        if legacy.is_file():
            try:
                entry = json.loads(legacy.read_text())
            except (OSError, json.JSONDecodeError) as err:
                log.warning("ignoring unreadable %s: %s", legacy, err)
                continue
            if isinstance(entry, dict):
                out[which] = entry
    return out


def restore_best_pointer(run_dir: Path, best: dict[str, Any] | None) -> None:
    """Point ``best`` at the checkpoint the resumed training state names as best (``{"step", "metric", "value"}``)
    when the pointer disagrees and that checkpoint exists: repairs runs whose two legacy pointer files were cut apart
    by a kill, before pruning could delete the best model."""
    if not best or not isinstance(best.get("step"), int):
        return
    ckpt_root = Path(run_dir) / "checkpoints"
    name = f"step_{best['step']:08d}"
    pointers = read_pointers(ckpt_root)
    if (pointers.get("best") or {}).get("dir") == name or not (ckpt_root / name / META_FILE).is_file():
        return
    log.warning("best pointer of %s repaired: %s (%s)", ckpt_root, name, best)
    pointers["best"] = {"dir": name, **best}
    if "latest" not in pointers:
        latest = latest_checkpoint(run_dir)
        if latest is not None:
            pointers["latest"] = {"dir": latest.name, "step": int(latest.name.split("_")[-1])}
    write_json_atomic(ckpt_root / POINTERS_FILE, pointers)
    for legacy in _LEGACY_POINTERS.values():
        (ckpt_root / legacy).unlink(missing_ok=True)


def _pointer(ckpt_root: Path, which: str) -> Path | None:
    entry = read_pointers(ckpt_root).get(which)
    if entry is None:
        return None
    source = ckpt_root / (POINTERS_FILE if (ckpt_root / POINTERS_FILE).is_file() else _LEGACY_POINTERS[which])
    name = entry.get("dir")
    # a pointer names one checkpoint directory inside this run: anything else (an absolute path, "..", a nested
    # path) is a tampered or foreign file and is refused rather than followed outside the run
    if not isinstance(name, str) or not name.startswith("step_") or Path(name).name != name or name in (".", ".."):
        raise CheckpointError(
            f"{source}: the {which!r} pointer {name!r} is not a checkpoint directory of this run (expected "
            f"step_XXXXXXXX inside {ckpt_root}); restore the file or delete it to fall back to the newest checkpoint"
        )
    target = ckpt_root / name
    check_inside(target, ckpt_root, source)  # also refuses a step_* symlink leading out of the run
    return target if (target / META_FILE).is_file() else None


def _prune(ckpt_root: Path, keep: int) -> None:
    protected = {p for p in (_pointer(ckpt_root, "latest"), _pointer(ckpt_root, "best")) if p is not None}
    steps = sorted(p for p in ckpt_root.glob("step_*") if p.is_dir())
    recent = set(steps[-max(keep, 1) :])
    for path in steps:
        if path not in protected and path not in recent:
            shutil.rmtree(path, ignore_errors=True)
    for leftover in ckpt_root.glob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run (pointer first, else the highest complete ``step_*``)."""
    ckpt_root = Path(run_dir) / "checkpoints"
    if not ckpt_root.is_dir():
        return None
    found = _pointer(ckpt_root, "latest")
    if found is not None:
        return found
    complete = sorted(p for p in ckpt_root.glob("step_*") if (p / META_FILE).is_file() and (p / MODEL_FILE).is_file())
    return complete[-1] if complete else None


def best_checkpoint(run_dir: Path) -> Path | None:
    ckpt_root = Path(run_dir) / "checkpoints"
    return _pointer(ckpt_root, "best") if ckpt_root.is_dir() else None


def resolve_checkpoint(path: str | Path, *, prefer: str = "best") -> Path:
    """A checkpoint directory from a run directory (best, else latest), a checkpoint directory or its weights file."""
    path = Path(path)
    if path.is_file() and path.name == MODEL_FILE:
        path = path.parent
    if (path / MODEL_FILE).is_file() and (path / META_FILE).is_file():
        return path
    if path.is_dir():
        found = (best_checkpoint(path) if prefer == "best" else None) or latest_checkpoint(path)
        if found is not None:
            return found
    raise CheckpointError(
        f"no checkpoint at {path}: expected a run directory with checkpoints/ or a directory holding "
        f"{MODEL_FILE} and {META_FILE} (train one with `freqdense train CONFIG --out DIR`)"
    )


def read_meta(ckpt_dir: Path) -> dict[str, Any]:
    path = Path(ckpt_dir) / META_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: unreadable checkpoint metadata ({err})") from err


def load_weights(model: nn.Module, ckpt_dir: Path, *, strict: bool = True) -> None:
    path = Path(ckpt_dir) / MODEL_FILE
    try:
        state = safetensors.torch.load_file(str(path))
    except Exception as err:  # safetensors raises several types for truncated/corrupt files
        raise CheckpointError(f"{path}: cannot read weights ({err}); the file is missing or corrupt") from err
    check_finite_state(state, path)  # a byte-flipped weight file must not evaluate silently (NaN everywhere)
    result = model.load_state_dict(state, strict=False)
    problems = []
    if result.missing_keys:
        problems.append(f"missing keys {result.missing_keys[:5]}{'...' if len(result.missing_keys) > 5 else ''}")
    if result.unexpected_keys:
        problems.append(f"unexpected keys {result.unexpected_keys[:5]}")
    if problems and strict:
        raise CheckpointError(f"{path} does not match the model: {'; '.join(problems)}")


def load_train_state(ckpt_dir: Path) -> dict[str, Any]:
    path = Path(ckpt_dir) / STATE_FILE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: cannot read training state ({err}); delete the checkpoint to restart") from err
    if "rng" in state:
        state["rng"] = _numpy_state_from_torch(state["rng"])
    return state


def load_model(
    path: str | Path, *, map_location: str | torch.device = "cpu", prefer: str = "best"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a trained model from a run or checkpoint directory; returns ``(model in eval mode, metadata)``."""
    from ..models import create_model

    ckpt = resolve_checkpoint(path, prefer=prefer)
    meta = read_meta(ckpt)
    try:
        model_cfg = dict(meta["config"]["model"])
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{ckpt / META_FILE}: no config.model entry; not a freqdense checkpoint") from err
    name = model_cfg.pop("name")
    model_cfg.pop("pretrained", None)  # never re-read ImageNet weights: the checkpoint has all weights
    model = create_model(name, **model_cfg)
    load_weights(model, ckpt)
    model.to(map_location).eval()
    meta["checkpoint_dir"] = str(ckpt)
    return model, meta
