"""Datasets, the sample contract and joint transforms."""

from __future__ import annotations

from .._registry import Registry

DATASETS: Registry = Registry("dataset")


def create_dataset(name: str, **kwargs):
    """Build a registered dataset by name (``freqdense list`` shows them)."""
    _import_all()
    return DATASETS.create(name, **kwargs)


def list_datasets(pattern: str = "*") -> list[str]:
    _import_all()
    return DATASETS.names(pattern)


def _import_all() -> None:
    # Importing the modules registers them; done lazily so `import freqdense` stays light.
    from . import (  # noqa: F401
        ade20k,
        cityscapes,
        cityscapes_mtan,
        cityscapes_sequence,
        coco,
        deepglobe,
        kitti,
        nyud_mt,
        nyuv2,
        nyuv2_seg,
        sunrgbd,
        synthetic,
        voc,
    )


__all__ = ["DATASETS", "create_dataset", "list_datasets"]
