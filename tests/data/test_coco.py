"""COCO format: RLE / polygon codecs, the panoptic PNG encoding, the synthetic export, the COCODetection loader (and
its bad inputs), the detection collate and COCO evaluation (pycocotools, when installed)."""

from __future__ import annotations

import json
import logging
import math
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from freqdense.cli.main import main
from freqdense.data import DATASETS
from freqdense.data.coco import (
    COCODetection,
    coco,
    collate_detection,
    mask_to_bbox,
    polygons_to_mask,
    rle_decode,
    rle_encode,
    rle_from_string,
    rle_to_string,
    segmentation_to_mask,
)
from freqdense.data.coco_export import (
    coco_categories,
    decode_panoptic,
    encode_panoptic,
    export_coco,
    panoptic_segments,
)
from freqdense.data.io import write_png_atomic
from freqdense.data.synthetic import CLASSES, SyntheticScenes
from freqdense.data.synthetic.instances import STUFF_CLASS_IDS, THING_CLASS_IDS
from freqdense.errors import ConfigError, DataError
from freqdense.metrics.coco_eval import coco_evaluate, detections_to_coco

SIZE = (48, 64)
MASK_3X4 = np.array([[0, 1, 1, 0], [0, 1, 0, 0], [1, 1, 0, 0]], dtype=bool)


# ---------------------------------------------------------------------------------------------------------------
# Codecs


def test_rle_of_a_hand_computed_3x4_mask():
    # column-major: col 0 = 0 0 1, col 1 = 1 1 1, col 2 = 1 0 0, col 3 = 0 0 0 -> runs 0x2, 1x5, 0x5
    rle = rle_encode(MASK_3X4)
    assert rle == {"size": [3, 4], "counts": [2, 5, 5]}
    assert np.array_equal(rle_decode(rle), MASK_3X4)
    assert rle_to_string([2, 5, 5]) == "255"
    # a mask starting with 1 has a leading zero-length run of 0s
    assert rle_encode(np.array([[1, 0], [1, 1]], bool))["counts"] == [0, 2, 1, 1]
    # from the fourth count on the string stores differences: 1 - 3 = -2 -> 30 + 48 = 'N'
    assert rle_to_string([2, 3, 1, 1, 5]) == "231N4" and rle_from_string("231N4") == [2, 3, 1, 1, 5]
    decoded = rle_decode({"size": [3, 4], "counts": "231N4"})
    assert decoded.tolist() == [[0, 1, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0]]
    assert mask_to_bbox(MASK_3X4) == [0, 0, 3, 3] and mask_to_bbox(np.zeros((2, 2), bool)) == [0, 0, 0, 0]


@pytest.mark.parametrize("shape", [(1, 1), (3, 4), (7, 5), (16, 33)])
def test_rle_round_trips(shape):
    rng = np.random.default_rng(sum(shape))
    masks = [np.zeros(shape, bool), np.ones(shape, bool)] + [rng.random(shape) < p for p in (0.1, 0.5, 0.9)]
    for mask in masks:
        rle = rle_encode(mask)
        assert sum(rle["counts"]) == mask.size and all(c > 0 for c in rle["counts"][1:])
        assert np.array_equal(rle_decode(rle), mask)
        text = rle_to_string(rle["counts"])
        assert rle_from_string(text) == rle["counts"]
        assert np.array_equal(rle_decode({"size": list(shape), "counts": text}), mask)
        assert np.array_equal(rle_decode({"size": list(shape), "counts": text.encode()}), mask)
    # large counts take several 5-bit groups
    assert rle_from_string(rle_to_string([0, 100000, 3, 99999])) == [0, 100000, 3, 99999]


