"""Datasets and loaders for the engine: per-sample seeded transforms, validation, resumable sharded sampling."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ..config.schema import DataConfig
from ..data import create_dataset
from ..data.sample import Sample
from .distributed import DistInfo

log = logging.getLogger(__name__)

__all__ = [
    "collate_batch",
    "PreparedDataset",
    "ResumableSampler",
    "ShardSampler",
    "build_dataset",
    "preflight",
    "render_ahead",
    "train_loader",
    "eval_loader",
]


def collate_batch(samples: list[Sample]) -> dict[str, Any]:
    """The engine's collate: torch's default collate, except for detection samples (with ``boxes``), which
    :func:`freqdense.data.coco.collate_detection` batches (box sets as lists, images zero-padded to the largest with
    ``image_size``); their ``meta`` is collated as torch would (a dict of lists), so messages can name samples."""
    from torch.utils.data import default_collate

    if not samples or not isinstance(samples[0], dict) or "boxes" not in samples[0]:
        return default_collate(samples)
    from ..data.coco import collate_detection

    if any("image_scale" in s for s in samples):  # a resize some samples skipped (e.g. a zoom by 1) left none
        samples = [
            s if "image_scale" in s else {**s, "image_scale": torch.ones(2, dtype=torch.float64)} for s in samples
        ]
    batch = collate_detection(samples)
    metas = batch.get("meta")
    if isinstance(metas, list) and metas and all(isinstance(m, dict) for m in metas):
        keys = set(metas[0])
        if all(set(m) == keys for m in metas):
            batch["meta"] = {k: [m[k] for m in metas] for k in metas[0]}
    return batch


def _box_classes(dataset: Any) -> int | None:
    from ..tasks.detection import detection_classes

    names = detection_classes(dataset)
    return len(names) if names else None


def _accepts_rng(transform: Callable) -> bool:
    try:
        return "rng" in inspect.signature(transform).parameters
    except (TypeError, ValueError):
        return False


class PreparedDataset(Dataset):
    """Wraps a dataset: applies the joint transform with an RNG seeded by ``(seed, epoch, index)`` and validates.

    Seeding per sample (not per worker) makes augmentation independent of the number of workers and lets a resumed
    run draw exactly what the uninterrupted run drew.
    """

    def __init__(
        self,
        dataset: Dataset,
        transform: Callable | None = None,
        *,
        seed: int = 0,
        validate: bool = False,
        num_classes: int | None = None,
    ) -> None:
        self.dataset = dataset
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.validate = validate
        self.num_classes = num_classes
        #: Detection classes of ``labels`` (the synthetic scenes' thing classes, a COCO file's categories).
        self.num_box_classes = _box_classes(dataset)
        self._pass_rng = transform is not None and _accepts_rng(transform)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:  # expose classes, palette, num_classes, ... of the wrapped dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, index: int) -> Sample:
        sample = self.dataset[index]
        if self.transform is not None:
            if self._pass_rng:
                sample = self.transform(sample, rng=np.random.default_rng([self.seed, self.epoch, index]))
            else:
                sample = self.transform(sample)
        if self.validate:
            from ..data.validate import validate_sample

            source = f"{type(self.dataset).__name__}[{index}]"
            validate_sample(sample, num_classes=self.num_classes, source=source, num_box_classes=self.num_box_classes)
        return sample


class ResumableSampler(DistributedSampler):
    """DistributedSampler (shuffle, drop_last) that can start an epoch part-way, for exact resume."""

    def __init__(self, dataset: Dataset, info: DistInfo, *, seed: int) -> None:
        super().__init__(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed, drop_last=True)
        self.start = 0

    def set_start(self, start: int) -> None:
        self.start = start

    def __iter__(self):
        indices = list(super().__iter__())
        return iter(indices[self.start :])

    def __len__(self) -> int:
        return self.num_samples - self.start


class ShardSampler(Sampler[int]):
    """Evaluation sharding without padding: rank r takes indices r, r + W, ...; every sample is seen exactly once."""

    def __init__(self, length: int, info: DistInfo) -> None:
        self.indices = list(range(info.rank, length, info.world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def build_dataset(cfg: DataConfig, split: str, *, train: bool, seed: int = 0) -> PreparedDataset:
    from ..data.transforms import build_transforms

    args = {**cfg.args, **(cfg.train_args if train else cfg.val_args)}
    dataset = create_dataset(cfg.dataset, split=split, **args)
    transform = build_transforms(cfg.train_transforms if train else cfg.val_transforms, train=train)
    return PreparedDataset(
        dataset,
        transform,
        seed=seed,
        validate=cfg.validate and train,
        num_classes=getattr(dataset, "num_classes", None),
    )


def _check_split(dataset: PreparedDataset, role: str, split: str, *, validate: bool, enabled: bool) -> None:
    """Refuse an empty split; with ``validate``, check every (untransformed) sample and name the first bad one."""
    from .._progress import progress
    from ..data.validate import validate_sample
    from ..errors import DataError

    if len(dataset) == 0:
        raise DataError(
            f"data: the {role} split {split!r} of dataset {type(dataset.dataset).__name__} has 0 samples; its metrics "
            f"would all be NaN. Check data.{role}_split / data.{role}_args and the dataset's files"
        )
    if not validate:
        return
    raw = dataset.dataset
    name = type(raw).__name__
    for index in progress(range(len(raw)), f"check {role}", unit="sample", enabled=enabled):
        source = f"{role} split {split!r}: {name}[{index}]"
        validate_sample(
            raw[index], num_classes=dataset.num_classes, source=source, num_box_classes=dataset.num_box_classes
        )


def preflight(
    cfg: DataConfig,
    train_set: PreparedDataset,
    val_set: PreparedDataset,
    *,
    model: Any = None,
    segments: bool = False,
    show_progress: bool = True,
    detects: bool = False,
) -> None:
    """Checks that must pass before training step 1, so that nothing fails after hours of training:

    - neither split is empty (an empty validation split gives all-NaN metrics and a meaningless "best"),
    - with ``data.validate``, every sample of **both** splits passes
      :func:`~freqdense.data.validate.validate_sample` (label range, finite depth, shapes); the error names the
      split, the dataset and the sample index (plus the sample's id or file where the dataset gives one),
    - a model with ``num_classes`` predicts exactly the dataset's classes when the task segments, or exactly its
      detection classes when the task detects (``detects``).

    Raises:
        ConfigError, DataError: naming the key, split or sample.
    """
    from ..errors import ConfigError

    dataset_classes = getattr(train_set, "num_classes", None)
    model_classes = getattr(model, "num_classes", None)
    if segments and isinstance(model_classes, int) and isinstance(dataset_classes, int):
        if model_classes != dataset_classes:
            raise ConfigError(
                f"model.num_classes={model_classes} but dataset {cfg.dataset!r} has {dataset_classes} classes; the "
                f"segmentation logits must have one channel per class: set model.num_classes={dataset_classes}"
            )
    box_classes = getattr(train_set, "num_box_classes", None)
    if detects and isinstance(model_classes, int) and isinstance(box_classes, int) and model_classes != box_classes:
        raise ConfigError(
            f"model.num_classes={model_classes} but dataset {cfg.dataset!r} has {box_classes} detection classes; the "
            f"detector needs one score per class: set model.num_classes={box_classes}"
        )
    _check_split(train_set, "train", cfg.train_split, validate=cfg.validate, enabled=show_progress)
    _check_split(val_set, "val", cfg.val_split, validate=cfg.validate, enabled=show_progress)
    if detects:
        _check_has_boxes(cfg, train_set, "train")
        _check_has_boxes(cfg, val_set, "val")


def _check_has_boxes(cfg: DataConfig, dataset: PreparedDataset, role: str) -> None:
    """A detection run needs boxes and labels in its samples (the first sample stands for the split)."""
    from ..errors import DataError

    sample = dataset.dataset[0]
    missing = [k for k in ("boxes", "labels") if k not in sample]
    if missing:
        hint = (
            "add 'instance' to data.args.modalities (e.g. [image, instance])"
            if cfg.dataset == "synthetic"
            else "use a dataset with boxes (dataset: coco)"
        )
        raise DataError(
            f"task detection needs {missing} in every sample, but the {role} split of dataset {cfg.dataset!r} gives "
            f"only {sorted(sample)}; {hint}"
        )


def render_ahead(dataset: Dataset, info: DistInfo) -> int:
    """Fill a dataset's render cache before the loader reads it (datasets with ``render_cache``, e.g. synthetic).

    Each process renders its share (indices ``rank, rank + world_size, ...``), with progress on the main one, so
    that the first epoch does not stall silently. Returns the number of samples this process rendered.
    """
    render = getattr(dataset, "render_cache", None)
    if not callable(render):
        return 0
    return int(render(range(info.rank, len(dataset), info.world_size), enabled=info.is_main))


def _loader_generator(seed: int) -> torch.Generator:
    # A private generator: creating a DataLoader iterator must not consume the global torch RNG (resume exactness).
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def train_loader(dataset: PreparedDataset, cfg: DataConfig, info: DistInfo, *, seed: int) -> DataLoader:
    if len(dataset) < cfg.batch_size * info.world_size:
        from ..errors import ConfigError

        raise ConfigError(
            f"data: the training split has {len(dataset)} samples, fewer than one batch "
            f"(batch_size {cfg.batch_size} x {info.world_size} process(es)); lower data.batch_size or add samples"
        )
    render_ahead(dataset, info)
    sampler = ResumableSampler(dataset, info, seed=seed)
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        drop_last=True,
        generator=_loader_generator(seed),
        persistent_workers=False,
        collate_fn=collate_batch,
    )


def eval_loader(dataset: Dataset, cfg: DataConfig, info: DistInfo) -> DataLoader:
    render_ahead(dataset, info)
    return DataLoader(
        dataset,
        batch_size=cfg.val_batch_size,
        sampler=ShardSampler(len(dataset), info),
        num_workers=cfg.num_workers,
        generator=_loader_generator(0),
        collate_fn=collate_batch,
    )
