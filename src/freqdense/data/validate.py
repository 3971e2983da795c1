"""Check a sample against the contract in :mod:`freqdense.data.sample`, cheaply enough for every training sample.

Two kinds of problems are distinguished:

* **structural** (wrong type, rank, channel count, dtype kind, spatial sizes that disagree, malformed camera
  matrices, non-finite flow): always a :class:`~freqdense.errors.DataError`, because no automatic fix is safe;
* **values** (NaN/inf/negative depth or disparity, image or image-like (``hha``) values outside [0, 1], label ids
  outside ``[0, num_classes)``, a ``depth_valid`` that disagrees with ``depth``, an integer label dtype other than
  int64): a DataError with ``on_error="raise"`` (the default), or fixed with a logged warning with
  ``on_error="sanitize"``: bad depth/disparity -> 0 (invalid) and ``depth_valid`` recomputed, images and ``hha``
  clamped (NaN -> 0, which for ``hha`` is the invalid-depth code), bad labels -> ``ignore_index``, labels cast to
  int64.

Every key of ``IMAGE_KEYS``, ``IMAGE_LIKE_KEYS``, ``DENSE_FLOAT_KEYS``, ``DISPARITY_KEYS`` and ``LABEL_KEYS`` plus
``sensor_flow`` takes part in the spatial-size consistency check.

Detection boxes (``boxes`` (N, 4) xyxy pixels with ``labels`` (N,) and optional ``instance_ids``, ``crowd_boxes``)
must be finite, have ``x2 > x1`` and ``y2 > y1``, lie inside the image (``0 <= x1``, ``x2 <= W``, likewise y, up to
1e-3 px) and carry labels in ``[0, num_box_classes)``; the message names the sample, the box index and its values.
``on_error="sanitize"`` clips boxes to the image and drops the degenerate ones and those with bad labels (with their
rows). Structure (shapes, dtypes, rows that do not match the boxes) is always an error.

Each check is one vectorised reduction (``aminmax`` / ``equal``) on the happy path; the offending values are only
collected when a check fails.
"""

from __future__ import annotations

import logging
from typing import Literal

import torch

from ..errors import DataError
from .sample import (
    BOX_ROW_KEYS,
    DENSE_FLOAT_KEYS,
    DISPARITY_KEYS,
    IGNORE_INDEX,
    IMAGE_KEYS,
    IMAGE_LIKE_KEYS,
    POSE_KEYS,
    Sample,
    depth_valid_mask,
)

__all__ = ["validate_sample"]

log = logging.getLogger(__name__)

_MAX_LISTED = 10

#: (what the values are, how to fix out-of-range ones) per key checked by ``_Validator.image``.
_IMAGE_RANGE_HINTS = {
    **{key: ("RGB", "divide 8-bit images by 255 and replace NaN (NaN -> 0, clamp to [0, 1])") for key in IMAGE_KEYS},
    "hha": (
        "an HHA encoding / 255",
        "divide the 8-bit HHA image by 255 (the loaders' read_hha does) and replace NaN (NaN -> 0 = invalid depth, "
        "clamp to [0, 1])",
    ),
}