@pytest.mark.parametrize(
    ("rle", "words"),
    [
        ({"size": [3, 4], "counts": [2, 5, 4]}, "add up to 11"),
        ({"size": [3, 4], "counts": [2, -5, 15]}, "negative"),
        ({"size": [3], "counts": [12]}, "'size'"),
        ({"size": [3, 4], "counts": "25~"}, "character"),
        ({"size": [3, 4], "counts": "2P"}, "middle"),
        ({"size": [3, 4], "counts": [1.5, 10.5]}, "list of integers"),
        ({"counts": [12]}, "'size' and 'counts'"),
    ],
)
def test_bad_rle_is_a_data_error(rle, words):
    with pytest.raises(DataError, match="ann 7") as info:
        rle_decode(rle, where="ann 7")
    assert words in str(info.value)


def test_polygon_rasterisation_hand_computed():
    # pixel (x, y) covers [x, x + 1) x [y, y + 1): the rectangle [0, 3] x [0, 2] holds the 3 x 2 pixels at its corner
    rect = polygons_to_mask([[0, 0, 3, 0, 3, 2, 0, 2]], 4, 5)
    assert rect.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    # centres on an edge: (0.5, 0.5) - (3.5, 2.5) keeps x, y in (0.5, 3.5] x (0.5, 2.5]
    half = polygons_to_mask([[0.5, 0.5, 3.5, 0.5, 3.5, 2.5, 0.5, 2.5]], 4, 5)
    assert np.argwhere(half).tolist() == [[1, 1], [1, 2], [1, 3], [2, 1], [2, 2], [2, 3]]
    # a right triangle (0, 0), (4, 0), (0, 4): centre (x + .5, y + .5) inside when x + y + 1 <= 4 (the centres on
    # the hypotenuse have the edge on their right, so they count)
    tri = polygons_to_mask([[0, 0, 4, 0, 0, 4]], 5, 5)
    expected = np.array([[x + y + 1 <= 4 for x in range(5)] for y in range(5)])
    assert np.array_equal(tri, expected)
    # a union of two polygons; polygons sharing an edge share no pixel; clipping at the image border
    left, right = [0, 0, 2, 0, 2, 3, 0, 3], [2, 0, 4, 0, 4, 3, 2, 3]
    a, b = polygons_to_mask([left], 3, 4), polygons_to_mask([right], 3, 4)
    assert not (a & b).any() and np.array_equal(polygons_to_mask([left, right], 3, 4), a | b) and (a | b).all()
    assert polygons_to_mask([[-5, -5, 50, -5, 50, 50, -5, 50]], 3, 4).all()
    assert np.array_equal(segmentation_to_mask([left], 3, 4), a)
    with pytest.raises(DataError, match="polygon 0 has 4 coordinates"):
        polygons_to_mask([[0, 0, 1, 1]], 3, 4)
    with pytest.raises(DataError, match="non-finite"):
        polygons_to_mask([[0, 0, 1, math.nan, 2, 2]], 3, 4)
    with pytest.raises(DataError, match="differs from the image"):
        segmentation_to_mask(rle_encode(MASK_3X4), 4, 3, where="ann 1")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools vs numpy 2
