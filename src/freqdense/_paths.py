"""Path containment: a file named by another file (a checkpoint pointer, say) must stay inside its folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import CheckpointError

__all__ = ["check_inside"]


def check_inside(path: Path, root: Path, source: Any) -> Path:
    """Return ``path`` resolved; raise CheckpointError naming ``source`` when it resolves outside ``root``.

    Symlinks are followed, so a link inside ``root`` that leads elsewhere is refused as well.
    """
    resolved = Path(path).resolve()
    base = Path(root).resolve()
    if resolved != base and base not in resolved.parents:
        raise CheckpointError(
            f"{source}: {str(path)!r} resolves to {str(resolved)!r}, outside {str(base)!r}; a pointer file may only "
            "name checkpoints of its own run: restore the file or delete it to fall back to the newest checkpoint"
        )
    return resolved