def validate_sample(
    sample: Sample,
    *,
    num_classes: int | None,
    ignore_index: int = IGNORE_INDEX,
    source: str,
    on_error: Literal["raise", "sanitize"] = "raise",
    num_box_classes: int | None = None,
) -> Sample:
    """Validate (and optionally sanitise) one un-batched sample.

    Args:
        sample: a sample dict (keys and layouts per :mod:`freqdense.data.sample`).
        num_classes: number of semantic classes; may be None only if the sample has no ``semantic`` key.
        ignore_index: the label id that marks unlabelled pixels.
        source: where the sample came from (dataset name / file), used in every message; ``meta["id"]`` is appended.
        on_error: ``"raise"`` raises on any problem; ``"sanitize"`` fixes value problems (see the module docstring)
            with a warning and still raises on structural ones.
        num_box_classes: number of detection classes of ``labels`` (None: only ``labels >= 0`` is checked).

    Returns:
        The input sample when nothing needed fixing, otherwise a shallow copy with the fixed tensors.

    Raises:
        DataError: naming the source, the key and the offending values, and saying how to fix them.

    Examples:
        >>> s = {"image": torch.rand(3, 2, 2), "semantic": torch.tensor([[0, 1], [255, 57]])}
        >>> validate_sample(s, num_classes=40, source="demo")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        freqdense.errors.DataError: demo: sample['semantic'] has ids outside [0, 40) ...: 57 (1 px); map them to 255 ...
    """
    if on_error not in ("raise", "sanitize"):
        raise ValueError(f"on_error must be 'raise' or 'sanitize', got {on_error!r}")
    v = _Validator(sample, source, on_error == "sanitize")
    found = v.spatial_size()
    v.has_spatial = found is not None
    size = found or (0, 0)  # (0, 0) is never used: it only stands in when no map is present
    for key in IMAGE_KEYS + IMAGE_LIKE_KEYS:
        if key in sample:
            v.image(key, size)
    if "semantic" in sample:
        v.semantic(size, num_classes, ignore_index)
    for key in DENSE_FLOAT_KEYS:
        if key in sample:
            v.depth(key, size)
    for key in DISPARITY_KEYS:
        if key in sample:
            v.disparity(key, size)
    if "depth_valid" in sample:
        v.depth_valid(size)
    if "sensor_flow" in sample:
        v.sensor_flow(size)
    if "intrinsics" in sample:
        v.intrinsics()
    for key in POSE_KEYS:
        if key in sample:
            v.pose(key)
    if "baseline" in sample:
        v.baseline()
    if "instance" in sample:
        v.instance(size)
    if "boxes" in sample or "labels" in sample:
        v.boxes(size if v.has_spatial else None, num_box_classes)
    if "crowd_boxes" in sample:
        v.crowd_boxes(size if v.has_spatial else None)
    return v.result()