def test_polygons_agree_with_pycocotools_except_next_to_edges():
    mask_utils = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(0)
    h, w = 40, 50
    differ = total = 0
    for _ in range(60):
        n = int(rng.integers(3, 9))
        centre, radius = rng.uniform([5, 5], [w - 5, h - 5]), rng.uniform(3, 15)
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        scale = rng.uniform(0.5, 1, n)
        pts = np.stack([centre[0] + radius * scale * np.cos(angles), centre[1] + radius * scale * np.sin(angles)], 1)
        poly = pts.reshape(-1).tolist()
        ours = polygons_to_mask([poly], h, w)
        ref = mask_utils.decode(mask_utils.frPyObjects([poly], h, w))[..., 0].astype(bool)
        ys, xs = np.nonzero(ours != ref)
        centres = np.stack([xs + 0.5, ys + 0.5], 1)
        for p in centres:  # every disagreement sits within 0.2 px of an edge (pycocotools rounds to 1/5 px)
            a, b = pts, np.roll(pts, -1, axis=0)
            t = np.clip(np.einsum("ij,ij->i", p - a, b - a) / np.einsum("ij,ij->i", b - a, b - a), 0, 1)
            assert np.min(np.linalg.norm(p - (a + t[:, None] * (b - a)), axis=1)) < 0.2
        differ, total = differ + len(xs), total + int(ref.sum())
    assert differ < 0.05 * total


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools vs numpy 2
def test_rle_agrees_with_pycocotools():
    mask_utils = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(1)
    for shape in [(3, 4), (9, 7), (20, 31)]:
        mask = rng.random(shape) < 0.4
        ref = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        ours = rle_encode(mask)
        assert rle_to_string(ours["counts"]) == ref["counts"].decode()
        assert mask_utils.frPyObjects(ours, *shape)["counts"] == ref["counts"]
        assert mask_to_bbox(mask) == mask_utils.toBbox(ref).astype(int).tolist()


def test_panoptic_png_id_round_trip(tmp_path):
    # 1234567 = 135 + 256 * 214 + 256^2 * 18
    assert encode_panoptic(np.array([[1234567]])).tolist() == [[[135, 214, 18]]]
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 256**3, size=(5, 7))
    ids[0, 0], ids[0, 1] = 0, 256**3 - 1
    write_png_atomic(encode_panoptic(ids), tmp_path / "pan.png")
    with Image.open(tmp_path / "pan.png") as img:
        assert img.mode == "RGB"
        assert np.array_equal(decode_panoptic(np.asarray(img)), ids)
    with pytest.raises(DataError, match="256"):
        encode_panoptic(np.array([[256**3]]))


def test_panoptic_segments_hand_computed():
    floor, wall, ball, table = (CLASSES.index(n) for n in ("floor", "wall", "ball", "table"))
    semantic = np.array([[wall, wall, ball, ball], [floor, table, ball, ball], [floor, floor, 255, floor]], np.uint8)
    instance = np.array([[0, 0, 2, 2], [0, 1, 2, 2], [0, 0, 0, 0]], np.int32)
    ids, segments = panoptic_segments(semantic, instance, np.array([table, ball], np.uint8), min_area=2)
    # the 1-pixel table is void (min_area 2); stuff ids start after the 2 instances: floor 3, wall 4
    assert ids.tolist() == [[4, 4, 2, 2], [3, 0, 2, 2], [3, 3, 0, 3]]
    assert segments == [
        {"id": 2, "category_id": ball + 1, "isthing": 1, "iscrowd": 0, "bbox": [2, 0, 2, 2], "area": 4},
        {"id": 3, "category_id": floor + 1, "isthing": 0, "iscrowd": 0, "bbox": [0, 1, 4, 2], "area": 4},
        {"id": 4, "category_id": wall + 1, "isthing": 0, "iscrowd": 0, "bbox": [0, 0, 2, 1], "area": 2},
    ]


# ---------------------------------------------------------------------------------------------------------------
# The synthetic export, read back


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("coco")
    ds = SyntheticScenes(split="val", size=SIZE, num_samples=3, modalities=("image", "semantic", "instance"))
    paths = export_coco(ds, out)
    return ds, out, paths


def test_export_layout_and_categories(exported):
    ds, out, paths = exported
    assert sorted(p.name for p in (out / "val").iterdir()) == ["000000.png", "000001.png", "000002.png"]
    assert sorted(p.name for p in (out / "panoptic_val").iterdir()) == ["000000.png", "000001.png", "000002.png"]
    data = json.loads(paths["instances"].read_text())
    assert [c["id"] for c in data["categories"]] == [i + 1 for i in THING_CLASS_IDS]
    assert [c["name"] for c in data["categories"]] == ["table", "cabinet", "ball", "bin", "pole", "picture"]
    assert data["images"][1] == {"id": 2, "file_name": "000001.png", "height": 48, "width": 64}
    assert [a["id"] for a in data["annotations"]] == list(range(1, len(data["annotations"]) + 1))
    pan = json.loads(paths["panoptic"].read_text())
    assert len(pan["categories"]) == len(CLASSES) == len(coco_categories(panoptic=True))
    assert {c["name"]: c["isthing"] for c in pan["categories"]}["rug"] == 0


