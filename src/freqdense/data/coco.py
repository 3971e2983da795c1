"""COCO-format object detection / instance segmentation data: a dataset for your own files, mask codecs, collate.

The format is the one of "Microsoft COCO: Common Objects in Context" (Lin et al., ECCV 2014), as the
``instances_*.json`` files of COCO 2017 write it::

    {"images": [{"id", "file_name", "height", "width"}, ...],
     "annotations": [{"id", "image_id", "category_id", "bbox": [x, y, w, h], "area", "iscrowd",
                      "segmentation": polygons [[x1, y1, x2, y2, ...], ...] or RLE {"size": [h, w], "counts"}}, ...],
     "categories": [{"id", "name", "supercategory"}, ...]}

Boxes are in pixels with the image's top-left corner at (0, 0); pixel ``(x, y)`` covers ``[x, x + 1) x [y, y + 1)``.
Run-length encoding (RLE) counts alternate runs of 0s and 1s of the mask flattened column-major (Fortran order),
starting with 0s; ``counts`` is a list of ints (uncompressed, used by COCO for crowd regions) or a string (the
compressed form of ``pycocotools``: 5 bits per character, offset 48, counts after the second stored as differences
to the count two places earlier). Everything here is plain numpy: ``pycocotools`` is not needed to load data.

What :class:`COCODetection` does with the annotations, and why:

- categories map to contiguous labels ``0..K-1`` sorted by category id (``category_ids[label]`` maps back);
- ``iscrowd=1`` annotations are not training targets: their boxes are returned as ``crowd_boxes`` (regions to
  ignore), as COCO's evaluation and Detectron2 / MMDetection treat them;
- boxes are clipped to the image, then boxes with ``x2 <= x1`` or ``y2 <= y1`` (width or height <= 0) are dropped,
  as torchvision's detection references (``ConvertCocoPolysToMask``) and Detectron2 do; one warning counts them;
- an annotation whose ``category_id`` is not in ``categories``, or whose ``image_id`` is not in ``images``, is an
  error naming the file, the annotation id and the known ids (MMDetection skips them silently; a typo in a
  converter should not silently delete objects);
- images without annotations are kept (``boxes`` of shape (0, 4)) unless ``filter_empty=True``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, DataError
from . import DATASETS
from .io import read_image
from .sample import Sample

__all__ = [
    "rle_encode",
    "rle_decode",
    "rle_to_string",
    "rle_from_string",
    "polygons_to_mask",
    "segmentation_to_mask",
    "mask_to_bbox",
    "COCODetection",
    "collate_detection",
    "coco",
    "VARIABLE_LENGTH_KEYS",
]

log = logging.getLogger(__name__)

#: Sample keys whose first dimension differs between samples: :func:`collate_detection` returns them as lists.
VARIABLE_LENGTH_KEYS: tuple[str, ...] = ("boxes", "labels", "crowd_boxes", "masks", "instance_ids", "annotation_ids")

# ----------------------------------------------------------------------------------------------------------------
# Mask codecs
# ----------------------------------------------------------------------------------------------------------------


def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """A boolean (H, W) mask -> COCO's uncompressed RLE ``{"size": [H, W], "counts": [...]}`` (column-major runs,
    the first count is the number of leading 0s and may be 0)."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise DataError(f"rle_encode wants an (H, W) mask, got shape {m.shape}")
    h, w = m.shape
    flat = np.ascontiguousarray(m.astype(bool).T).reshape(-1)
    if flat.size == 0:
        return {"size": [int(h), int(w)], "counts": []}
    starts = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate(([0], starts, [flat.size])))
    counts = ([0] if flat[0] else []) + runs.tolist()
    return {"size": [int(h), int(w)], "counts": counts}


def rle_to_string(counts: Sequence[int]) -> str:
    """Uncompressed RLE counts -> the compressed ``counts`` string of pycocotools' format.

    Each count (from the third on: minus the count two places earlier) is written as signed 5-bit groups, least
    significant first; a character is ``48 + group``, plus 32 when more groups follow.
    """
    out: list[str] = []
    for i, count in enumerate(counts):
        x = int(count) - (int(counts[i - 2]) if i > 2 else 0)
        while True:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            out.append(chr(48 + (c | 0x20 if more else c)))
            if not more:
                break
    return "".join(out)