class _Validator:
    def __init__(self, sample: Sample, source: str, sanitize: bool) -> None:
        self.sample = sample
        self.sanitize = sanitize
        meta = sample.get("meta")
        sample_id = meta.get("id") if isinstance(meta, dict) else None
        self.where = source if sample_id is None else f"{source} (id {sample_id})"
        self.fixed: dict[str, torch.Tensor] = {}
        self.has_spatial = False

    # -- helpers ---------------------------------------------------------------------------------------------
    def get(self, key: str) -> torch.Tensor:
        return self.fixed.get(key, self.sample[key])

    def fail(self, message: str) -> DataError:
        return DataError(f"{self.where}: {message}")

    def value_problem(self, key: str, message: str, fix: str, fixed: torch.Tensor) -> None:
        if not self.sanitize:
            raise self.fail(f"sample[{key!r}] {message}; {fix}")
        log.warning("%s: sample[%r] %s; sanitised (%s)", self.where, key, message, fix)
        self.fixed[key] = fixed

    def tensor(self, key: str, shape: tuple[int, ...], layout: str) -> torch.Tensor:
        value = self.sample[key]
        if not isinstance(value, torch.Tensor):
            raise self.fail(f"sample[{key!r}] must be a torch.Tensor {layout}, got {type(value).__name__}")
        if tuple(value.shape) != shape:
            raise self.fail(f"sample[{key!r}] must have shape {layout} = {shape}, got {tuple(value.shape)}")
        return value

    def floating(self, key: str, value: torch.Tensor) -> None:
        if not value.is_floating_point():
            raise self.fail(f"sample[{key!r}] must be float32, got {value.dtype}; convert it with .float()")

    def result(self) -> Sample:
        if not self.fixed:
            return self.sample
        out = dict(self.sample)
        out.update(self.fixed)
        return out

    # -- checks ----------------------------------------------------------------------------------------------
    def spatial_size(self) -> tuple[int, int] | None:
        sizes: dict[str, tuple[int, ...]] = {}
        keys = (*IMAGE_KEYS, *IMAGE_LIKE_KEYS, "semantic", *DENSE_FLOAT_KEYS, *DISPARITY_KEYS, "depth_valid")
        for key in (*keys, "sensor_flow"):
            value = self.sample.get(key)
            if value is None:
                continue
            if not isinstance(value, torch.Tensor) or value.dim() < 2:
                desc = f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
                raise self.fail(f"sample[{key!r}] must be a tensor with (..., H, W) layout, got {desc}")
            sizes[key] = tuple(value.shape[-2:])
        if len(set(sizes.values())) > 1:
            listing = ", ".join(f"{k}: {h}x{w}" for k, (h, w) in sizes.items())
            raise self.fail(f"spatial sizes disagree ({listing}); every map of a sample must be H x W")
        return next(iter(sizes.values()), None)  # type: ignore[return-value]

    def image(self, key: str, size: tuple[int, int]) -> None:
        img = self.tensor(key, (3, *size), "(3, H, W)")
        self.floating(key, img)
        lo, hi = torch.aminmax(img)
        if bool(lo >= 0) and bool(hi <= 1):  # NaN fails both comparisons
            return
        n_nonfinite = int((~torch.isfinite(img)).sum())
        finite = img[torch.isfinite(img)]
        rng = f"[{float(finite.min()):.4g}, {float(finite.max()):.4g}]" if finite.numel() else "no finite values"
        what, fix = _IMAGE_RANGE_HINTS.get(key, ("an image-like map", "scale it to [0, 1] and replace NaN by 0"))
        message = f"must be {what} in [0, 1]; it has {n_nonfinite} NaN/inf values and range {rng}"
        self.value_problem(key, message, fix, torch.nan_to_num(img, nan=0.0, posinf=1.0, neginf=0.0).clamp(0, 1))

    def semantic(self, size: tuple[int, int], num_classes: int | None, ignore_index: int) -> None:
        sem = self.tensor("semantic", size, "(H, W)")
        if num_classes is None or num_classes <= 0:
            raise self.fail(f"validating sample['semantic'] needs a positive num_classes, got {num_classes}")
        if sem.is_floating_point() or sem.dtype == torch.bool or sem.is_complex():
            raise self.fail(f"sample['semantic'] must be int64 class ids, got {sem.dtype}; build it with .long()")
        if sem.dtype != torch.int64:
            self.value_problem("semantic", f"is {sem.dtype}, not int64", "cast it with .long()", sem.long())
            sem = self.get("semantic")
        lo, hi = torch.aminmax(sem)
        if int(lo) >= 0 and int(hi) < num_classes:
            return
        bad = ((sem < 0) | (sem >= num_classes)) & (sem != ignore_index)
        if not bool(bad.any()):
            return
        values, counts = torch.unique(sem[bad], return_counts=True)
        listed = ", ".join(f"{int(v)} ({int(c)} px)" for v, c in zip(values[:_MAX_LISTED], counts[:_MAX_LISTED]))
        more = f" and {len(values) - _MAX_LISTED} more" if len(values) > _MAX_LISTED else ""
        message = f"has ids outside [0, {num_classes}) that are not the ignore index {ignore_index}: {listed}{more}"
        self.value_problem(
            "semantic", message, f"map them to {ignore_index} or fix num_classes", sem.masked_fill(bad, ignore_index)
        )

    def depth(self, key: str, size: tuple[int, int]) -> None:
        depth = self.tensor(key, (1, *size), "(1, H, W)")
        self.floating(key, depth)
        lo, hi = torch.aminmax(depth)
        if bool(lo >= 0) and bool(torch.isfinite(hi)):
            return
        n_nan = int(torch.isnan(depth).sum())
        n_inf = int(torch.isinf(depth).sum())
        n_neg = int((depth < 0).sum())
        message = f"must be finite, non-negative metres; it has {n_nan} NaN, {n_inf} inf and {n_neg} negative values"
        fix = "set invalid depth to 0 (0 = invalid) in the loader"
        fixed = torch.where(torch.isfinite(depth) & (depth > 0), depth, torch.zeros_like(depth))
        self.value_problem(key, message, fix, fixed)
        if "depth_valid" in self.sample and key == "depth":
            self.fixed["depth_valid"] = depth_valid_mask(fixed)

    def disparity(self, key: str, size: tuple[int, int]) -> None:
        disp = self.tensor(key, (1, *size), "(1, H, W)")
        self.floating(key, disp)
        lo, hi = torch.aminmax(disp)
        if bool(lo >= 0) and bool(torch.isfinite(hi)):
            return
        n_nan = int(torch.isnan(disp).sum())
        n_inf = int(torch.isinf(disp).sum())
        n_neg = int((disp < 0).sum())
        message = (
            f"must be a finite, non-negative disparity (pixels); it has {n_nan} NaN, {n_inf} inf and {n_neg} "
            f"negative values"
        )
        fixed = torch.where(torch.isfinite(disp) & (disp > 0), disp, torch.zeros_like(disp))
        self.value_problem(key, message, "set invalid disparity to 0 (0 = invalid) in the loader", fixed)

    def depth_valid(self, size: tuple[int, int]) -> None:
        valid = self.tensor("depth_valid", (1, *size), "(1, H, W)")
        if valid.dtype != torch.bool:
            raise self.fail(f"sample['depth_valid'] must be bool, got {valid.dtype}; use depth_valid_mask(depth)")
        if "depth" not in self.sample:
            return
        expected = depth_valid_mask(self.get("depth"))
        if "depth_valid" in self.fixed or torch.equal(self.get("depth_valid"), expected):
            return
        n_diff = int((valid != expected).sum())
        self.value_problem(
            "depth_valid",
            f"disagrees with depth > 0 at {n_diff} pixels",
            "build it with freqdense.data.sample.depth_valid_mask(depth) after every depth edit",
            expected,
        )

    def sensor_flow(self, size: tuple[int, int]) -> None:
        flow = self.tensor("sensor_flow", (2, *size), "(2, H, W)")
        self.floating("sensor_flow", flow)
        if not bool(torch.isfinite(flow).all()):
            n_bad = int((~torch.isfinite(flow)).sum())
            raise self.fail(
                f"sample['sensor_flow'] has {n_bad} NaN/inf values; store 0 flow and sensor_depth 0 where unknown"
            )

    def intrinsics(self) -> None:
        k = self.tensor("intrinsics", (3, 3), "(3, 3)")
        self.floating("intrinsics", k)
        k64 = k.double()
        last_row_ok = torch.allclose(k64[2], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), atol=1e-6)
        if not (bool(torch.isfinite(k64).all()) and last_row_ok and k64[0, 0] > 0 and k64[1, 1] > 0 and k64[1, 0] == 0):
            raise self.fail(
                f"sample['intrinsics'] must be a finite pinhole K [[fx, s, cx], [0, fy, cy], [0, 0, 1]] in pixels "
                f"with fx, fy > 0, got {k.tolist()}"
            )

    def pose(self, key: str) -> None:
        t = self.tensor(key, (4, 4), "(4, 4)")
        self.floating(key, t)
        t64 = t.double()
        ok = bool(torch.isfinite(t64).all()) and torch.allclose(
            t64[3], torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64), atol=1e-6
        )
        if ok:
            rot = t64[:3, :3]
            ok = torch.allclose(rot @ rot.T, torch.eye(3, dtype=torch.float64), atol=1e-3)
        if not ok:
            raise self.fail(
                f"sample[{key!r}] must be a finite rigid transform [[R, t], [0, 0, 0, 1]] with orthonormal R, "
                f"got {t.tolist()}"
            )

    def baseline(self) -> None:
        b = self.sample["baseline"]
        if not isinstance(b, torch.Tensor) or b.dim() != 0 or not b.is_floating_point() or not bool(torch.isfinite(b)):
            desc = f"{b.dtype} tensor of shape {tuple(b.shape)}" if isinstance(b, torch.Tensor) else repr(b)
            raise self.fail(f"sample['baseline'] must be a finite 0-dim float tensor (metres, signed), got {desc}")

    def instance(self, size: tuple[int, int]) -> None:
        ids = self.tensor("instance", size, "(H, W)")
        if ids.dtype != torch.int64:
            raise self.fail(f"sample['instance'] must be int64 instance ids (0 = no thing), got {ids.dtype}")
        if ids.numel() and int(ids.min()) < 0:
            raise self.fail(f"sample['instance'] holds negative ids (min {int(ids.min())}); ids are >= 0")

    def _box_tensor(self, key: str) -> torch.Tensor:
        boxes = self.sample[key]
        if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[-1] != 4:
            desc = f"shape {tuple(boxes.shape)}" if isinstance(boxes, torch.Tensor) else type(boxes).__name__
            raise self.fail(f"sample[{key!r}] must be an (N, 4) tensor of x1, y1, x2, y2 pixels, got {desc}")
        self.floating(key, boxes)
        return boxes

    def boxes(self, size: tuple[int, int] | None, num_box_classes: int | None) -> None:
        if "boxes" not in self.sample or "labels" not in self.sample:
            missing = "boxes" if "boxes" not in self.sample else "labels"
            raise self.fail(
                f"sample has {'labels' if missing == 'boxes' else 'boxes'} but no {missing!r}; a detection "
                "sample needs both (N, 4) boxes and (N,) labels"
            )
        boxes = self._box_tensor("boxes")
        n = int(boxes.shape[0])
        labels = self.sample["labels"]
        if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != (n,):
            desc = f"shape {tuple(labels.shape)}" if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise self.fail(f"sample['labels'] must have shape ({n},), one label per box, got {desc}")
        if labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
            raise self.fail(f"sample['labels'] must be int64 class ids, got {labels.dtype}; build it with .long()")
        for key in BOX_ROW_KEYS:
            value = self.sample.get(key)
            if key == "labels" or value is None:
                continue
            if not isinstance(value, torch.Tensor) or value.dim() < 1 or int(value.shape[0]) != n:
                desc = f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
                raise self.fail(f"sample[{key!r}] must have one row per box ({n}), got {desc}")
        if num_box_classes is not None and num_box_classes <= 0:
            raise self.fail(
                f"validating sample['labels'] needs a positive number of box classes, got {num_box_classes}"
            )
        if n == 0:
            return
        b = boxes.double()
        finite = torch.isfinite(b).all(dim=1)
        ordered = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        inside = torch.ones(n, dtype=torch.bool)
        if size is not None:
            h, w = size
            tol = 1e-3
            inside = (b[:, 0] >= -tol) & (b[:, 1] >= -tol) & (b[:, 2] <= w + tol) & (b[:, 3] <= h + tol)
        limit = num_box_classes if num_box_classes is not None else torch.iinfo(torch.int64).max
        good_label = (labels >= 0) & (labels < limit)
        ok = finite & ordered & inside & good_label
        if bool(ok.all()):
            return
        problems = []
        for i in torch.nonzero(~ok).flatten()[:_MAX_LISTED].tolist():
            why = []
            if not finite[i]:
                why.append("NaN/inf")
            elif not ordered[i]:
                why.append("x2 <= x1 or y2 <= y1")
            elif not inside[i]:
                why.append(f"outside the {size[1]}x{size[0]} (WxH) image")  # type: ignore[index]
            if not good_label[i]:
                why.append(f"label {int(labels[i])} not in [0, {num_box_classes if num_box_classes else 'inf'})")
            problems.append(f"box {i} {[round(v, 3) for v in b[i].tolist()]}: {', '.join(why)}")
        more = f" and {int((~ok).sum()) - _MAX_LISTED} more" if int((~ok).sum()) > _MAX_LISTED else ""
        message = f"has {int((~ok).sum())} bad boxes of {n}: {'; '.join(problems)}{more}"
        fix = "fix the annotations (boxes are x1, y1, x2, y2 pixels inside the image, labels in range) or drop them"
        if not self.sanitize:
            raise self.fail(f"sample['boxes'] {message}; {fix}")
        clipped = b.clone()
        if size is not None:
            clipped[:, 0::2] = clipped[:, 0::2].clamp(0, size[1])
            clipped[:, 1::2] = clipped[:, 1::2].clamp(0, size[0])
        keep = finite & good_label & (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
        log.warning(
            "%s: sample['boxes'] %s; sanitised (clipped to the image, %d dropped)",
            self.where,
            message,
            int((~keep).sum()),
        )
        self.fixed["boxes"] = clipped[keep].to(boxes.dtype)
        for key in BOX_ROW_KEYS:
            if isinstance(self.sample.get(key), torch.Tensor):
                self.fixed[key] = self.sample[key][keep]

    def crowd_boxes(self, size: tuple[int, int] | None) -> None:
        boxes = self._box_tensor("crowd_boxes")
        if not bool(torch.isfinite(boxes).all()):
            raise self.fail("sample['crowd_boxes'] holds NaN/inf; crowd regions must be finite x1, y1, x2, y2 pixels")
