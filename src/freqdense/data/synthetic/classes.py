"""Semantic classes of the synthetic indoor scenes, their palette and the ignore convention."""

from __future__ import annotations

from ..sample import IGNORE_INDEX

__all__ = ["CLASSES", "PALETTE", "IGNORE_INDEX", "class_id"]

#: Class names; the list index is the class id stored in ``semantic``.
CLASSES: tuple[str, ...] = (
    "floor",  # 0: room floor
    "wall",  # 1: the four walls
    "ceiling",  # 2
    "table",  # 3: a top slab on four thin legs
    "cabinet",  # 4: tall boxes, usually against a wall
    "ball",  # 5: spheres on the floor or on tables
    "bin",  # 6: upright capped cylinders
    "pole",  # 7: thin floor-to-ceiling or lamp poles (1-3 cm radius)
    "picture",  # 8: flat rectangles on walls: same depth as the wall, different class
    "rug",  # 9: flat rectangles on the floor: same depth as the floor, different class
)

#: One RGB colour (0-255) per class, chosen to be distinguishable side by side.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128),  # floor
    (102, 102, 156),  # wall
    (70, 130, 180),  # ceiling
    (220, 180, 40),  # table
    (190, 60, 60),  # cabinet
    (0, 200, 120),  # ball
    (240, 120, 30),  # bin
    (250, 30, 220),  # pole
    (40, 220, 240),  # picture
    (150, 110, 60),  # rug
)

assert len(PALETTE) == len(CLASSES)


def class_id(name: str) -> int:
    """The id of a class name (``class_id("pole") == 7``)."""
    return CLASSES.index(name)
