"""``freqdense data``: dataset utilities, one sub-subcommand per entry of ``SUBCOMMANDS``.

- ``data synth --out DIR --num N [--split train] [--size H W] [--seed S] [--<knob> VALUE ...]``: render
  synthetic samples into the documented on-disk format (docs/data/synthetic.md); ``--coco DIR`` (with or instead
  of ``--out``) also writes them in the COCO instances + panoptic format (data/coco_export.py);
- ``data panel --out PNG``: the README sample panel;
- ``data verify CONFIG [overrides] [--split S] [--num N]``: validate every sample, print label/depth statistics.
- ``data hha CONFIG [overrides] --out DIR [--split S] [--num N] [--depth-key K]``: cache HHA encodings as PNGs.

To add a sub-subcommand, write ``_register_<name>(sub)`` that adds its parser with ``set_defaults(func=...)``
and append it to ``SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["register", "run_synth", "run_panel", "run_verify", "SUBCOMMANDS"]

log = logging.getLogger(__name__)


def _parse_mix(text: str) -> dict[str, float]:
    try:
        pairs = [item.split("=") for item in text.split(",") if item]
        return {k.strip(): float(v) for k, v in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--texture-mix wants kind=weight,... (e.g. flat=1,fine=2), got {text!r}"
        ) from None


def _add_knob_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--knob-name`` flag per field of SyntheticConfig, typed from its default."""
    from ..data.synthetic.config import TEXTURE_KINDS, SyntheticConfig

    group = parser.add_argument_group("scene knobs (docs/data/synthetic.md; defaults in brackets)")
    defaults = SyntheticConfig()
    for f in dataclasses.fields(SyntheticConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if f.name == "texture_mix":
            help_text = f"weights kind=w,... over {', '.join(TEXTURE_KINDS)}"
            group.add_argument(flag, dest=f.name, type=_parse_mix, default=None, metavar="KIND=W,...", help=help_text)
        elif isinstance(default, bool):
            group.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=f"[{default}]"
            )
        else:
            group.add_argument(flag, dest=f.name, type=type(default), default=None, metavar="N", help=f"[{default}]")


def _config_from_args(args: argparse.Namespace):
    from ..data.synthetic.config import SyntheticConfig

    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(SyntheticConfig)
        if getattr(args, f.name, None) is not None
    }
    return SyntheticConfig.from_dict(overrides)


def _check_synth_size(size: list[int]) -> None:
    """Refuse a ``--size`` the synthetic loader cannot read back (it would be written, then refused at training)."""
    from ..data.synthetic.dataset import MIN_SIZE
    from ..errors import ConfigError

    if min(size) < MIN_SIZE:
        raise ConfigError(
            f"--size {size[0]} {size[1]} is too small: the synthetic loader needs height and width >= {MIN_SIZE} "
            "(e.g. --size 96 128)"
        )


def run_synth(args: argparse.Namespace) -> int:
    from ..data.synthetic.storage import synthesize
    from ..errors import ConfigError

    if args.num < 0:
        raise ConfigError(f"--num must be >= 0, got {args.num}")
    if args.out is None and args.coco is None:
        raise ConfigError("data synth needs --out DIR (the .npz format), --coco DIR (the COCO format) or both")
    if args.min_area < 1:
        raise ConfigError(f"--min-area must be >= 1 (pixels), got {args.min_area}")
    _check_synth_size(args.size)
    config = _config_from_args(args)
    if args.out is None:
        return _run_coco(args, config)
    from .._progress import Progress

    start = time.perf_counter()
    with Progress(f"rendering synthetic {args.split} samples", args.num, unit="sample") as bar:

        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

        out = synthesize(
            args.out,
            num_samples=args.num,
            split=args.split,
            size=tuple(args.size),
            seed=args.seed,
            config=config,
            progress=progress,
        )
    sys.stdout.write(f"wrote {args.num} {args.split} samples to {out} in {time.perf_counter() - start:.1f} s\n")
    return _run_coco(args, config) if args.coco is not None else 0


def _run_coco(args: argparse.Namespace, config: Any) -> int:
    """``--coco DIR``: the samples in the COCO format, read back from ``--out`` when given, else rendered."""
    from .._progress import Progress
    from ..data.coco_export import export_coco
    from ..data.synthetic.dataset import SyntheticScenes

    if args.out is not None:
        dataset = SyntheticScenes(split=args.split, root=args.out, num_samples=args.num, min_area=args.min_area)
    else:
        dataset = SyntheticScenes(
            split=args.split,
            config=config,
            size=tuple(args.size),
            seed=args.seed,
            num_samples=args.num,
            modalities=("image", "semantic", "instance"),
            min_area=args.min_area,
        )
    start = time.perf_counter()
    with Progress(f"writing synthetic {args.split} samples as COCO", args.num, unit="sample") as bar:
        paths = export_coco(dataset, args.coco, progress=lambda done, total: bar.update(done - bar.n))
    sys.stdout.write(
        f"wrote {args.num} {args.split} samples in the COCO format to {args.coco} ({paths['instances']}, "
        f"{paths['panoptic']}) in {time.perf_counter() - start:.1f} s\n"
    )
    return 0


