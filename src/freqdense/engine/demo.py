"""The demo job: a frequency-aware decoder against its control, trained with the same budget and seed.

``freqdense demo`` trains two FPNs on the embedded synthetic scenes, identical except for how the decoder
upsamples its coarse features, and compares them with each other and with a trivial predictor:

- **method** ``FreqFusion-FPN`` (``synthetic/demo_freqfusion``): every top-down upsampling is a FreqFusion module
  (adaptive low-pass kernels on the coarse map, adaptive high-pass on the fine map, offset resampling);
- **control** ``bilinear-FPN`` (``synthetic/demo_bilinear``): the same FPN with bilinear upsampling;
- **trivial** ``majority class / mean depth``: one class and one depth everywhere (statistics of the first
  training scenes); the floor both models must clear.

Why this pair: FreqFusion is the one frequency-aware method in the library whose claim (sharper class boundaries
and better separated class features from frequency-aware upsampling) can be seen at CPU scale, in a single seed,
with a control that differs in that one module. In ``docs/results/freqfusion_synthetic.md`` (300 steps, 3 seeds) its
boundary F-score gain (0.189 -> 0.201) is about 8 seed standard deviations while the mIoU gain is within 1.3, so
the boundary F-score is the headline number and the feature-similarity margin the mechanism. The FAFE multi-task
ladder and the self-supervised depth ablation need several seeds (or a stereo/video setting) to separate their
rows; the spectral-analysis paper's decoder truncation is an analysis (run on both arms here), not a method with a
control.

Why this schedule: the shipped ``fpn_*_r18`` setting (ResNet-18 at half width, 96x128, 600/100 scenes, batch 16),
shortened from 300 to 200 steps so that rendering the scenes, both trainings, the evaluations and the analyses fit
in 5 minutes on a 2-core CPU: one step of the pair (FreqFusion about 0.58 s + bilinear about 0.28 s) costs about
1.7 times a step of the former single-model demo (``synthetic/demo_multitask``, about 0.51 s; the three measured
one after the other under shared load), so the pair gets 2/3 of its steps. Keeping batch 16 keeps the setting of the
documented comparison; batch 8 for 360 steps costs the same per image but showed a smaller gap (docs/training.md).

Each arm is an ordinary training run directory (``method/``, ``control/``), evaluated on the whole validation split
(task metrics with per-class IoU, boundary F-score at 2 px) and analysed on the first :data:`ANALYSIS_IMAGES`
validation images exactly as ``freqdense analyze spectrum|similarity RUN --latest --num N`` would (outputs in
``RUN/analysis/<name>/``): the CE spectrum and ``R(nu_max)`` of the spectral-analysis paper and FreqFusion's
intra-/inter-class feature similarity of the decoder output. ``demo.json`` in the output directory summarises all
three rows; running the demo again into the same directory reuses the finished runs (and refuses a changed config,
like ``freqdense train``).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..config import ExperimentConfig, config_to_dict, load_config
from ..errors import ConfigError, FreqdenseError
from ..tasks import build_task
from .checkpoint import latest_checkpoint, load_model, read_meta, write_json_atomic
from .data import build_dataset
from .evaluate import evaluate, evaluate_boundary_f
from .logger import read_jsonl
from .run_config import RUNTIME_KEYS, check_resume_config
from .train import resolve_device, train

log = logging.getLogger(__name__)

__all__ = [
    "ANALYSIS_IMAGES",
    "DEMO_ARMS",
    "DEMO_FILE",
    "DemoArm",
    "ConstantPredictor",
    "format_demo_table",
    "run_demo",
    "trivial_predictor",
    "write_prediction_panels",
]

#: Summary file written into the demo's output directory.
DEMO_FILE = "demo.json"
#: Validation images (the first ones) the frequency analyses run on; the metrics use the whole split.
ANALYSIS_IMAGES = 50
#: Band limits of the ``R(nu_max)`` summary (cycles per image; the 96x128 maps carry up to 48).
SPECTRUM_NU_MAX = (1, 2, 4, 8, 16, 32)
#: Matching tolerance of the boundary F-score, in pixels (as docs/results/freqfusion_synthetic.md).
BOUNDARY_TOLERANCE_PX = 2
TRIVIAL_NAME = "majority class / mean depth"


@dataclass(frozen=True)
class DemoArm:
    """One trained arm of the demo.

    Attributes:
        name: display name (table, report).
        role: ``"method"`` or ``"control"``; also the arm's run directory inside the demo's output directory.
        config: shipped config name or YAML path.
    """

    name: str
    role: str
    config: str


#: The frequency-aware method and its control (same data, schedule and seed; only the decoder upsampling differs).
DEMO_ARMS = (
    DemoArm("FreqFusion-FPN", "method", "synthetic/demo_freqfusion"),
    DemoArm("bilinear-FPN", "control", "synthetic/demo_bilinear"),
)


class ConstantPredictor(nn.Module):
    """Predicts one class everywhere and/or one depth everywhere: the trivial baselines."""

    def __init__(self, num_classes: int | None, majority_class: int | None, mean_depth: float | None) -> None:
        super().__init__()
        self.num_classes, self.majority_class, self.mean_depth = num_classes, majority_class, mean_depth

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        b, _, h, w = image.shape
        out = {}
        if self.majority_class is not None:
            logits = torch.zeros(b, self.num_classes, h, w, device=image.device)
            logits[:, self.majority_class] = 1.0
            out["semantic"] = logits
        if self.mean_depth is not None:
            out["depth"] = torch.full((b, 1, h, w), self.mean_depth, device=image.device)
        return out


def trivial_predictor(dataset, *, max_samples: int = 200) -> ConstantPredictor:
    """Majority class and mean valid depth of (a prefix of) the training split."""
    num_classes = getattr(dataset, "num_classes", None)
    counts = torch.zeros(num_classes or 1, dtype=torch.float64)
    depth_sum, depth_n = 0.0, 0
    for i in range(min(len(dataset), max_samples)):
        sample = dataset[i]
        if "semantic" in sample and num_classes:
            labels = sample["semantic"]
            labels = labels[labels != 255]
            counts += torch.bincount(labels.flatten(), minlength=num_classes).double()
        if "depth" in sample:
            valid = sample["depth_valid"] if "depth_valid" in sample else sample["depth"] > 0
            depth_sum += float(sample["depth"][valid].double().sum())
            depth_n += int(valid.sum())
    return ConstantPredictor(
        num_classes,
        int(counts.argmax()) if num_classes and counts.sum() > 0 else None,
        depth_sum / depth_n if depth_n else None,
    )


def write_prediction_panels(
    model: nn.Module,
    dataset,
    palette,
    path: Path,
    *,
    num: int = 3,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """The first ``num`` samples as rows image | ground truth | prediction per task, labelled (see
    :func:`freqdense.viz.prediction_figure`: column titles, class legend, depth colour bars in metres).

    ``class_names`` default to the dataset's ``classes``.
    """
    from ..viz.panels import save_prediction_panels

    samples = []
    was_training = model.training
    model.eval()
    for i in range(min(num, len(dataset))):
        sample = dataset[i]
        with torch.no_grad():
            out = model(sample["image"][None])
        meta = sample.get("meta")
        samples.append(
            {
                "image": sample["image"],
                "gt_semantic": sample.get("semantic"),
                "pred_semantic": out["semantic"][0].argmax(0) if "semantic" in out else None,
                "gt_depth": sample.get("depth"),
                "pred_depth": out["depth"][0] if "depth" in out else None,
                "name": meta.get("id", f"sample {i}") if isinstance(meta, dict) else f"sample {i}",
            }
        )
    model.train(was_training)
    names = class_names if class_names is not None else getattr(dataset, "classes", None)
    return save_prediction_panels(samples, path, palette=palette, class_names=names, title=title)


# ---------------------------------------------------------------------------------------------------------------
# the job


def run_demo(
    out_dir: str | Path,
    overrides: Sequence[str] = (),
    *,
    arms: Sequence[DemoArm] = DEMO_ARMS,
    analysis_images: int = ANALYSIS_IMAGES,
    allow_changes: bool = False,
    run_command: Callable[[list[str]], int],
) -> dict[str, Any]:
    """Train, evaluate and analyse every arm into ``out_dir/<role>/``, add the trivial row, write ``demo.json``.

    Args:
        out_dir: demo output directory; finished arm runs inside it are reused.
        overrides: ``section.key=value`` overrides applied to every arm's config.
        arms: the trained arms (default :data:`DEMO_ARMS`); all must share data, schedule and seed.
        analysis_images: validation images for the spectrum and similarity analyses.
        allow_changes: let a finished or interrupted arm continue with changed resumable keys
            (``schedule.total_steps``, eval and checkpoint cadence), as ``freqdense train --resume-with-changes``.
        run_command: runs a ``freqdense`` command line (``freqdense.cli.main.main``) and returns its exit code; the
            analyses are the ``freqdense analyze`` commands themselves, so their files are exactly what a user gets.
            Passed in by the CLI because the engine layer does not import the CLI.

    Returns:
        The summary written to ``out_dir/demo.json`` (see docs/training.md, "The demo").

    Raises:
        ConfigError: the arms' configs differ in data, schedule or seed after the overrides; or an arm's existing
            run has another config (:func:`~freqdense.engine.run_config.check_resume_config`, the check of
            ``freqdense train``), raised before anything is rendered, trained or written.
    """
    out_dir = Path(out_dir)
    start = time.perf_counter()
    configs = [load_config(arm.config, list(overrides)) for arm in arms]
    _check_same_budget(arms, configs)
    for arm, cfg in zip(arms, configs):  # a changed config fails here, before any scene is rendered
        run_dir = out_dir / arm.role
        step = _trained_step(run_dir)
        check_resume_config(
            run_dir, config_to_dict(cfg), checkpoint=latest_checkpoint(run_dir), step=step, allow_changes=allow_changes
        )
    previous = _read_json(out_dir / DEMO_FILE)
    render_s = _render_scenes(configs[0])
    rows = []
    for arm, cfg in zip(arms, configs):
        row, _reused = _run_arm(
            arm,
            cfg,
            out_dir,
            analysis_images=analysis_images,
            previous=previous,
            allow_changes=allow_changes,
            run_command=run_command,
        )
        rows.append(row)
    rows.append(_trivial_row(configs[0]))
    cfg = configs[0]
    summary = {
        "kind": "demo",
        "title": f"{arms[0].name} vs {arms[-1].name} on synthetic scenes",
        "wall_time_s": round(time.perf_counter() - start, 1),
        "render_time_s": round(render_s, 1),
        "seed": cfg.train.seed,
        "steps": cfg.schedule.total_steps,
        "batch_size": cfg.data.batch_size,
        "overrides": list(overrides),
        "analysis_images": analysis_images,
        "boundary_tolerance_px": BOUNDARY_TOLERANCE_PX,
        "rows": rows,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / DEMO_FILE, summary)
    return summary


def _check_same_budget(arms: Sequence[DemoArm], configs: Sequence[ExperimentConfig]) -> None:
    """A comparison is only fair with equal data, schedule, optimiser and seed; say which arm differs where."""
    first = configs[0]
    for arm, cfg in zip(arms[1:], configs[1:]):
        for section in ("data", "task", "optim", "schedule"):
            if getattr(cfg, section) != getattr(first, section):
                raise ConfigError(
                    f"demo arms {arms[0].config} and {arm.config} differ in the {section!r} section; the demo "
                    "compares decoders under the same budget: make the section equal in both configs"
                )
        if cfg.train.seed != first.train.seed:
            raise ConfigError(f"demo arms {arms[0].config} and {arm.config} have different train.seed")


def _render_scenes(cfg: ExperimentConfig) -> float:
    """Fill the scene cache of both splits up front (the arms share the data), so that the first arm's training time
    is training only; returns the seconds it took (about 0 when the cache is warm)."""
    from .data import render_ahead
    from .distributed import DistInfo

    start = time.perf_counter()
    for split, is_train in ((cfg.data.train_split, True), (cfg.data.val_split, False)):
        render_ahead(build_dataset(cfg.data, split, train=is_train, seed=cfg.train.seed), DistInfo())
    return time.perf_counter() - start


def _trained_step(run_dir: Path) -> int:
    ckpt = latest_checkpoint(run_dir)
    return int(read_meta(ckpt).get("step") or 0) if ckpt is not None else 0


def _run_arm(
    arm: DemoArm,
    cfg: ExperimentConfig,
    out_dir: Path,
    *,
    analysis_images: int,
    previous: dict[str, Any],
    allow_changes: bool,
    run_command: Callable[[list[str]], int],
) -> tuple[dict[str, Any], bool]:
    """Train (or resume) one arm, evaluate and analyse it; returns its ``demo.json`` row and whether it was reused."""
    run_dir = out_dir / arm.role
    total = cfg.schedule.total_steps
    done = _trained_step(run_dir)
    old = next((r for r in previous.get("rows", []) if r.get("run_dir") == arm.role), None)
    if done >= total and _can_reuse(arm, cfg, run_dir, done, old, previous, analysis_images, allow_changes):
        log.info("[%s] %s: finished run and its evaluation found in %s, reusing them", arm.role, arm.name, run_dir)
        return {**old, "resumed_from_step": done}, True
    what = f"resuming at step {done}" if done else "training"
    log.info("[%s] %s (%s): %s for %d steps into %s", arm.role, arm.name, arm.config, what, total, run_dir)
    t0 = time.perf_counter()
    result = train(cfg, run_dir, allow_changes=allow_changes)
    train_s = time.perf_counter() - t0
    if done >= total and old:  # keep the time the run took when it was trained, not the re-evaluation's
        train_s = old.get("train_time_s") or train_s

    device = resolve_device(cfg.train.device)
    model, meta = load_model(run_dir, map_location=device, prefer="latest")
    val_set = build_dataset(cfg.data, cfg.data.val_split, train=False)
    log.info("[%s] boundary F-score on %d validation images", arm.role, len(val_set))
    boundary = _boundary_f(model, val_set, cfg, device)
    metrics = {**result["val"], **{f"semantic/{k}": v for k, v in boundary.items()}}

    from ..viz import plot_loss_curves

    curves_title = f"{arm.name}: training curves"
    plot_loss_curves(read_jsonl(run_dir / "log.jsonl"), run_dir / "loss_curves.png", title=curves_title)
    write_prediction_panels(
        model.cpu(),
        val_set,
        meta["palette"],
        run_dir / "predictions.png",
        class_names=meta.get("classes"),
        title=f"{arm.name}: validation predictions after {result['step']} steps",
    )

    num = min(analysis_images, len(val_set))
    analyses = {
        "spectrum": _spectrum_summary(_analyze("spectrum", run_dir, num, cfg, arm, run_command)),
        "similarity": _similarity_summary(_analyze("similarity", run_dir, num, cfg, arm, run_command)),
    }
    return {
        "name": arm.name,
        "role": arm.role,
        "run_dir": arm.role,
        "config": arm.config,
        "model": cfg.model.name,
        "fusion": cfg.model.kwargs.get("fusion"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "step": result["step"],
        "train_time_s": round(float(train_s), 1),
        "resumed_from_step": done,
        "metrics": metrics,
        "analyses": analyses,
    }, False


#: What a finished arm must hold for the demo to reuse its previous row instead of re-evaluating it.
_ARM_OUTPUTS = (
    "metrics.json",
    "predictions.png",
    "loss_curves.png",
    "analysis/spectrum/spectrum.json",
    "analysis/similarity/similarity.json",
)


def _can_reuse(
    arm: DemoArm,
    cfg: ExperimentConfig,
    run_dir: Path,
    done: int,
    old: dict[str, Any] | None,
    previous: dict[str, Any],
    analysis_images: int,
    allow_changes: bool,
) -> bool:
    """A finished arm whose config is the run's and whose evaluation the previous ``demo.json`` holds.

    The config check is :func:`~freqdense.engine.run_config.check_resume_config`, the one ``freqdense train`` runs on
    resume, so a changed config is refused with the same error (nothing is written).
    """
    changes = check_resume_config(
        run_dir, config_to_dict(cfg), checkpoint=latest_checkpoint(run_dir), step=done, allow_changes=allow_changes
    )
    return (
        old is not None
        and all(key in RUNTIME_KEYS for key in changes)
        and old.get("config") == arm.config
        and old.get("step") == done
        and previous.get("analysis_images") == analysis_images
        and all((run_dir / name).exists() for name in _ARM_OUTPUTS)
    )


def _boundary_f(model: nn.Module, dataset: Any, cfg: ExperimentConfig, device: torch.device) -> dict[str, float]:
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.data.val_batch_size, shuffle=False)
    return evaluate_boundary_f(
        model,
        loader,
        num_classes=int(dataset.num_classes),
        device=device,
        tolerance_px=BOUNDARY_TOLERANCE_PX,
        ignore_index=cfg.task.ignore_index,
        class_names=getattr(dataset, "classes", None),
        inputs=cfg.task.inputs,
    )


def _analyze(
    name: str,
    run_dir: Path,
    num: int,
    cfg: ExperimentConfig,
    arm: DemoArm,
    run_command: Callable[[list[str]], int],
) -> dict[str, Any]:
    """Run ``freqdense analyze NAME RUN --latest`` into ``RUN/analysis/NAME/`` and return its JSON.

    Going through the command itself keeps the files identical to what a user gets from it (same names, same
    contents), which is what the HTML report reads.
    """
    out = run_dir / "analysis" / name
    argv = ["analyze", name, str(run_dir), "--latest", "--num", str(num), "--out", str(out)]
    argv += ["--batch-size", str(max(1, min(num, cfg.data.val_batch_size)))]
    if name == "spectrum":
        argv += ["--nu-max", *map(str, SPECTRUM_NU_MAX)]
    log.info("[%s] freqdense %s", arm.role, " ".join(argv))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = run_command(argv)
    log.debug("%s", printed.getvalue())
    if code != 0:
        raise FreqdenseError(
            f"{run_dir}: the {name} analysis failed (exit code {code}, error above); rerun it alone with "
            f"`freqdense {' '.join(argv)}`"
        )
    return json.loads((out / f"{name}.json").read_text())


def _spectrum_summary(result: dict[str, Any]) -> dict[str, Any]:
    spectrum = result.get("spectrum", {})
    return {
        "num_images": spectrum.get("num_images"),
        "ce_mean": spectrum.get("ce_mean"),
        "R": {str(row["nu_max"]): row["R"] for row in result.get("table", [])},
        "mean_image_R": {str(row["nu_max"]): row["mean_image_R"] for row in result.get("table", [])},
    }


def _similarity_summary(result: dict[str, Any]) -> dict[str, Any]:
    sim = result.get("similarity", {})
    return {
        "layer": result.get("layer"),
        "intra": sim.get("intra"),
        "inter": sim.get("inter"),
        "margin": sim.get("margin"),
        "definition": sim.get("definition", "per-image"),  # `analyze similarity` stores the official one by default
        "num_images": int(sim["num_images"])
        if sim.get("num_images") is not None
        else int(sim["num_images_intra"])
        if sim.get("num_images_intra") is not None
        else None,
    }


def _trivial_row(cfg: ExperimentConfig) -> dict[str, Any]:
    log.info("[trivial] %s on the validation split", TRIVIAL_NAME)
    train_set = build_dataset(cfg.data, cfg.data.train_split, train=False)
    val_set = build_dataset(cfg.data, cfg.data.val_split, train=False)
    task = build_task(
        cfg.task, num_classes=getattr(val_set, "num_classes", None), class_names=getattr(val_set, "classes", None)
    )
    model = trivial_predictor(train_set)
    device = torch.device("cpu")
    loader = torch.utils.data.DataLoader(val_set, batch_size=cfg.data.val_batch_size)
    metrics = evaluate(model, task, loader, device=device)
    if model.majority_class is not None:
        metrics.update({f"semantic/{k}": v for k, v in _boundary_f(model, val_set, cfg, device).items()})
    return {
        "name": TRIVIAL_NAME,
        "role": "trivial",
        "run_dir": None,
        "config": None,
        "train_time_s": None,
        "metrics": metrics,
        "analyses": {},
    }


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# ---------------------------------------------------------------------------------------------------------------
# terminal table

_COLUMNS = (
    ("mIoU", "semantic/miou", "{:.3f}"),
    ("boundary F", "semantic/boundary_f", "{:.3f}"),
    ("RMSE [m]", "depth/rmse", "{:.3f}"),
    ("AbsRel", "depth/abs_rel", "{:.3f}"),
)


def _cell(value: Any, fmt: str) -> str:
    return fmt.format(value) if isinstance(value, (int, float)) else "-"


def format_demo_table(summary: dict[str, Any], *, out_dir: str | Path | None = None) -> str:
    """The terminal summary of a ``demo.json``: one row per predictor, then the frequency analyses per arm."""
    widths = [max(len(r["name"]) for r in summary["rows"]) + 2, 8, 12, 10, 9, 9]
    head = ["predictor", *(c[0] for c in _COLUMNS), "train s"]
    lines = [
        f"freqdense demo: {summary['title']}, {summary['steps']} steps (batch {summary.get('batch_size')}), "
        f"seed {summary['seed']}, {summary['wall_time_s']:.0f} s wall time "
        f"({summary.get('render_time_s', 0):.0f} s of it rendering scenes)",
        head[0].ljust(widths[0]) + "".join(h.rjust(w) for h, w in zip(head[1:], widths[1:])),
    ]
    for row in summary["rows"]:
        m = row["metrics"]
        cells = [_cell(m.get(key), fmt) for _, key, fmt in _COLUMNS] + [_cell(row.get("train_time_s"), "{:.0f}")]
        lines.append(row["name"].ljust(widths[0]) + "".join(c.rjust(w) for c, w in zip(cells, widths[1:])))
    arms = [r for r in summary["rows"] if r.get("analyses")]
    if arms:
        n = arms[0]["analyses"].get("spectrum", {}).get("num_images")
        lines.append(f"frequency analyses on the first {n} validation images:")
        for row in arms:
            spec, sim = row["analyses"].get("spectrum", {}), row["analyses"].get("similarity", {})
            r = spec.get("R", {})
            parts = [f"CE {_cell(spec.get('ce_mean'), '{:.3f}')}"]
            parts += [f"R({nu}) {_cell(r.get(nu), '{:.3f}')}" for nu in ("8", "16")]
            parts.append(
                f"feature similarity intra {_cell(sim.get('intra'), '{:.3f}')} inter "
                f"{_cell(sim.get('inter'), '{:.3f}')} margin {_cell(sim.get('margin'), '{:.3f}')}"
            )
            lines.append(f"  {row['name']:<{widths[0] - 2}}" + "  ".join(parts))
    if out_dir is not None:
        lines.append(f"run directory: {out_dir} ({DEMO_FILE}, method/, control/, each with analysis/)")
    return "\n".join(lines) + "\n"
