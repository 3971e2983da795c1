"""``freqdense convert``: an official checkpoint -> a freqdense checkpoint directory that ``eval``, ``predict``,
``export`` and ``analyze`` accept.

The output folder holds ``model.safetensors``, ``meta.json`` (classes, palette, normalisation, units, the full
config, and ``converted_from``: format, source files with their SHA-256, what was renamed and dropped),
``config.yaml`` and ``convert.json`` (the mapping report). It is written under a temporary name and renamed into
place, so a failed conversion leaves nothing behind, and an existing non-empty folder is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import safetensors.torch
import yaml

from ..config import build_config, config_to_dict, load_raw_config
from ..errors import CheckpointError, FreqdenseError
from ..models.convert import Conversion, convert
from ..models.convert.freqfusion import PartialConversion
from ..tasks import build_task
from .checkpoint import META_FILE, MODEL_FILE, json_safe
from .train import model_meta

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_CONFIGS", "convert_checkpoint"]

#: The config (data, task, evaluation protocol) a converted model gets when ``--config`` is not given, per format
#: and detected model. The model section always comes from the checkpoint.
DEFAULT_CONFIGS: dict[str, dict[str, str]] = {
    "mtl-pytorch": {
        "mti_net": "nyud/mti_net_hrnet18s_baseline",
        "pad_net": "nyud/pad_net_hrnet18s_baseline",
        "multitask_baseline": "nyud/multitask_baseline_hrnet18s",
        "segmentation_baseline": "nyud/multitask_baseline_hrnet18s",
        "depth_baseline": "nyud/multitask_baseline_hrnet18s",
    },
    "monodepth2": {"monodepth": "kitti/monodepth2_m_r18_192x640"},
    "deeplab-jfzhang95": {"deeplabv3plus": "voc/deeplabv3plus_r101_os16_513_30k"},
    "fafnet": {"fafnet_official": "nyuv2/fafnet_r101_hha_official"},
    "freqfusion": {"segnext": "ade20k/segnext_t_freqfusion_512x512"},
}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _source_files(source: Path) -> dict[str, str]:
    files = sorted(p for p in source.iterdir() if p.is_file()) if source.is_dir() else [source]
    return {str(p.resolve()): _sha256(p) for p in files}


def _dataset_info(cfg: Any, num_classes: int | None, extra: dict[str, Any] | None = None) -> Any:
    """Something with ``classes`` / ``palette`` / ``size`` for the metadata: the class names the checkpoint itself
    stores (mmseg's ``meta["CLASSES"]``) when their number fits, else the dataset if its files are here, else its
    class-level tables, else numbered classes."""
    from ..data import DATASETS, create_dataset

    own = list((extra or {}).get("classes") or [])
    if own and (num_classes is None or len(own) == num_classes):
        palette = list((extra or {}).get("palette") or [])

        class _Own:
            classes = own
            size = None

        _Own.palette = palette if len(palette) == len(own) else []
        return _Own

    try:
        return create_dataset(cfg.data.dataset, split=cfg.data.val_split, **{**cfg.data.args, **cfg.data.val_args})
    except (FreqdenseError, OSError) as err:
        log.info("dataset %s not available here (%s); class names from its tables", cfg.data.dataset, err)
    holder = DATASETS.get(cfg.data.dataset)

    class _Info:
        classes = list(getattr(holder, "classes", []) or [])
        palette = list(getattr(holder, "palette", []) or [])
        size = None

    if num_classes is not None and len(_Info.classes) != num_classes:
        _Info.classes = [f"class_{i}" for i in range(num_classes)]
        _Info.palette = []
    return _Info


def convert_checkpoint(
    fmt: str,
    source: str | Path,
    out: str | Path,
    *,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
) -> tuple[Path, Conversion | PartialConversion]:
    """Convert ``source`` (format ``fmt``) into the checkpoint folder ``out``; returns ``(out, conversion)``.

    A FreqFusion *detection* checkpoint (mmdet R-CNN with the FreqFusion FPN neck) converts only partially: the
    backbone and the neck go to ``out`` as weights + a report (:func:`~freqdense.models.convert.freqfusion.
    write_partial_conversion`), not as a run directory, because freqdense has no R-CNN; the result is then a
    :class:`~freqdense.models.convert.freqfusion.PartialConversion`.

    Args:
        config: the config whose data / task / eval sections the converted model gets (default: see
            :data:`DEFAULT_CONFIGS`); its model section is replaced by what the checkpoint holds.
        overrides: ``section.key=value`` overrides; ``model.*`` ones are model options the weights cannot tell
            (e.g. ``model.output_stride=8``, ``model.min_depth=0.1``) and are checked against the checkpoint.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CheckpointError(
            f"{out} already exists and is not an empty folder; converting never overwrites: choose a new --out"
        )
    if fmt == "freqfusion":
        from ..models.convert.freqfusion import checkpoint_kind, read_freqfusion_checkpoint, write_partial_conversion

        source_path = Path(source)
        if source_path.is_file() and checkpoint_kind(read_freqfusion_checkpoint(source_path)[0], str(source)) == (
            "detection"
        ):
            if overrides or config is not None:
                raise CheckpointError(
                    "a FreqFusion detection checkpoint converts only its backbone and neck (no run directory); "
                    "--config and overrides do not apply to it: remove them"
                )
            return out, write_partial_conversion(source_path, out)
    overrides = list(overrides or [])
    model_overrides = [o for o in overrides if o.startswith("model.")]
    other_overrides = [o for o in overrides if not o.startswith("model.")]
    from ..config import parse_overrides

    options = parse_overrides(model_overrides).get("model", {}) if model_overrides else {}
    model, conv = convert(fmt, source, options)
    name = conv.model["name"]
    if config is None:
        config = DEFAULT_CONFIGS.get(fmt, {}).get(name)
        if config is None:
            raise CheckpointError(f"no default config for a {name} from {fmt}; pass --config CONFIG")
    raw = load_raw_config(config, other_overrides)
    raw["model"] = dict(conv.model)
    cfg = build_config(raw, source=f"{config} with the model of {source}")
    num_classes = conv.model.get("num_classes")
    task = build_task(cfg.task, num_classes=num_classes)
    info = _dataset_info(cfg, num_classes, conv.extra)
    meta = model_meta(cfg, info, model, task.keys)
    meta["step"] = None
    meta["converted_from"] = {
        "format": fmt,
        "source": str(Path(source).resolve()),
        "files": _source_files(Path(source)),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": str(config),
        **({"extra": conv.extra} if conv.extra else {}),
    }
    report = {
        "model": conv.model,
        "renamed": [{"from": a, "to": b, "keys": n} for a, b, n in conv.renamed],
        "dropped": conv.dropped,
        "notes": conv.notes,
        "tensors": len(conv.state_dict),
    }
    _write(out, conv, meta, cfg, report)
    return out, conv


def _write(out: Path, conv: Conversion, meta: dict[str, Any], cfg: Any, report: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-convert-{out.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in conv.state_dict.items()}
        (tmp / MODEL_FILE).write_bytes(safetensors.torch.save(state, metadata={"format": "pt"}))
        (tmp / META_FILE).write_text(json.dumps(json_safe(meta), indent=2, allow_nan=False), encoding="utf-8")
        (tmp / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), encoding="utf-8")
        (tmp / "convert.json").write_text(json.dumps(json_safe(report), indent=2), encoding="utf-8")
        for file in tmp.iterdir():
            with open(file, "rb") as f:
                os.fsync(f.fileno())
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