def rle_from_string(text: str | bytes, *, where: str = "RLE") -> list[int]:
    """The inverse of :func:`rle_to_string`; DataError naming ``where`` on a malformed string."""
    data = text.encode("ascii", "replace") if isinstance(text, str) else bytes(text)
    counts: list[int] = []
    p = 0
    while p < len(data):
        x, shift, more = 0, 0, True
        while more:
            if p >= len(data):
                raise DataError(f"{where}: compressed RLE counts end in the middle of a number")
            c = data[p] - 48
            if not 0 <= c < 64:
                raise DataError(f"{where}: compressed RLE counts hold the character {chr(data[p])!r} (not 48..111)")
            x |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            p += 1
            shift += 5
            if not more and c & 0x10:
                x |= -1 << shift
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_decode(rle: Mapping[str, Any], *, where: str = "RLE") -> np.ndarray:
    """COCO RLE (``counts`` a list or a compressed string) -> a boolean (H, W) mask.

    Raises:
        DataError: naming ``where`` when ``size`` is not two integers >= 0, a count is negative, or the counts do
            not add up to H * W.
    """
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise DataError(f"{where}: an RLE segmentation must be a dict with 'size' and 'counts'")
    size = rle["size"]
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in size)
    ):
        raise DataError(f"{where}: RLE 'size' must be [height, width] (integers >= 0), got {size!r}")
    h, w = int(size[0]), int(size[1])
    raw = rle["counts"]
    if isinstance(raw, (str, bytes)):
        counts = rle_from_string(raw, where=where)
    elif isinstance(raw, (list, tuple)) and all(isinstance(c, int) and not isinstance(c, bool) for c in raw):
        counts = [int(c) for c in raw]
    else:
        raise DataError(f"{where}: RLE 'counts' must be a list of integers or a compressed string")
    if any(c < 0 for c in counts):
        raise DataError(f"{where}: RLE 'counts' holds negative run lengths")
    if sum(counts) != h * w:
        raise DataError(f"{where}: RLE counts add up to {sum(counts)} pixels, but 'size' {[h, w]} has {h * w}")
    values = np.repeat(np.arange(len(counts)) % 2 == 1, counts)
    return np.ascontiguousarray(values.reshape(w, h).T)


def polygons_to_mask(
    polygons: Sequence[Sequence[float]], height: int, width: int, *, where: str = "polygon"
) -> np.ndarray:
    """Rasterise COCO polygons (each a flat ``[x1, y1, x2, y2, ...]``) into a boolean (H, W) mask, their union.

    A pixel belongs to a polygon when its centre ``(x + 0.5, y + 0.5)`` is inside (even-odd rule); a centre exactly
    on an edge counts when the edge is on its right or below it (half-open, so two polygons sharing an edge never
    share a pixel; this tie rule agrees with ``pycocotools`` on axis-aligned half-integer rectangles).
    ``pycocotools`` rasterises vertices rounded to 1/5 pixel, so the two differ only on pixels whose centre lies
    within about 0.15 pixel of an edge (measured: about 2 % of the pixels of random polygons).
    """
    mask = np.zeros((height, width), dtype=bool)
    for k, poly in enumerate(polygons):
        try:
            xy = np.asarray(poly, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise DataError(f"{where}: polygon {k} is not a flat list of numbers") from None
        if xy.size < 6 or xy.size % 2:
            raise DataError(f"{where}: polygon {k} has {xy.size} coordinates; it needs an even number >= 6 (3 points)")
        if not np.isfinite(xy).all():
            raise DataError(f"{where}: polygon {k} holds non-finite coordinates")
        mask |= _fill_polygon(xy[0::2], xy[1::2], height, width)
    return mask


def _fill_polygon(x: np.ndarray, y: np.ndarray, height: int, width: int) -> np.ndarray:
    x0, y0, x1, y1 = x, y, np.roll(x, -1), np.roll(y, -1)
    centres = np.arange(height, dtype=np.float64)[:, None] + 0.5
    # Edge e crosses the centre line of row r when the line is in (y0, y1] or (y1, y0]: horizontal edges never do,
    # and a vertex is counted once.
    crosses = ((y0 < centres) & (centres <= y1)) | ((y1 < centres) & (centres <= y0))
    rows, edges = np.nonzero(crosses)
    cy = centres[rows, 0]
    cross_x = x0[edges] + (cy - y0[edges]) * (x1[edges] - x0[edges]) / (y1[edges] - y0[edges])
    # Pixel x is right of a crossing when x + 0.5 > cross_x, i.e. x >= floor(cross_x - 0.5) + 1; inside = an odd
    # number of crossings on its left.
    first = np.clip(np.floor(cross_x - 0.5) + 1, 0, width).astype(np.int64)
    toggles = np.zeros((height, width + 1), dtype=np.int64)
    np.add.at(toggles, (rows, first), 1)
    return (np.cumsum(toggles, axis=1)[:, :width] % 2).astype(bool)


def segmentation_to_mask(segmentation: Any, height: int, width: int, *, where: str = "segmentation") -> np.ndarray:
    """A COCO ``segmentation`` (polygon list or RLE dict) -> a boolean (height, width) mask.

    Raises:
        DataError: naming ``where`` for malformed data or an RLE whose ``size`` is not ``[height, width]``.
    """
    if isinstance(segmentation, Mapping):
        mask = rle_decode(segmentation, where=where)
        if mask.shape != (height, width):
            raise DataError(
                f"{where}: RLE 'size' {list(mask.shape)} differs from the image's [height, width] {[height, width]}"
            )
        return mask
    if isinstance(segmentation, (list, tuple)):
        return polygons_to_mask(segmentation, height, width, where=where)
    raise DataError(
        f"{where}: 'segmentation' must be a list of polygons or an RLE dict, got {type(segmentation).__name__}"
    )


def mask_to_bbox(mask: np.ndarray) -> list[int]:
    """COCO ``[x, y, w, h]`` of a non-empty boolean mask: ``w = max x - min x + 1`` (what pycocotools' toBbox gives);
    ``[0, 0, 0, 0]`` for an empty mask."""
    m = np.asarray(mask, dtype=bool)
    ys, xs = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    if ys.size == 0:
        return [0, 0, 0, 0]
    return [int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1)]


