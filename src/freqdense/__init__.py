"""freqdense: frequency-aware dense prediction in plain PyTorch."""

from __future__ import annotations

__version__ = "0.1.0"

from .config import load_config
from .models import create_model, list_models

__all__ = ["__version__", "create_model", "list_models", "load_config"]