def test_export_loads_back_through_coco_detection(exported):
    ds, out, paths = exported
    loaded = coco(root=out, split="val", with_masks=True)
    assert len(loaded) == len(ds) and loaded.category_ids == [i + 1 for i in THING_CLASS_IDS]
    data = json.loads(paths["instances"].read_text())
    for i in range(len(ds)):
        want, got = ds[i], loaded[i]
        assert torch.equal(got["image"], want["image"])  # PNG is lossless
        assert torch.equal(got["boxes"], want["boxes"])
        assert torch.equal(got["labels"], want["labels"]) and loaded.classes == ds.thing_classes
        masks = [want["instance"] == k for k in want["instance_ids"].tolist()]
        assert len(got["masks"]) == len(masks) and all(torch.equal(a, b) for a, b in zip(got["masks"], masks))
        assert got["crowd_boxes"].shape == (0, 4) and int(got["image_id"]) == i + 1
        anns = [a for a in data["annotations"] if a["image_id"] == i + 1]
        assert [a["area"] for a in anns] == [int((want["instance"] == k).sum()) for k in want["instance_ids"].tolist()]
        assert all(a["iscrowd"] == 0 and a["segmentation"]["size"] == list(SIZE) for a in anns)


def test_export_panoptic_pngs_cover_the_semantic_map(exported):
    ds, out, paths = exported
    pan = json.loads(paths["panoptic"].read_text())
    for i, entry in enumerate(pan["annotations"]):
        sample = ds[i]
        with Image.open(out / "panoptic_val" / entry["file_name"]) as img:
            ids = decode_panoptic(np.asarray(img))
        semantic, instance = sample["semantic"].numpy(), sample["instance"].numpy()
        segment_ids = [s["id"] for s in entry["segments_info"]]
        assert len(set(segment_ids)) == len(segment_ids) and 0 not in segment_ids
        assert set(np.unique(ids).tolist()) - {0} == set(segment_ids)
        for seg in entry["segments_info"]:
            mask = ids == seg["id"]
            assert int(mask.sum()) == seg["area"] and mask_to_bbox(mask) == seg["bbox"]
            assert (semantic[mask] == seg["category_id"] - 1).all()
            assert seg["isthing"] == (seg["category_id"] - 1 in THING_CLASS_IDS)
            if seg["isthing"]:
                assert np.array_equal(mask, instance == seg["id"])
        stuff = np.isin(semantic, STUFF_CLASS_IDS)
        assert (ids[stuff] > 0).all() and (ids[semantic == 255] == 0).all()
        assert {s["id"] for s in entry["segments_info"] if s["isthing"]} == set(sample["instance_ids"].tolist())


def test_cli_synth_coco(tmp_path, capsys):
    args = ["--num", "2", "--size", "24", "32", "--split", "val"]
    assert main(["data", "synth", "--coco", str(tmp_path / "c"), *args]) == 0
    assert "COCO" in capsys.readouterr().out
    assert (tmp_path / "c" / "annotations" / "instances_val.json").is_file()
    assert (tmp_path / "c" / "panoptic_val" / "000001.png").is_file()
    # with --out too: the .npz directory and the same COCO files, read back from it
    assert main(["data", "synth", "--out", str(tmp_path / "n"), "--coco", str(tmp_path / "d"), *args]) == 0
    assert (tmp_path / "n" / "val" / "000001.npz").is_file()
    first, second = (json.loads((tmp_path / d / "annotations" / "instances_val.json").read_text()) for d in "cd")
    assert first["annotations"] == second["annotations"] and first["annotations"]
    with pytest.raises(ConfigError, match="--out DIR.*--coco DIR"):
        from freqdense.cli.data_cmd import run_synth
        from freqdense.cli.main import build_parser

        run_synth(build_parser().parse_args(["data", "synth", "--num", "1"]))


