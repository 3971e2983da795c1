"""What the report shows of one analysis folder (``<run>/analysis/<name>/``) and of analysis JSON in general.

Known analyses (the ``freqdense analyze`` subcommands) get their headline numbers picked by key; every JSON file,
known or not, is shown as its tables of records (lists of objects, e.g. the ``R(nu_max)`` table) and a compact
key/value table of its scalars. Unreadable files become a warning on the page, never an exception.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .html import compact, details, esc, headline, image_file, key_value_table, note, pre, table

log = logging.getLogger(__name__)

__all__ = ["HEADLINES", "flatten_scalars", "headline_items", "render_analysis", "image_caption"]

#: Headline numbers per analysis: (dotted key in its JSON, label).
HEADLINES: dict[str, list[tuple[str, str]]] = {
    "spectrum": [
        ("spectrum.ce_mean", "mean CE per pixel"),
        ("spectrum.num_images", "images"),
        ("split", "split"),
        ("shells", "frequency shells"),
    ],
    "labels": [
        ("oracle.ce_mean", "oracle mean CE per pixel"),
        ("num_images", "images"),
        ("num_classes", "classes"),
        ("dataset", "dataset"),
    ],
    "truncation": [("attribute", "truncated module"), ("mode", "resize mode")],
    "similarity": [
        ("similarity.definition", "definition (official = the FreqFusion authors' feat_tool)"),
        ("similarity.intra", "intra-class similarity (higher is better)"),
        ("similarity.inter", "inter-class similarity (lower is better)"),
        ("similarity.margin", "margin intra - inter (higher is better)"),
        ("similarity.accuracy", "nearest-centre accuracy, official (higher is better)"),
        ("similarity.edge_k", "boundary band edge_k, official"),
        ("similarity_other.definition", "second definition"),
        ("similarity_other.intra", "intra-class similarity, second definition"),
        ("similarity_other.inter", "inter-class similarity, second definition"),
        ("similarity_other.margin", "margin, second definition"),
        ("similarity_other.accuracy", "nearest-centre accuracy, official (when second)"),
        ("layer", "layer"),
    ],
    "fairness": [
        ("baseline.d_fair_mean", "D_fair, L1+SSIM"),
        ("auto_blur.d_fair_mean", "D_fair, with Auto-Blur"),
        ("high_freq_share", "high-frequency pixel share"),
        ("fig5.raw.d_fair", "Fig. 5 D_fair, raw"),
        ("fig5.gaussian.d_fair", "Fig. 5 D_fair, Gaussian"),
    ],
    "alignment": [("num_images", "images"), ("model", "model"), ("split", "split")],
    "flops": [("model", "model"), ("input_size", "input size")],
}

#: What each image the analyses and runs write shows.
CAPTIONS: dict[str, str] = {
    "predictions.png": "Validation samples: input image, ground truth and prediction per task.",
    "loss_curves.png": "Loss and metric curves as drawn by the run itself.",
    "spectrum.png": "CE spectrum L_ce(nu) of the model over the split, with R(nu_max), |y_hat| and |b| "
    "(spectral-analysis paper, Fig. 1).",
    "spectral_gradient.png": "Spectral gradient at the chosen layer (spectral-analysis paper, Fig. 4).",
    "labels.png": "CE spectrum of a label-smoothed oracle on the dataset's labels (how band-limited they are).",
    "intrasim_maps.png": "IntraSim maps: per-pixel cosine similarity of features to their class mean (FreqFusion).",
    "lowpass_response.png": "Frequency response of the learned low-pass kernels (FreqFusion).",
    "encoder_response.png": "Frequency response of the encoder features' kernels (FreqFusion).",
    "relation.png": "Relative mIoU against R(nu_max) with the Spearman correlation (spectral-analysis paper, Fig. 6).",
    "fairness_sweep.png": "Photometric loss of one pixel against disparity, with and without Auto-Blur.",
    "fairness_hist.png": "Per-pixel fairness degree D_fair, with and without Auto-Blur.",
    "fig5.png": "The constructed example of Freq-aware depth, Fig. 5.",
}

_IMAGE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg", ".gif", ".webp")
_MAX_RECORD_ROWS = 60
_MAX_COLUMNS = 14
_MAX_SCALARS = 200


def image_caption(path: Path) -> str:
    """A caption for an image by its file name (a readable form of the name when it is unknown)."""
    if path.name in CAPTIONS:
        return CAPTIONS[path.name]
    match = re.fullmatch(r"alignment_(.+)_fuse(\d+)\.png", path.name)
    if match:
        return f"Learned RGB-depth flow against the true misalignment, sample {match[1]}, fusion stage {match[2]}."
    return path.stem.replace("_", " ").replace("-", " ").capitalize() + "."


def _get(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, Mapping) or part not in data:
            return None
        data = data[part]
    return data


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _short_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) <= 4 and all(_scalar(v) for v in value)


def flatten_scalars(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` of every scalar (and short list) in nested dicts; long lists are summarised."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            yield from flatten_scalars(value, f"{prefix}{key}.")
    elif _scalar(data) or _short_list(data):
        yield prefix[:-1] or "value", data if _scalar(data) else compact(data)
    elif isinstance(data, (list, tuple)):
        numbers = [v for v in data if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if numbers and len(numbers) == len(data):
            yield prefix[:-1], f"{len(data)} values, from {min(numbers):.4g} to {max(numbers):.4g}"
        elif not any(isinstance(v, Mapping) for v in data):
            yield prefix[:-1], compact(data)


def _records(data: Any, prefix: str = "") -> Iterator[tuple[str, list[Mapping[str, Any]]]]:
    """Every list of objects in ``data`` (``(dotted key, rows)``), e.g. a table of ``R(nu_max)``."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            yield from _records(value, f"{prefix}{key}.")
    elif isinstance(data, list) and data and all(isinstance(v, Mapping) for v in data):
        yield prefix[:-1] or "rows", data


