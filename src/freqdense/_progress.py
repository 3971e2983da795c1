"""Progress of long jobs: a tqdm bar on a terminal, a log line at least every ~10 s otherwise.

Every job that can run longer than a few seconds (rendering the synthetic scene cache, evaluation, the ``analyze``
commands, ONNX export and its check, ablation runs, pruning) reports through this module, so that a user watching a
terminal sees a bar and a user reading a log file (CI, ``nohup``, a scheduler) sees a line such as::

    10:04:31 INFO freqdense.progress: rendering synthetic train scenes: 212/600 (35%), 10 s elapsed, eta 18 s

Three tools:

- :func:`progress` wraps an iterable; :class:`Progress` is the same counter for loops that update by hand.
- :func:`heartbeat` is for one long call with no loop to count (``torch.onnx.export``, loading an ONNX Runtime
  session): a background thread logs ``still exporting to ONNX... 30 s`` every ~10 s until the call returns.
- :func:`show_progress` says whether to draw bars at all: on the main process and when stderr is a terminal.

Jobs shorter than the log interval stay silent in logs; a job that logged progress also logs one ``done`` line.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

__all__ = [
    "LOG_INTERVAL_S",
    "Heartbeat",
    "Progress",
    "format_duration",
    "heartbeat",
    "is_terminal",
    "progress",
    "show_progress",
]

#: Seconds between two progress log lines (and between two heartbeat lines) when no bar is drawn.
LOG_INTERVAL_S = 10.0

T = TypeVar("T")

_log = logging.getLogger("freqdense.progress")


def is_terminal(stream: Any = None) -> bool:
    """Whether ``stream`` (default ``sys.stderr``, where bars go) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return False


def show_progress(info: Any = None) -> bool:
    """Draw progress bars: only on the main process (``info.is_main``, a ``DistInfo``) and on a terminal."""
    return (info is None or bool(getattr(info, "is_main", True))) and is_terminal()


def format_duration(seconds: float) -> str:
    """``"42 s"``, ``"3 min 05 s"``, ``"2 h 07 min"``: a duration a reader takes in at a glance."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """Counts the finished units of a job and shows them: a tqdm bar on a terminal, else periodic log lines.

    Without a bar, a line ``what: done/total (x%), elapsed, eta`` is logged at most every ``interval`` seconds
    (the first one ``interval`` seconds after the start, so short jobs log nothing), and :meth:`close` logs a
    final ``what: done ... in T`` line when at least one progress line was logged.

    Args:
        what: what is being done, e.g. ``"rendering synthetic train scenes"``.
        total: number of units, or None when unknown (no percentage, no ETA).
        unit: name of one unit for the bar (``"img"``, ``"scene"``, ``"batch"``).
        initial: units already done (a resumed job); the ETA counts only the units done since the start.
        enabled: False shows nothing (e.g. on non-main processes of a distributed job).
        bar: draw a tqdm bar (True), log lines (False), or decide by :func:`is_terminal` (None).
        interval: seconds between log lines (default :data:`LOG_INTERVAL_S`).
        logger: where the lines go (default the ``freqdense.progress`` logger).
        clock: monotonic time source (tests pass a fake one).
        leave: keep the finished bar on the terminal (default: it disappears).
    """

    def __init__(
        self,
        what: str,
        total: int | None = None,
        *,
        unit: str = "it",
        initial: int = 0,
        enabled: bool = True,
        bar: bool | None = None,
        interval: float | None = None,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
        leave: bool = False,
    ) -> None:
        self.what = what
        self.total = None if total is None else int(total)
        self.unit = unit
        self.n = int(initial)
        self._initial = int(initial)
        self.enabled = enabled
        self.interval = LOG_INTERVAL_S if interval is None else float(interval)
        self.logger = logger or _log
        self._clock = clock
        self._start = clock()
        self._last_log = self._start
        self._logged = False
        self._postfix = ""
        self._closed = False
        self._bar = None
        if enabled and (is_terminal() if bar is None else bar):
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.total, initial=self.n, desc=what, unit=unit, leave=leave, dynamic_ncols=True, file=sys.stderr
            )

    @property
    def uses_bar(self) -> bool:
        """True when a tqdm bar is drawn (and no progress lines are logged)."""
        return self._bar is not None

    def update(self, n: int = 1) -> None:
        """Add ``n`` finished units; logs a line when ``interval`` seconds passed since the last one."""
        self.n += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        if self.total is not None and self.n >= self.total:
            return  # finished: close() logs the "done" line
        now = self._clock()
        if now - self._last_log >= self.interval:
            self._last_log = now
            self._logged = True
            self.logger.info("%s", self.status(now))

    def set_postfix(self, **values: Any) -> None:
        """Values shown after the counts, e.g. ``loss=0.41`` (like ``tqdm.set_postfix``)."""
        self._postfix = ", ".join(f"{k}={v}" for k, v in values.items())
        if self._bar is not None:
            self._bar.set_postfix(**values)

    def status(self, now: float | None = None) -> str:
        """The progress line: ``what: 30/120 (25%), 10 s elapsed, eta 30 s[, postfix]``."""
        now = self._clock() if now is None else now
        elapsed = now - self._start
        parts = [f"{self.what}: {self.n}/{self.total}" if self.total is not None else f"{self.what}: {self.n}"]
        if self.total:
            parts[0] += f" ({100.0 * self.n / self.total:.0f}%)"
        parts.append(f"{format_duration(elapsed)} elapsed")
        done_here = self.n - self._initial
        if self.total is not None and done_here > 0 and self.n < self.total:
            parts.append(f"eta {format_duration(elapsed / done_here * (self.total - self.n))}")
        if self._postfix:
            parts.append(self._postfix)
        return ", ".join(parts)

    def close(self) -> None:
        """Remove the bar, or log the closing ``done`` line if progress lines were logged."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self._logged:
            elapsed = self._clock() - self._start
            count = f"{self.n}/{self.total}" if self.total is not None else str(self.n)
            self.logger.info("%s: done %s in %s", self.what, count, format_duration(elapsed))

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(
    iterable: Iterable[T],
    what: str,
    *,
    total: int | None = None,
    **kwargs: Any,
) -> Iterator[T]:
    """Iterate ``iterable`` while showing a :class:`Progress` (bar on a terminal, log lines otherwise).

    Args:
        iterable: the work items (a list, a DataLoader, ...).
        what: what is being done, e.g. ``"analyze spectrum"``.
        total: number of items (default ``len(iterable)`` when it has one).
        **kwargs: passed to :class:`Progress` (``unit``, ``enabled``, ``bar``, ``interval``, ``logger``, ``clock``).

    Yields:
        The items of ``iterable``, unchanged.
    """
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with Progress(what, total, **kwargs) as bar:
        for item in iterable:
            yield item
            bar.update(1)


