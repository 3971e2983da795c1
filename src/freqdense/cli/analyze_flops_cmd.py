"""``freqdense analyze flops [MODEL_OR_RUN] [--size H W] [--decoder-grid 129 65 33] [--encoder-rates 0.2 0.4 0.6
[--decoder-rate 0.2]] [key=value ...]``.

Prints parameters and FLOPs (2 x multiply-adds, ``torch.utils.flop_counter``; meta device, nothing is computed) per
model part and, with ``--decoder-grid``, the feature-truncation table of the spectral-analysis paper (Table 2 FLOPs
column); with ``--encoder-rates`` the FLOPs of the soft-filter-pruned models in the paper's accounting (all twelve
FLOPs entries of Table 2, :func:`freqdense.models.flops.pruning_flops_table`). ``MODEL_OR_RUN`` is a registered model
name (default ``deeplabv3plus``), a shipped config / YAML file, or a run or checkpoint directory; ``key=value`` pairs
are model keywords (YAML values, dotted keys nest), e.g.
``freqdense analyze flops deeplabv3plus accounting=paper num_classes=7 --decoder-grid 129 65 33 --encoder-rates 0.2
0.4 0.6``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError, FreqdenseError, UnknownNameError

__all__ = ["register", "resolve_model_spec"]

log = logging.getLogger(__name__)


def register(analyses: argparse._SubParsersAction) -> None:
    """Add ``flops`` to the ``analyze`` subparsers."""
    p = analyses.add_parser("flops", help="parameters and FLOPs per model part; decoder-truncation table")
    p.add_argument(
        "target",
        nargs="?",
        default="deeplabv3plus",
        help="registered model name, shipped config / YAML file, or run directory (default deeplabv3plus)",
    )
    p.add_argument("overrides", nargs="*", help="model keywords as key=value (e.g. accounting=paper num_classes=7)")
    p.add_argument("--size", type=int, nargs="+", default=[513, 513], metavar="N", help="input H [W] (default 513)")
    p.add_argument(
        "--decoder-grid", type=int, nargs="+", default=None, metavar="N", help="decoder grids, e.g. 129 65 33"
    )
    p.add_argument(
        "--encoder-rates",
        type=float,
        nargs="+",
        default=None,
        metavar="P",
        help="also count the soft-filter-pruned models (paper accounting) at these encoder rates, e.g. 0.2 0.4 0.6",
    )
    p.add_argument(
        "--decoder-rate",
        type=float,
        default=0.2,
        metavar="P",
        help="decoder pruning rate of the --encoder-rates rows (default 0.2, the paper's)",
    )
    p.add_argument(
        "--json",
        type=Path,
        default=None,
        help="also write the tables to this JSON file (default for a run directory: RUN/analysis/flops/flops.json, "
        "where `freqdense report RUN` finds it)",
    )
    p.set_defaults(func=_run_flops)


def resolve_model_spec(target: str, overrides: list[str] | None = None) -> tuple[str, dict[str, Any]]:
    """``(model name, keywords)`` from a registered name, a config (name or YAML path) or a run directory."""
    from ..config import parse_overrides
    from ..config.load import merge_dicts
    from ..models import MODELS

    extra = parse_overrides(list(overrides or []))
    if target in MODELS.names():
        return target, extra
    path = Path(target)
    if path.is_dir():
        from ..config import build_config
        from ..engine.checkpoint import read_meta, resolve_checkpoint

        ckpt = resolve_checkpoint(path)
        model_cfg = build_config(read_meta(ckpt)["config"], source=f"{ckpt}/meta.json").model
    else:
        from ..config import load_config

        try:
            model_cfg = load_config(target).model
        except FreqdenseError as err:
            raise UnknownNameError(
                f"{target!r} is neither a registered model ({', '.join(MODELS.names())}), nor a config, nor a run "
                f"directory ({err}); `freqdense list` shows the names"
            ) from err
    return model_cfg.name, merge_dicts(dict(model_cfg.kwargs), extra)


def _size(values: list[int]) -> tuple[int, int]:
    if len(values) not in (1, 2):
        raise ConfigError(f"--size takes H or H W, got {values}")
    return (values[0], values[-1])


def _run_flops(args: argparse.Namespace) -> int:
    from .._progress import heartbeat
    from ..models.flops import count_model_flops, truncation_flops_table

    target, overrides = args.target, list(args.overrides)
    if "=" in target:  # only overrides were given: the default model
        target, overrides = "deeplabv3plus", [target, *overrides]
    name, kwargs = resolve_model_spec(target, overrides)
    size = _size(args.size)
    out = sys.stdout
    with heartbeat(f"counting the FLOPs of {name} at {size[0]}x{size[1]}"):
        parts = count_model_flops(name, size, **kwargs)
    kw = "".join(f" {k}={v}" for k, v in kwargs.items())
    out.write(f"{name}{kw} at {size[0]}x{size[1]} (FLOPs = 2 x multiply-adds, one image)\n")
    out.write(f"{'part':<24}{'params (M)':>12}{'GFLOPs':>10}\n")
    for row in parts:
        out.write(f"{row.part:<24}{row.params / 1e6:>12.3f}{row.flops / 1e9:>10.2f}\n")
    result: dict[str, Any] = {
        "model": name,
        "kwargs": kwargs,
        "input_size": list(size),
        "parts": [row._asdict() for row in parts],
    }
    if args.decoder_grid:
        grid_kwargs = {k: v for k, v in kwargs.items() if k != "decoder_grid"}
        table = truncation_flops_table(args.decoder_grid, model=name, input_size=size, **grid_kwargs)
        out.write(f"\n{'decoder grid':>12}{'encoder G':>11}{'decoder G':>11}{'total G':>10}{'reduction':>11}\n")
        for row in table:
            out.write(
                f"{row['grid']!s:>12}{row['encoder_flops'] / 1e9:>11.2f}{row['decoder_flops'] / 1e9:>11.2f}"
                f"{row['total_flops'] / 1e9:>10.2f}{100 * row['reduction']:>10.1f}%\n"
            )
        result["truncation"] = table
    if args.encoder_rates:
        result["pruning"] = _write_pruning_table(out, name, size, kwargs, args)
    if args.json is None and Path(target).is_dir():
        from ..report import analysis_out

        args.json = analysis_out(target, "flops") / "flops.json"
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
        log.info("wrote %s", args.json)
    return 0


def _write_pruning_table(
    out: Any, name: str, size: tuple[int, int], kwargs: dict[str, Any], args: argparse.Namespace
) -> list[dict[str, Any]]:
    from ..models.flops import pruning_flops_table

    grid_kwargs = {k: v for k, v in kwargs.items() if k != "decoder_grid"}
    grids = args.decoder_grid or [kwargs.get("decoder_grid")]
    table = pruning_flops_table(
        name,
        encoder_rates=args.encoder_rates,
        decoder_rate=args.decoder_rate,
        grids=grids,
        input_size=size,
        **grid_kwargs,
    )
    paper = kwargs.get("accounting") == "paper"
    out.write(
        "\nsoft filter pruning, paper accounting (decoder inputs at full width; bottleneck conv1/conv2/conv3 pruned)"
        + (", encoder on the paper's counter (x 95.6 / 95.03)" if paper else "")
        + "\n"
    )
    out.write(
        f"{'encoder':>8}{'decoder':>8}{'grid':>6}{'encoder G':>11}{'decoder G':>11}{'total G':>10}"
        + (f"{'paper G':>10}" if paper else "")
        + f"{'pruned':>9}\n"
    )
    for row in table:
        out.write(
            f"{100 * row['encoder_rate']:>7.0f}%{100 * row['decoder_rate']:>7.0f}%{row['grid']!s:>6}"
            f"{row['encoder_flops'] / 1e9:>11.2f}{row['decoder_flops'] / 1e9:>11.2f}{row['total_flops'] / 1e9:>10.2f}"
            + (f"{row['paper_flops'] / 1e9:>10.2f}" if paper else "")
            + f"{100 * row['pruned']:>8.1f}%\n"
        )
    return table