# ----------------------------------------------------------------------------------------------------------------
# The dataset
# ----------------------------------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _load_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"COCO annotation file {os.fspath(path)!r} does not exist (or is not a file)")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"cannot read COCO annotation file {os.fspath(path)!r}: {err}") from err
    if not isinstance(data, dict):
        raise DataError(f"{os.fspath(path)!r} holds a JSON {type(data).__name__}, not a COCO object with 'images'")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(
                f"{os.fspath(path)!r} has no {key!r} list (keys: {sorted(data)}); a COCO instances file needs "
                "'images', 'annotations' and 'categories'"
            )
    return data


class COCODetection(Dataset):
    """Images and boxes (and optionally instance masks) of a COCO-format instances file (see the module docstring).

    Args:
        ann_file: the instances JSON (e.g. ``annotations/instances_val2017.json``).
        image_dir: the folder that ``file_name`` is relative to (e.g. ``val2017/``).
        transform: callable Sample -> Sample applied last (the joint transforms of :mod:`freqdense.data.transforms`
            move, clip and drop boxes with the image).
        with_masks: also decode ``masks`` (N, H, W) bool from the polygons / RLE.
        filter_empty: drop images without any (non-crowd, non-empty) box, as detection training usually does.
        num_samples: use only the first ``num_samples`` images (after filtering; images are sorted by id).
        split: a name for ``meta["split"]`` and messages.

    Samples: ``image`` (3, H, W) float in [0, 1]; ``boxes`` (N, 4) float32 ``x1, y1, x2, y2`` pixels; ``labels`` (N,)
    int64 in ``[0, K)``; ``crowd_boxes`` (M, 4) float32; ``annotation_ids`` (N,) int64; ``image_id`` () int64 (the
    COCO id); ``masks`` (N, H, W) bool with ``with_masks``; ``meta`` with ``id`` (the file name), ``index``,
    ``split`` and ``image_id``. Batch them with :func:`collate_detection`.
    """

    def __init__(
        self,
        ann_file: str | os.PathLike,
        image_dir: str | os.PathLike,
        *,
        transform: Callable[[Sample], Sample] | None = None,
        with_masks: bool = False,
        filter_empty: bool = False,
        num_samples: int | None = None,
        split: str = "coco",
    ) -> None:
        self.ann_file = Path(ann_file)
        self.image_dir = Path(image_dir)
        self.transform = transform
        self.with_masks = bool(with_masks)
        self.split = split
        data = _load_json(self.ann_file)
        name = os.fspath(self.ann_file)
        if not self.image_dir.is_dir():
            raise DataError(f"COCO image folder {os.fspath(self.image_dir)!r} (for {name!r}) does not exist")

        categories: dict[int, str] = {}
        for k, cat in enumerate(data["categories"]):
            if not isinstance(cat, dict) or not _is_int(cat.get("id")):
                raise DataError(f"{name!r}: categories[{k}] has no integer 'id'")
            if cat["id"] in categories:
                raise DataError(f"{name!r}: category id {cat['id']} appears twice in 'categories'")
            categories[cat["id"]] = str(cat.get("name", cat["id"]))
        if not categories:
            raise DataError(f"{name!r}: 'categories' is empty; list every category id the annotations use")
        #: COCO category id of each contiguous label (sorted ids).
        self.category_ids: list[int] = sorted(categories)
        self.classes: tuple[str, ...] = tuple(categories[i] for i in self.category_ids)
        self.num_classes = len(self.classes)
        self.label_of: dict[int, int] = {cat: label for label, cat in enumerate(self.category_ids)}

        images: dict[int, dict[str, Any]] = {}
        for k, img in enumerate(data["images"]):
            if not isinstance(img, dict) or not _is_int(img.get("id")):
                raise DataError(f"{name!r}: images[{k}] has no integer 'id'")
            if img["id"] in images:
                raise DataError(f"{name!r}: image id {img['id']} appears twice in 'images'")
            h, w = img.get("height"), img.get("width")
            if not isinstance(img.get("file_name"), str) or not (_is_int(h) and _is_int(w) and h > 0 and w > 0):
                got = {key: img.get(key) for key in ("file_name", "height", "width")}
                raise DataError(
                    f"{name!r}: image id {img['id']} needs 'file_name' (str) and 'height', 'width' (integers > 0), "
                    f"got {got}"
                )
            images[img["id"]] = img

        per_image: dict[int, list[dict[str, Any]]] = {i: [] for i in images}
        dropped: list[Any] = []
        for k, ann in enumerate(data["annotations"]):
            if not isinstance(ann, dict):
                raise DataError(f"{name!r}: annotations[{k}] is a {type(ann).__name__}, not an object")
            ann_id = ann.get("id", f"#{k}")
            if ann.get("image_id") not in images:
                raise DataError(
                    f"{name!r}: annotation id {ann_id} refers to image_id {ann.get('image_id')!r}, which is not in "
                    f"'images' ({len(images)} images)"
                )
            if ann.get("category_id") not in categories:
                raise DataError(
                    f"{name!r}: annotation id {ann_id} has category_id {ann.get('category_id')!r}, not one of the "
                    f"categories {self.category_ids}; fix the converter that wrote it or add the category"
                )
            box = ann.get("bbox")
            if (
                not isinstance(box, (list, tuple))
                or len(box) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)
            ):
                raise DataError(f"{name!r}: annotation id {ann_id} has bbox {box!r}; expected [x, y, w, h] (4 numbers)")
            img = images[ann["image_id"]]
            x, y, bw, bh = (float(v) for v in box)
            x1, y1 = min(max(x, 0.0), img["width"]), min(max(y, 0.0), img["height"])
            x2, y2 = min(max(x + bw, 0.0), img["width"]), min(max(y + bh, 0.0), img["height"])
            if x2 <= x1 or y2 <= y1:
                dropped.append(ann_id)
                continue
            per_image[ann["image_id"]].append({**ann, "_xyxy": (x1, y1, x2, y2), "_id": ann_id})
        if dropped:
            log.warning(
                "%s: dropped %d annotations whose box has width or height <= 0 inside the image (e.g. annotation id "
                "%s), as COCO training pipelines do",
                name,
                len(dropped),
                dropped[0],
            )
        self.dropped_annotations = dropped

        ids = sorted(images)
        if filter_empty:
            ids = [i for i in ids if any(not a.get("iscrowd", 0) for a in per_image[i])]
        if num_samples is not None:
            if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
                raise ConfigError(f"coco num_samples must be an integer >= 0, got {num_samples!r}")
            ids = ids[:num_samples]
        self.image_ids: list[int] = ids
        self._images = images
        self._annotations = per_image

    def __len__(self) -> int:
        return len(self.image_ids)

    def image_path(self, index: int) -> Path:
        return self.image_dir / self._images[self.image_ids[index]]["file_name"]

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} COCO images of {os.fspath(self.ann_file)!r}")
        index = int(index) % len(self)
        image_id = self.image_ids[index]
        info = self._images[image_id]
        path = self.image_dir / info["file_name"]
        image = read_image(path)
        h, w = info["height"], info["width"]
        if tuple(image.shape[-2:]) != (h, w):
            raise DataError(
                f"image {os.fspath(path)!r} is {image.shape[-2]}x{image.shape[-1]} (HxW) but "
                f"{os.fspath(self.ann_file)!r} says {h}x{w} for image id {image_id}; the file or the JSON is wrong"
            )
        anns = self._annotations[image_id]
        things = [a for a in anns if not a.get("iscrowd", 0)]
        crowd = [a for a in anns if a.get("iscrowd", 0)]
        sample: Sample = {
            "image": image,
            "boxes": _boxes(things),
            "labels": torch.tensor([self.label_of[a["category_id"]] for a in things], dtype=torch.int64),
            "crowd_boxes": _boxes(crowd),
            "annotation_ids": torch.tensor([a["_id"] if _is_int(a["_id"]) else -1 for a in things], dtype=torch.int64),
            "image_id": torch.tensor(image_id, dtype=torch.int64),
        }
        if self.with_masks:
            masks = np.zeros((len(things), h, w), dtype=bool)
            for row, ann in enumerate(things):
                where = f"{os.fspath(self.ann_file)!r} annotation id {ann['_id']}"
                if "segmentation" not in ann:
                    raise DataError(f"{where} has no 'segmentation'; load without with_masks=True")
                masks[row] = segmentation_to_mask(ann["segmentation"], h, w, where=where)
            sample["masks"] = torch.from_numpy(masks)
        sample["meta"] = {"id": info["file_name"], "index": index, "split": self.split, "image_id": image_id}
        return self.transform(sample) if self.transform is not None else sample

    def __repr__(self) -> str:
        return (
            f"COCODetection(ann_file={os.fspath(self.ann_file)!r}, images={len(self)}, classes={self.num_classes}, "
            f"with_masks={self.with_masks})"
        )


