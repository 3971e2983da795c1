"""``write_report``: one self-contained HTML page for a run, demo or ablation directory, written atomically."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__
from ..engine.checkpoint import write_text_atomic
from ..errors import ReportError
from .html import Section, page
from .layout import REPORT_FILE, detect_kind

log = logging.getLogger(__name__)

__all__ = ["write_report", "try_write_report", "render_report"]


def render_report(path: str | Path) -> str:
    """The report page of a run, demo or ablation directory as an HTML string.

    Raises:
        ReportError: the directory does not exist, is of no known kind, or a file that defines it is unreadable.
    """
    from .ablation import ablation_page
    from .demo import demo_page
    from .run import load_run, run_sections

    path = Path(path)
    kind = detect_kind(path)
    if kind == "demo":
        title, subtitle, sections = demo_page(path)
    elif kind == "ablation":
        title, subtitle, sections = ablation_page(path)
    else:
        run = load_run(path)
        title, subtitle, sections = f"Run {run.name}", "Training run", run_sections(run)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    subtitle = f"{subtitle} · {path.resolve().name}/ · report written {stamp} by freqdense {__version__}"
    sections: list[Section] = list(sections)
    return page(title, subtitle, sections, version=__version__)


def write_report(path: str | Path, *, out: str | Path | None = None) -> Path:
    """Write the report of a run, demo or ablation directory as one self-contained HTML file.

    The page needs no other file, network or JavaScript: images are inlined as base64 PNG ``data:`` URIs and the
    CSS is inline. It is written to a temporary file next to the target and moved into place with ``os.replace``.

    Args:
        path: a run directory (``freqdense train``), a demo directory (``demo.json``) or an ablation directory
            (``ablation.json``).
        out: the HTML file (an existing directory gets ``report.html`` inside); default ``<path>/report.html``.

    Returns:
        The path of the written page.

    Raises:
        ReportError: ``path`` is missing or of no known kind, a file that defines it is unreadable, or ``out``
            cannot be written.

    Examples:
        >>> write_report("runs/x")  # doctest: +SKIP
        PosixPath('runs/x/report.html')
    """
    text = render_report(path)
    target = Path(path) / REPORT_FILE if out is None else Path(out)
    if target.is_dir():
        target = target / REPORT_FILE
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(target, text)
    except OSError as err:
        raise ReportError(
            f"report: cannot write {target} ({err.__class__.__name__}: {err}); choose a writable --out"
        ) from err
    log.info("wrote %s", target)
    return target


def try_write_report(path: str | Path, *, out: str | Path | None = None) -> Path | None:
    """:func:`write_report` for the end of a job (training, ablation, demo): a failure logs a warning and
    returns None instead of failing the finished job."""
    try:
        return write_report(path, out=out)
    except Exception as err:  # the job's results are already on disk; the page is a bonus
        log.warning(
            "could not write the HTML report of %s (%s: %s); the results are intact, retry with `freqdense report %s`",
            path,
            err.__class__.__name__,
            err,
            path,
        )
        return None
