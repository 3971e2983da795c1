"""Tick labels that never overprint: drop the ones whose drawn text would overlap a more important one.

Matplotlib places ticks by value, not by how much room their labels take. On a symlog axis the decades next to the
linear threshold sit a few pixels from ``0`` (``10^1``, ``0`` and ``-10^1`` printed on top of each other), and on
an inverse-depth colour bar the far depths bunch together. :func:`thin_overlapping_ticks` draws the figure, measures
every tick label and keeps a subset whose boxes are apart, the most important ticks first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["thin_overlapping_ticks", "tick_label_boxes", "boxes_overlap"]


def _axis(ax: Any, which: str) -> Any:
    if which not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y', got {which!r}")
    return ax.xaxis if which == "x" else ax.yaxis


def tick_label_boxes(ax: Any, which: str = "y") -> list[tuple[float, Any]]:
    """``(tick value, label bounding box in display pixels)`` of the visible, non-empty major tick labels.

    The figure must have been drawn (``fig.canvas.draw()``) so that labels have their text and position.
    """
    axis = _axis(ax, which)
    renderer = ax.figure.canvas.get_renderer()
    lo, hi = sorted(axis.get_view_interval())
    out = []
    for tick in axis.get_major_ticks():
        loc = tick.get_loc()
        if loc is None or not (lo <= loc <= hi):
            continue
        for label in (tick.label1, tick.label2):  # label2: right/top labels (colour bars, secondary sides)
            if label.get_visible() and label.get_text().strip():
                out.append((float(loc), label.get_window_extent(renderer)))
                break
    return out


def boxes_overlap(a: Any, b: Any, pad: float = 0.0) -> bool:
    """Whether two display-space boxes overlap once each is grown by ``pad`` pixels on every side."""
    return a.x0 - pad < b.x1 + pad and b.x0 - pad < a.x1 + pad and a.y0 - pad < b.y1 + pad and b.y0 - pad < a.y1 + pad


def thin_overlapping_ticks(
    ax: Any, which: str = "y", *, keep: Iterable[float] = (), pad_px: float = 2.0, rounds: int = 3
) -> list[float]:
    """Keep only major ticks whose labels do not overlap, then fix them with ``set_ticks``.

    Ticks are accepted in order of importance: the values in ``keep`` (e.g. ``0`` on a symlog axis, the range ends of
    a colour bar), then by decreasing magnitude. A tick is dropped when its label box, grown by ``pad_px``, meets an
    accepted one. The figure is drawn again after each round (a layout engine may move the axes) until nothing
    overlaps, at most ``rounds`` times.

    Args:
        ax: a matplotlib Axes (of a figure with a canvas).
        which: ``"x"`` or ``"y"``.
        keep: tick values accepted first, when they are ticks.
        pad_px: minimum gap between two labels, in pixels.
        rounds: draw/thin passes.

    Returns:
        The tick values kept.
    """
    axis = _axis(ax, which)
    keep = [float(v) for v in keep]
    kept: list[float] = []
    for _ in range(max(1, rounds)):
        ax.figure.canvas.draw()
        boxes = tick_label_boxes(ax, which)
        order = sorted(
            boxes,
            key=lambda item: (
                0 if any(abs(item[0] - k) <= 1e-12 * max(1.0, abs(k)) for k in keep) else 1,
                -abs(item[0]),
            ),
        )
        accepted: list[tuple[float, Any]] = []
        for value, box in order:
            if not any(boxes_overlap(box, other, pad_px / 2.0) for _, other in accepted):
                accepted.append((value, box))
        kept = sorted(value for value, _ in accepted)
        if len(kept) == len(boxes):
            break
        axis.set_ticks(kept)
    return kept