def run_panel(args: argparse.Namespace) -> int:
    from ..data.synthetic.panel import render_panel

    _check_synth_size(args.size)
    path = render_panel(
        args.out,
        num_samples=args.num,
        split=args.split,
        size=tuple(args.size),
        seed=args.seed,
        config=_config_from_args(args),
    )
    sys.stdout.write(f"wrote {path}\n")
    return 0


def _register_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="render synthetic scenes (image, labels, depth, ...) to DIR/<split>/ as .npz files",
        description="Render synthetic samples (every modality) to DIR/<split>/: meta.json + <index:06d>.npz. "
        "Re-running resumes; see docs/data/synthetic.md for the format and the knobs.",
    )
    p.add_argument("--out", default=None, help="output directory (DIR/<split>/meta.json + NNNNNN.npz)")
    p.add_argument(
        "--coco",
        default=None,
        metavar="DIR",
        help="also (or only, without --out) write COCO instances + panoptic files: DIR/annotations/"
        "{instances,panoptic}_<split>.json, DIR/<split>/*.png, DIR/panoptic_<split>/*.png",
    )
    p.add_argument("--min-area", type=int, default=4, metavar="PX", help="--coco: smallest visible object exported [4]")
    p.add_argument("--num", type=int, required=True, help="number of samples")
    p.add_argument("--split", default="train", choices=("train", "val", "test"))
    p.add_argument("--size", type=int, nargs=2, default=(96, 128), metavar=("H", "W"))
    p.add_argument("--seed", type=int, default=0)
    _add_knob_flags(p)
    p.set_defaults(func=run_synth)


def _register_panel(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "panel",
        help="write a PNG grid of every modality of a few synthetic samples (the README panel)",
        description="Render a grid of every modality of a few samples.",
    )
    p.add_argument("--out", required=True, help="PNG path, e.g. docs/images/synthetic_panel.png")
    p.add_argument("--num", type=int, default=3, help="rows (samples)")
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
    p.add_argument("--size", type=int, nargs=2, default=(96, 128), metavar=("H", "W"))
    p.add_argument("--seed", type=int, default=0)
    _add_knob_flags(p)
    p.set_defaults(func=run_panel)