# ---------------------------------------------------------------------------------------------------------------
# COCODetection on hand-written files, and its bad inputs


def _write_coco(root, annotations, *, images=None, categories=None, sizes=((6, 8), (5, 7))):
    (root / "imgs").mkdir(parents=True, exist_ok=True)
    if images is None:
        images = [{"id": 10 + k, "file_name": f"im{k}.png", "height": h, "width": w} for k, (h, w) in enumerate(sizes)]
    for img in images:
        pixels = np.full((img["height"], img["width"], 3), 10 * img["id"] % 256, np.uint8)
        Image.fromarray(pixels).save(root / "imgs" / img["file_name"])
    if categories is None:
        categories = [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}]
    path = root / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def _ann(ann_id, image_id, category_id, bbox, **extra):
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": bbox, "iscrowd": 0, **extra}


def test_coco_detection_targets(tmp_path, caplog):
    anns = [
        _ann(1, 10, 7, [1, 2, 3, 2]),
        _ann(2, 10, 3, [6, 4, 5, 5]),  # reaches past the right / bottom border: clipped to x2 = 8, y2 = 6
        _ann(3, 10, 7, [0, 0, 8, 6], iscrowd=1),
        _ann(4, 10, 3, [2, 2, 0, 3]),  # w = 0
        _ann(5, 10, 3, [2, 2, 3, -1]),  # h < 0
        _ann(6, 10, 3, [20, 1, 3, 3]),  # entirely right of the image
    ]
    path = _write_coco(tmp_path, anns)
    with caplog.at_level(logging.WARNING):
        ds = COCODetection(path, tmp_path / "imgs")
    assert ds.category_ids == [3, 7] and ds.classes == ("dog", "cat") and len(ds) == 2
    assert ds.dropped_annotations == [4, 5, 6]
    assert any("dropped 3 annotations" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)
    s = ds[0]
    assert s["boxes"].tolist() == [[1, 2, 4, 4], [6, 4, 8, 6]] and s["labels"].tolist() == [1, 0]
    assert s["crowd_boxes"].tolist() == [[0, 0, 8, 6]] and s["annotation_ids"].tolist() == [1, 2]
    assert s["image"].shape == (3, 6, 8) and int(s["image_id"]) == 10 and s["meta"]["id"] == "im0.png"
    empty = ds[1]  # no annotations: kept, with (0, 4) boxes
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,) and empty["image"].shape == (3, 5, 7)
    assert len(COCODetection(path, tmp_path / "imgs", filter_empty=True)) == 1
    assert len(COCODetection(path, tmp_path / "imgs", num_samples=1)) == 1
    batch = collate_detection([ds[0], ds[1]])
    assert batch["image"].shape == (2, 3, 6, 8) and batch["image_size"].tolist() == [[6, 8], [5, 7]]
    assert torch.equal(batch["image"][1, :, :5, :7], ds[1]["image"]) and (batch["image"][1, :, 5:] == 0).all()
    assert [len(b) for b in batch["boxes"]] == [2, 0] and batch["image_id"].tolist() == [10, 11]
    with pytest.raises(DataError, match="empty batch"):
        collate_detection([])