def _boxes(anns: list[dict[str, Any]]) -> torch.Tensor:
    if not anns:
        return torch.zeros((0, 4), dtype=torch.float32)
    return torch.tensor([a["_xyxy"] for a in anns], dtype=torch.float32)


def collate_detection(samples: Sequence[Sample]) -> dict[str, Any]:
    """Batch detection samples: :data:`VARIABLE_LENGTH_KEYS` and ``meta`` become lists, ``image`` is zero-padded at
    the bottom/right to the largest size (boxes keep their coordinates) with ``image_size`` (B, 2) = (H, W) of each,
    and every other tensor is stacked (or listed when the shapes differ)."""
    if not samples:
        raise DataError("collate_detection got an empty batch")
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if key in VARIABLE_LENGTH_KEYS or key == "meta" or not isinstance(values[0], torch.Tensor):
            batch[key] = values
        elif key == "image":
            height = max(int(v.shape[-2]) for v in values)
            width = max(int(v.shape[-1]) for v in values)
            padded = values[0].new_zeros((len(values), values[0].shape[0], height, width))
            for i, v in enumerate(values):
                padded[i, :, : v.shape[-2], : v.shape[-1]] = v
            batch[key] = padded
            batch["image_size"] = torch.tensor([tuple(v.shape[-2:]) for v in values], dtype=torch.int64)
        elif all(v.shape == values[0].shape for v in values):
            batch[key] = torch.stack(values)
        else:
            batch[key] = values
    return batch


