"""The embedded default dataset: procedural indoor scenes with exact ground truth for every modality.

See docs/data/synthetic.md. Importing this package registers the ``"synthetic"`` dataset factory.
"""

from __future__ import annotations

from .. import DATASETS
from .classes import CLASSES, IGNORE_INDEX, PALETTE
from .config import TEXTURE_KINDS, SyntheticConfig
from .dataset import DEFAULT_SPLIT_SIZES, MODALITIES, SyntheticScenes, synthetic
from .panel import render_panel
from .storage import synthesize

DATASETS.register(synthetic, name="synthetic")

__all__ = [
    "CLASSES",
    "PALETTE",
    "IGNORE_INDEX",
    "TEXTURE_KINDS",
    "MODALITIES",
    "DEFAULT_SPLIT_SIZES",
    "SyntheticConfig",
    "SyntheticScenes",
    "synthetic",
    "synthesize",
    "render_panel",
]