def _record_table(key: str, rows: list[Mapping[str, Any]]) -> str:
    columns: dict[str, None] = {}
    for row in rows:
        for k, v in row.items():
            if _scalar(v) or _short_list(v):
                columns.setdefault(k, None)
    cols = list(columns)[:_MAX_COLUMNS]
    if not cols:
        return ""
    shown = rows[:_MAX_RECORD_ROWS]
    body = table(cols, [[row.get(c) if _scalar(row.get(c)) else compact(row.get(c)) for c in cols] for row in shown])
    more = f" (first {_MAX_RECORD_ROWS} of {len(rows)} rows)" if len(rows) > _MAX_RECORD_ROWS else ""
    return f'<p class="caption"><strong>{esc(key)}</strong>{esc(more)}</p>\n{body}'


def headline_items(name: str, data: Any) -> list[tuple[str, Any]]:
    """The headline numbers of analysis ``name`` found in ``data`` (known analyses), else its first top-level
    numbers (unknown ones)."""
    found = [(label, _get(data, key)) for key, label in HEADLINES.get(name, [])]
    found = [(label, value if _scalar(value) else compact(value)) for label, value in found if value is not None]
    if found or not isinstance(data, Mapping):
        return found
    numbers = [(k, v) for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return numbers[:6]


def render_json(name: str, path: Path, data: Any) -> str:
    """Headline numbers, tables of records and a collapsible key/value table of one analysis JSON."""
    parts = [headline(headline_items(name, data))]
    for key, rows in _records(data):
        parts.append(_record_table(key, rows))
    scalars = list(flatten_scalars(data))
    if scalars:
        shown = scalars[:_MAX_SCALARS]
        more = f", first {_MAX_SCALARS} of {len(scalars)}" if len(scalars) > _MAX_SCALARS else ""
        parts.append(details(f"All values in {path.name} ({len(shown)} keys{more})", key_value_table(shown)))
    return "\n".join(p for p in parts if p)


def render_analysis(folder: Path) -> str:
    """HTML of one analysis folder: its JSON summaries, images with captions and markdown tables."""
    name = folder.name
    parts: list[str] = []
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    for path in (p for p in files if p.suffix == ".json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as err:
            log.warning("report: skipping %s (%s)", path, err)
            parts.append(note(f"{path.name} could not be read ({err}); re-run the analysis to rewrite it.", warn=True))
            continue
        try:
            parts.append(render_json(name, path, data))
        except Exception as err:  # an unexpected shape must not cost the whole page
            log.warning("report: cannot summarise %s (%s)", path, err)
            parts.append(note(f"{path.name} could not be summarised ({err.__class__.__name__}: {err}).", warn=True))
    for path in (p for p in files if p.suffix.lower() in _IMAGE_SUFFIXES):
        parts.append(image_file(path, image_caption(path)))
    for path in (p for p in files if p.suffix in (".md", ".txt")):
        try:
            parts.append(details(path.name, pre(path.read_text())))
        except (OSError, UnicodeDecodeError) as err:
            parts.append(note(f"{path.name} could not be read ({err}).", warn=True))
    if not parts:
        parts.append(note("This analysis folder holds no JSON, images or tables yet."))
    return "\n".join(parts)