def test_coco_detection_masks(tmp_path):
    rle = rle_encode(np.pad(MASK_3X4, ((1, 2), (2, 2))))  # (6, 8)
    anns = [
        _ann(1, 10, 7, [2, 1, 3, 3], segmentation=rle),
        _ann(2, 10, 3, [0, 0, 3, 2], segmentation=[[0, 0, 3, 0, 3, 2, 0, 2]]),
        _ann(3, 10, 3, [0, 0, 8, 6], iscrowd=1, segmentation={"size": [6, 8], "counts": [0, 48]}),
    ]
    ds = COCODetection(_write_coco(tmp_path, anns), tmp_path / "imgs", with_masks=True)
    masks = ds[0]["masks"]
    assert masks.shape == (2, 6, 8) and masks.dtype == torch.bool
    assert np.array_equal(masks[0].numpy()[1:4, 2:6], MASK_3X4) and masks[0].sum() == MASK_3X4.sum()
    assert masks[1].sum() == 6 and masks[1, :2, :3].all()
    assert ds[1]["masks"].shape == (0, 5, 7)


def test_coco_bad_inputs_name_the_file_and_the_fix(tmp_path):
    def build(anns, **kw):
        return COCODetection(_write_coco(tmp_path, anns, **kw), tmp_path / "imgs")

    with pytest.raises(DataError) as info:
        build([_ann(41, 10, 7, [0, 0, 2, 2]), _ann(42, 10, 5, [0, 0, 2, 2])])
    assert all(w in str(info.value) for w in ("instances.json", "annotation id 42", "category_id 5", "[3, 7]"))
    with pytest.raises(DataError, match="annotation id 9 refers to image_id 99"):
        build([_ann(9, 99, 7, [0, 0, 2, 2])])
    with pytest.raises(DataError, match="annotation id 8 has bbox"):
        build([_ann(8, 10, 7, [0, 0, 2])])
    with pytest.raises(DataError, match="annotation id 8 has bbox"):
        build([_ann(8, 10, 7, [0, 0, math.inf, 2])])
    with pytest.raises(DataError, match="category id 3 appears twice"):
        build([], categories=[{"id": 3, "name": "a"}, {"id": 3, "name": "b"}])
    with pytest.raises(DataError, match="'categories' is empty"):
        build([], categories=[])
    (tmp_path / "zero.json").write_text(
        json.dumps({"images": [{"id": 1, "file_name": "a.png", "height": 0, "width": 4}], "annotations": [],
                    "categories": [{"id": 1, "name": "a"}]})
    )  # fmt: skip
    with pytest.raises(DataError, match="zero.json.*image id 1 needs.*'height', 'width'"):
        COCODetection(tmp_path / "zero.json", tmp_path / "imgs")
    # a missing image file: named when the sample is read
    ds = build([])
    (tmp_path / "imgs" / "im1.png").unlink()
    with pytest.raises(DataError, match="im1.png"):
        ds[1]
    # an image whose size disagrees with the JSON
    Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(tmp_path / "imgs" / "im1.png")
    with pytest.raises(DataError, match="im1.png.*3x3.*5x7"):
        ds[1]
    # files and folders
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(DataError, match="broken.json"):
        COCODetection(tmp_path / "broken.json", tmp_path / "imgs")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(DataError, match="list.json"):
        COCODetection(tmp_path / "list.json", tmp_path / "imgs")
    (tmp_path / "noann.json").write_text(json.dumps({"images": [], "categories": []}))
    with pytest.raises(DataError, match="'annotations'"):
        COCODetection(tmp_path / "noann.json", tmp_path / "imgs")
    with pytest.raises(DataError, match="missing.json"):
        COCODetection(tmp_path / "missing.json", tmp_path / "imgs")
    with pytest.raises(DataError, match="nowhere"):
        COCODetection(tmp_path / "instances.json", tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="root=DIR"):
        coco(split="val")
    with pytest.raises(ConfigError, match="num_samples"):
        COCODetection(tmp_path / "instances.json", tmp_path / "imgs", num_samples=-1)
    # masks: a missing segmentation and an RLE of another size name the annotation
    with pytest.raises(DataError, match="annotation id 5 has no 'segmentation'"):
        COCODetection(_write_coco(tmp_path, [_ann(5, 10, 7, [0, 0, 2, 2])]), tmp_path / "imgs", with_masks=True)[0]
    bad = _ann(6, 10, 7, [0, 0, 2, 2], segmentation=rle_encode(MASK_3X4))
    with pytest.raises(DataError, match="annotation id 6.*differs from the image"):
        COCODetection(_write_coco(tmp_path, [bad]), tmp_path / "imgs", with_masks=True)[0]