def coco(
    *,
    root: str | os.PathLike | None = None,
    split: str = "val2017",
    ann_file: str | os.PathLike | None = None,
    image_dir: str | os.PathLike | None = None,
    transform: Callable[[Sample], Sample] | None = None,
    with_masks: bool = False,
    filter_empty: bool = False,
    num_samples: int | None = None,
) -> COCODetection:
    """A COCO-format dataset (registered as ``"coco"``).

    With ``root``, the COCO 2017 layout (also what ``freqdense data synth --coco`` writes):
    ``root/annotations/instances_<split>.json`` and images in ``root/<split>/``; ``ann_file`` / ``image_dir``
    override either path.
    """
    if root is None and (ann_file is None or image_dir is None):
        raise ConfigError(
            "coco needs root=DIR (with annotations/instances_<split>.json and <split>/) or both ann_file= and "
            "image_dir="
        )
    base = Path(root) if root is not None else None
    ann = Path(ann_file) if ann_file is not None else base / "annotations" / f"instances_{split}.json"  # type: ignore[operator]
    images = Path(image_dir) if image_dir is not None else base / split  # type: ignore[operator]
    return COCODetection(
        ann,
        images,
        transform=transform,
        with_masks=with_masks,
        filter_empty=filter_empty,
        num_samples=num_samples,
        split=split,
    )


DATASETS.register(coco, name="coco")
