"""Peak resident memory of one call, read from the process's own high-water mark (Linux).

Used in a fresh subprocess per measurement: reset the mark after set-up (:func:`reset_peak_rss`), take the current
RSS as the baseline (:func:`current_rss`), run the call, then :func:`peak_rss` minus the baseline is the extra memory
the call needed, outputs included.
"""

from __future__ import annotations

import os
import resource

__all__ = ["current_rss", "peak_rss", "reset_peak_rss"]


def reset_peak_rss() -> None:
    """Lower the peak-RSS mark (``VmHWM``) to the current RSS (Linux >= 4.0), so that the mark after the call is the
    call's peak even when importing or building took more memory than the process holds now."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:  # not permitted: the mark then includes the start-up peak
        pass


def current_rss() -> int:
    """Resident set size in bytes now (``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    """Peak RSS in bytes: ``VmHWM`` of this process. Not ``ru_maxrss``, which also holds the parent's peak when the
    child was started by vfork + exec (as ``subprocess`` does) and is not lowered by ``clear_refs``."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