def test_coco_is_registered():
    assert DATASETS.get("coco") is coco


# ---------------------------------------------------------------------------------------------------------------
# Evaluation


def _one_box_gt() -> dict:
    return {
        "images": [{"id": 1, "file_name": "a.png", "height": 20, "width": 20}],
        "annotations": [_ann(1, 1, 3, [0, 0, 10, 10], area=100)],
        "categories": [{"id": 3, "name": "dog"}],
    }


def test_coco_evaluate_without_pycocotools_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    monkeypatch.setitem(sys.modules, "pycocotools.coco", None)
    with pytest.raises(ImportError, match=r"pip install freqdense\[coco\]"):
        coco_evaluate(_one_box_gt(), [])


def test_detections_to_coco():
    dets = detections_to_coco(4, torch.tensor([[1.0, 2.0, 5.0, 4.0]]), torch.tensor([0.5]), torch.tensor([1]), [3, 9])
    assert dets == [{"image_id": 4, "category_id": 9, "bbox": [1.0, 2.0, 4.0, 2.0], "score": 0.5}]
    with pytest.raises(DataError, match="2 categories"):
        detections_to_coco(4, np.zeros((1, 4)), [0.5], [2], [3, 9])


def test_coco_evaluate_hand_computed():
    pytest.importorskip("pycocotools")
    gt = _one_box_gt()
    # IoU 0.62: a match at the thresholds 0.50, 0.55, 0.60 only -> AP = 3 / 10; the object is small (area < 32^2)
    result = coco_evaluate(gt, [{"image_id": 1, "category_id": 3, "bbox": [0, 0, 10, 6.2], "score": 0.9}])
    assert result == pytest.approx({"AP": 0.3, "AP50": 1.0, "AP75": 0.0, "APs": 0.3, "APm": -1.0, "APl": -1.0})
    assert coco_evaluate(gt, [])["AP"] == 0.0
    with pytest.raises(DataError, match="category_id 4"):
        coco_evaluate(gt, [{"image_id": 1, "category_id": 4, "bbox": [0, 0, 1, 1], "score": 0.9}])
    with pytest.raises(DataError, match="image_id 2"):
        coco_evaluate(gt, [{"image_id": 2, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 0.9}])
    with pytest.raises(ConfigError, match="iou_type"):
        coco_evaluate(gt, [], iou_type="keypoints")


def test_coco_evaluate_on_the_synthetic_export(exported):
    pytest.importorskip("pycocotools")
    ds, out, paths = exported
    loaded = coco(root=out, split="val", with_masks=True)
    perfect, segm, shifted = [], [], []
    for i in range(len(loaded)):
        s = loaded[i]
        scores = torch.linspace(1.0, 0.5, len(s["boxes"]))
        perfect += detections_to_coco(int(s["image_id"]), s["boxes"], scores, s["labels"], loaded.category_ids)
        shifted += detections_to_coco(int(s["image_id"]), s["boxes"] + 3, scores, s["labels"], loaded.category_ids)
        for det, mask in zip(perfect[-len(s["boxes"]) :] if len(s["boxes"]) else [], s["masks"]):
            segm.append({**det, "segmentation": rle_encode(mask.numpy())})
    assert coco_evaluate(paths["instances"], perfect)["AP"] == pytest.approx(1.0)
    assert coco_evaluate(paths["instances"], segm, iou_type="segm")["AP"] == pytest.approx(1.0)
    assert coco_evaluate(paths["instances"], shifted)["AP"] < 0.9