class Heartbeat:
    """A background thread that logs ``still <what>... <elapsed>`` every ``interval`` seconds until stopped.

    Use it through :func:`heartbeat`. :meth:`set` changes ``what`` between the stages of a job.
    """

    def __init__(self, what: str, *, interval: float | None = None, logger: logging.Logger | None = None) -> None:
        self.what = what
        self.interval = LOG_INTERVAL_S if interval is None else float(interval)
        self.logger = logger or _log
        self.beats = 0
        self._stop = threading.Event()
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat: {what}", daemon=True)

    def set(self, what: str) -> None:
        """The next lines say ``still <what>...``."""
        self.what = what

    def start(self) -> Heartbeat:
        self._start = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and wait for it (returns within one ``Event.wait`` wake-up, not one interval)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beats += 1
            elapsed = format_duration(time.monotonic() - self._start)
            self.logger.info("still %s... %s", self.what, elapsed)


class heartbeat:  # noqa: N801  (used like a function: ``with heartbeat("exporting to ONNX"):``)
    """Context manager logging ``still <what>... 30 s`` every ``interval`` seconds while its block runs.

    For one long call with no loop to count. Logs go through :mod:`logging` on a terminal too (a bar cannot
    show a call it cannot count). ``enabled=False`` does nothing.

    Example:
        >>> with heartbeat("exporting to ONNX") as beat:  # doctest: +SKIP
        ...     torch.onnx.export(...)
        ...     beat.set("checking the graph with ONNX Runtime")
    """

    def __init__(
        self,
        what: str,
        *,
        interval: float | None = None,
        logger: logging.Logger | None = None,
        enabled: bool = True,
    ) -> None:
        self._beat = Heartbeat(what, interval=interval, logger=logger)
        self._enabled = enabled

    def __enter__(self) -> Heartbeat:
        if self._enabled:
            self._beat.start()
        return self._beat

    def __exit__(self, *exc: object) -> None:
        self._beat.stop()