def _register_verify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="check every sample of a config's dataset (bad files, label ids, NaN depth); print label/depth "
        "statistics as JSON, exit code 1 on a problem",
        description="Reads each sample of a split as training would (no augmentation), collects every problem "
        "(unreadable file, label id out of range, NaN/inf depth, shape mismatch) with the sample it comes from, "
        "and prints the label histogram, ignored fraction and depth range as JSON.",
    )
    p.add_argument("config", help="experiment config (YAML file or shipped name)")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides")
    p.add_argument("--split", default=None, help="split to check (default: the config's train split)")
    p.add_argument("--num", type=int, default=None, help="check only the first N samples")
    p.set_defaults(func=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    import json

    from ..config import load_config
    from ..data import create_dataset
    from ..data.verify import verify_dataset

    cfg = load_config(args.config, args.overrides, check_model=False)
    split = args.split or cfg.data.train_split
    train = split == cfg.data.train_split
    dataset_args = {**cfg.data.args, **(cfg.data.train_args if train else cfg.data.val_args)}
    dataset = create_dataset(cfg.data.dataset, split=split, **dataset_args)
    report = verify_dataset(dataset, limit=args.num)
    summary = report.as_dict(list(getattr(dataset, "classes", []) or []) or None)
    sys.stdout.write(json.dumps({"dataset": cfg.data.dataset, "split": split, **summary}, indent=2) + "\n")
    return 1 if report.problems else 0


def _register_hha(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "hha",
        help="compute and cache HHA encodings of a config's depth as PNGs, for configs with hha: load",
        description="Writes OUT/<split>/<index:06d>.png (uint8 RGB = disparity, height, angle) for every sample "
        "of a config's dataset, plus OUT/<split>/meta.json (dataset, split, num and the sample ids in index order, "
        "which hha='load' checks); existing PNGs are kept, so re-running resumes. The dataset is read with "
        "hha='none' whatever the config says (the cache is what hha='load' reads).",
    )
    p.add_argument("config", help="experiment config (YAML file or shipped name)")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides")
    p.add_argument("--out", required=True, help="cache directory")
    p.add_argument("--split", default=None, help="split (default: the config's train split)")
    p.add_argument("--num", type=int, default=None, help="only the first N samples")
    p.add_argument("--depth-key", default="depth", choices=("depth", "sensor_depth"), help="which depth to encode")
    p.set_defaults(func=run_hha)


def _hha_source_dataset(cfg: Any, split: str) -> Any:
    """The config's dataset for ``split``, with ``hha="none"`` where the loader has an ``hha`` option.

    The cache is the input of ``hha="load"``, so a config that already says ``hha: load`` (or ``compute``) must not
    be honoured here: ``load`` would fail before the cache exists and ``compute`` would encode every frame twice.
    """
    import inspect

    from ..data import DATASETS, create_dataset, list_datasets

    train = split == cfg.data.train_split
    dataset_args = {**cfg.data.args, **(cfg.data.train_args if train else cfg.data.val_args)}
    list_datasets()  # imports (registers) every loader so that DATASETS.get sees it
    if "hha" in inspect.signature(DATASETS.get(cfg.data.dataset)).parameters:
        dataset_args["hha"] = "none"
    return create_dataset(cfg.data.dataset, split=split, **dataset_args)


def _sample_id(dataset: Any, index: int) -> str | None:
    meta = dataset[index].get("meta")
    sample_id = meta.get("id") if isinstance(meta, dict) else None
    return None if sample_id is None else str(sample_id)


def run_hha(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from .._progress import progress
    from ..config import load_config
    from ..errors import DataError
    from ..ops.hha import depth_to_hha

    cfg = load_config(args.config, args.overrides, check_model=False)
    split = args.split or cfg.data.train_split
    dataset = _hha_source_dataset(cfg, split)
    out_dir = Path(args.out) / split
    out_dir.mkdir(parents=True, exist_ok=True)
    meta_path = out_dir / "meta.json"
    try:
        previous = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {str(meta_path)!r} ({err}); delete the cache or pass another --out") from err
    for field, value in (("dataset", cfg.data.dataset), ("split", split), ("depth_key", args.depth_key)):
        if previous.get(field, value) != value:
            raise DataError(
                f"HHA cache {str(out_dir)!r} holds {field}={previous[field]!r}, not {value!r}; pass another --out "
                f"or delete the cache"
            )
    old_ids = previous.get("ids")
    total = len(dataset) if args.num is None else min(args.num, len(dataset))
    # Cache indices 0..num-1: this run's samples plus those a previous, longer run left (still in the dataset).
    num = min(max(total, int(previous.get("num", 0))), len(dataset))
    written, ids = 0, []
    for index in progress(range(num), f"HHA encoding of {cfg.data.dataset} {split}", unit="img"):
        path = out_dir / f"{index:06d}.png"
        if index >= total or path.exists():
            # Cached: the PNG stays; its id comes from the old index, or from the sample (one read, no encoding).
            known = old_ids is not None and index < len(old_ids)
            sample_id = str(old_ids[index]) if known and index >= total else _sample_id(dataset, index)
            if known and sample_id != str(old_ids[index]):
                raise DataError(
                    f"HHA cache {str(out_dir)!r} was written with sample {old_ids[index]!r} at index {index}, but "
                    f"{cfg.data.dataset} {split!r} now has {sample_id!r} there (the split list changed?); delete the "
                    f"cache or pass another --out"
                )
            ids.append(sample_id)
            continue
        sample = dataset[index]
        if args.depth_key not in sample or "intrinsics" not in sample:
            raise DataError(
                f"sample {index} of {cfg.data.dataset}/{split} has no {args.depth_key!r} or 'intrinsics'; "
                "pick --depth-key from the keys the dataset provides"
            )
        code = depth_to_hha(sample[args.depth_key][None].float(), sample["intrinsics"][None].float())
        Image.fromarray(code[0].permute(1, 2, 0).numpy().astype(np.uint8)).save(path)
        meta = sample.get("meta")
        ids.append(str(meta["id"]) if isinstance(meta, dict) and meta.get("id") is not None else None)
        written += 1
    meta = {
        "dataset": cfg.data.dataset,
        "split": split,
        "depth_key": args.depth_key,
        "num": num,
        "channels": ["disparity", "height_cm", "angle_deg_plus_38"],
    }
    if None not in ids:  # the loaders check the order against it (data/_hha_files.py)
        meta["ids"] = ids
    # Written last: a cache whose meta.json exists is complete for indices 0..num-1.
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    sys.stdout.write(f"wrote {written} HHA images ({total - written} cached) to {out_dir}\n")
    return 0


#: (name, register function) of every ``freqdense data`` sub-subcommand.
SUBCOMMANDS: list[tuple[str, Callable[[argparse._SubParsersAction], None]]] = [
    ("synth", _register_synth),
    ("panel", _register_panel),
    ("verify", _register_verify),
    ("hha", _register_hha),
]


#: What ``freqdense data --help`` shows (the module docstring is the developer note).
_DESCRIPTION = """\
Dataset utilities: render synthetic scenes and a sample panel, check a dataset
before training, cache HHA encodings of depth. Run
`freqdense data DATA_COMMAND --help` for the options of one command."""

_EPILOG = """\
examples:
  freqdense data synth --out data/synthetic --num 200 --split train
  freqdense data synth --coco data/synthetic_coco --num 200 --split val
  freqdense data panel --out panel.png --num 3
  freqdense data verify synthetic/demo_multitask --split val --num 20
  freqdense data hha nyuv2/fafnet_r101_hha data.args.root=data/nyuv2 --out data/nyuv2_hha
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="dataset utilities: render synthetic scenes, sample panels, verify a dataset, cache HHA encodings",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    for _, register_one in SUBCOMMANDS:
        register_one(sub)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
