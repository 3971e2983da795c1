"""Where things are in the directories a report is made of, and which kind of directory a path is.

Three kinds of directory (checked in this order):

- **demo** (``demo.json``): ``freqdense demo``: a frequency-aware model, its control and a trivial predictor; the
  trained arms are ordinary run directories named by each row's ``run_dir``.
- **ablation** (``ablation.json``): ``freqdense ablate``: ``<row>/seed<k>/`` run directories and the summary table.
- **run** (``config.yaml``, ``metrics.json``, ``log.jsonl`` or ``checkpoints/``): ``freqdense train``.

Analyses of a run write into ``<run>/analysis/<name>/`` (the default ``--out`` of ``freqdense analyze``), where the
report finds them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from ..errors import ReportError

__all__ = [
    "ANALYSIS_DIR",
    "REPORT_FILE",
    "DirectoryKind",
    "analysis_out",
    "detect_kind",
    "is_run_dir",
    "read_json",
    "run_dir_of",
]

#: Subdirectory of a run holding one folder per analysis (``analysis/spectrum/``, ``analysis/similarity/``, ...).
ANALYSIS_DIR = "analysis"
#: File name of the page inside the directory when no ``out`` is given.
REPORT_FILE = "report.html"
#: Files that make a directory a training run (any one of them).
RUN_MARKERS = ("config.yaml", "metrics.json", "log.jsonl", "checkpoints")
DEMO_FILE = "demo.json"
ABLATION_FILE = "ablation.json"

DirectoryKind = Literal["run", "demo", "ablation"]


def is_run_dir(path: Path) -> bool:
    """True when ``path`` holds any of the files ``freqdense train`` writes."""
    return any((Path(path) / marker).exists() for marker in RUN_MARKERS)


def detect_kind(path: str | Path) -> DirectoryKind:
    """The kind of report directory ``path`` is.

    Raises:
        ReportError: ``path`` does not exist, is not a directory, or is none of the three kinds (the message
            names run directories found one level down, e.g. the seeds of an ablation row).
    """
    path = Path(path)
    if not path.exists():
        raise ReportError(f"report: {path} does not exist; pass a run, demo or ablation directory")
    if not path.is_dir():
        raise ReportError(f"report: {path} is a file, not a directory; pass a run, demo or ablation directory")
    if (path / DEMO_FILE).is_file():
        return "demo"
    if (path / ABLATION_FILE).is_file():
        return "ablation"
    if is_run_dir(path):
        return "run"
    inner = sorted(p.name for p in path.iterdir() if p.is_dir() and is_run_dir(p))
    hint = f"; it holds the run directories {', '.join(inner[:5])}: pass one of them" if inner else ""
    raise ReportError(
        f"report: {path} is not a run, demo or ablation directory (expected config.yaml or metrics.json from "
        f"`freqdense train`, {DEMO_FILE} from `freqdense demo` or {ABLATION_FILE} from `freqdense ablate`){hint}"
    )


def read_json(path: Path, *, fix: str) -> Any:
    """Parse a JSON file; an unreadable or invalid file is a :class:`ReportError` naming ``path`` and ``fix``."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise ReportError(f"report: cannot read {path} ({err.__class__.__name__}: {err}); {fix}") from err
    except json.JSONDecodeError as err:
        raise ReportError(f"report: {path} is not valid JSON ({err}); {fix}") from err


def run_dir_of(target: str | Path) -> Path:
    """The run directory of a run directory, a checkpoint directory or a checkpoint's weights file.

    Examples:
        >>> str(run_dir_of("runs/x/checkpoints/step_00000100"))
        'runs/x'
    """
    path = Path(target)
    if path.is_file():
        path = path.parent
    if is_run_dir(path):
        return path
    if path.parent.name == "checkpoints":
        return path.parent.parent
    return path


def analysis_out(target: str | Path, name: str) -> Path:
    """Default output folder of ``freqdense analyze <name> TARGET``: ``<run>/analysis/<name>/``.

    Examples:
        >>> str(analysis_out("runs/x/checkpoints/step_00000100", "spectrum"))
        'runs/x/analysis/spectrum'
    """
    return run_dir_of(target) / ANALYSIS_DIR / name
