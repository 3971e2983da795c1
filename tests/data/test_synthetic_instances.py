"""Instance ids and boxes of the synthetic scenes: agreement with semantic, tight boxes, one id per table, caching."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from freqdense.data.coco import collate_detection
from freqdense.data.synthetic import SyntheticConfig, SyntheticScenes, storage, synthesize
from freqdense.data.synthetic import dataset as dataset_module
from freqdense.data.synthetic.camera import intrinsics, pose_matrix
from freqdense.data.synthetic.classes import CLASSES, IGNORE_INDEX, class_id
from freqdense.data.synthetic.instances import (
    DEFAULT_MIN_AREA,
    STUFF_CLASS_IDS,
    THING_CLASS_IDS,
    instance_boxes,
    scene_instances,
    thing_labels,
)
from freqdense.data.synthetic.primitives import Box, Room, Sphere
from freqdense.data.synthetic.render import GROUP_KEYS, render_group, render_view
from freqdense.data.synthetic.scene import Decal, Light, Scene, SceneObject, generate_scene
from freqdense.data.synthetic.textures import Material
from freqdense.errors import ConfigError, DataError, ShapeError

SIZE = (48, 64)


@pytest.fixture(scope="module")
def records():
    """Encoded target + instance records of 3 val scenes (and the dataset that made them)."""
    ds = SyntheticScenes(split="val", size=SIZE, num_samples=3, modalities=("semantic", "instance"))
    return ds, [ds.record(i) for i in range(len(ds))]


def test_thing_and_stuff_classes_partition_the_classes():
    assert sorted(THING_CLASS_IDS + STUFF_CLASS_IDS) == list(range(len(CLASSES)))
    assert [CLASSES[i] for i in THING_CLASS_IDS] == ["table", "cabinet", "ball", "bin", "pole", "picture"]
    assert [CLASSES[i] for i in STUFF_CLASS_IDS] == ["floor", "wall", "ceiling", "rug"]


def test_instance_ids_agree_with_semantic(records):
    _, recs = records
    things_seen = 0
    for rec in recs:
        instance, semantic, labels = rec["instance"], rec["semantic"], rec["instance_labels"]
        assert instance.dtype == np.int32 and instance.shape == SIZE and labels.dtype == np.uint8
        assert instance.min() >= 0 and instance.max() <= labels.size
        inside = instance > 0
        # every instance pixel's semantic class is its instance's label
        assert np.array_equal(semantic[inside], labels[instance[inside] - 1])
        # stuff and unlabelled pixels have id 0; thing pixels never do
        is_thing = np.isin(semantic, THING_CLASS_IDS)
        assert np.array_equal(inside, is_thing)
        assert (instance[np.isin(semantic, STUFF_CLASS_IDS) | (semantic == IGNORE_INDEX)] == 0).all()
        things_seen += len(np.unique(instance[inside]))
    assert things_seen >= 5  # the check above had something to check


def test_instance_map_comes_from_the_surfaces_the_target_view_hits():
    config = SyntheticConfig()
    for index in range(3):
        scene = generate_scene(config, 0, "train", index)
        K = intrinsics(*SIZE, config.hfov_deg)
        view = render_view(scene, scene.camera_to_world[0], K, SIZE, supersample=config.supersample, shadows=False)
        lut, _ = scene_instances(scene)
        got = render_group("instance", config, SIZE, 0, "train", index, scene=scene)["instance"]
        assert np.array_equal(got, lut[view.surface])


def test_boxes_enclose_their_masks_tightly(records):
    ds, recs = records
    boxes_seen = 0
    for i, rec in enumerate(recs):
        sample = ds[i]
        instance = sample["instance"].numpy()
        assert np.array_equal(instance, rec["instance"])
        boxes, labels, ids = sample["boxes"], sample["labels"], sample["instance_ids"]
        assert boxes.dtype == torch.float32 and labels.dtype == torch.int64 and boxes.shape == (len(ids), 4)
        for (x1, y1, x2, y2), label, k in zip(boxes.int().tolist(), labels.tolist(), ids.tolist()):
            mask = instance == k
            ys, xs = np.nonzero(mask)
            assert (x1, y1, x2, y2) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            assert mask[y1:y2, x1:x2].sum() == mask.sum() >= DEFAULT_MIN_AREA
            # tight: each side of the box touches the mask
            assert mask[y1].any() and mask[y2 - 1].any() and mask[:, x1].any() and mask[:, x2 - 1].any()
            assert THING_CLASS_IDS[label] == rec["instance_labels"][k - 1]
            assert ds.thing_classes[label] == CLASSES[rec["instance_labels"][k - 1]]
            boxes_seen += 1
        # every visible thing with enough pixels has a box, and no other
        counts = np.bincount(instance.reshape(-1), minlength=rec["instance_labels"].size + 1)
        assert sorted(ids.tolist()) == [k for k in range(1, counts.size) if counts[k] >= DEFAULT_MIN_AREA]
    assert boxes_seen >= 5


def test_instance_boxes_hand_computed_and_min_area():
    instance = np.zeros((5, 6), dtype=np.int32)
    instance[1:4, 2] = 1  # a 3 x 1 column: area 3
    instance[0, 0:2] = 2  # two separate pieces of one object: (0, 0), (0, 1) and (4, 5)
    instance[4, 5] = 2
    instance[2:4, 3:5] = 3  # 2 x 2 square
    labels = np.array([class_id("pole"), class_id("table"), class_id("ball")], dtype=np.uint8)
    found = instance_boxes(instance, labels, min_area=1)
    assert found.ids.tolist() == [1, 2, 3]
    assert found.boxes.tolist() == [[2, 1, 3, 4], [0, 0, 6, 5], [3, 2, 5, 4]]
    assert found.class_ids.tolist() == [7, 3, 5] and found.areas.tolist() == [3, 3, 4]
    assert thing_labels(found.class_ids).tolist() == [4, 0, 2]  # pole, table, ball in THING_CLASSES
    with pytest.raises(ShapeError, match=r"\[0, 9\] are not thing classes"):
        thing_labels(np.array([0, 3, 9]))
    kept = instance_boxes(instance, labels)  # default min_area = 4
    assert kept.ids.tolist() == [3] and kept.boxes.tolist() == [[3, 2, 5, 4]]
    empty = instance_boxes(np.zeros((3, 3), np.int32), np.zeros(0, np.uint8))
    assert empty.boxes.shape == (0, 4) and empty.class_ids.shape == (0,)
    with pytest.raises(ShapeError, match="instance_labels"):
        instance_boxes(instance, labels[:2])
    with pytest.raises(ConfigError, match="min_area"):
        instance_boxes(instance, labels, min_area=0)
    with pytest.raises(ConfigError, match="min_area"):
        SyntheticScenes(size=SIZE, num_samples=1, min_area=0)


def test_larger_min_area_drops_small_things(records):
    ds, _ = records
    strict = SyntheticScenes(split="val", size=SIZE, num_samples=3, modalities=("instance",), min_area=60)
    for i in range(3):
        loose_sample, strict_sample = ds[i], strict[i]
        assert set(strict_sample["instance_ids"].tolist()) <= set(loose_sample["instance_ids"].tolist())
        assert torch.equal(strict_sample["instance"], loose_sample["instance"])
        for k in strict_sample["instance_ids"].tolist():
            assert (strict_sample["instance"] == k).sum() >= 60


def _flat(value: float) -> Material:
    return Material(kind="flat", color0=(value,) * 3, color1=(value,) * 3)


def _table(x: float, z: float, instance: int) -> list[SceneObject]:
    top_y, thick, hw, hd, leg = -0.7, 0.04, 0.5, 0.35, 0.1
    parts = [SceneObject(Box((x, top_y + thick / 2, z), (hw, thick / 2, hd)), class_id("table"), 3, instance)]
    leg_h = -top_y - thick
    for sx in (-1, 1):
        for sz in (-1, 1):
            center = (x + sx * (hw - leg / 2), -leg_h / 2, z + sz * (hd - leg / 2))
            parts.append(SceneObject(Box(center, (leg / 2, leg_h / 2, leg / 2)), class_id("table"), 3, instance))
    return parts


def test_a_tables_top_and_legs_share_one_id():
    """Two tables (5 boxes each), a ball, clutter, a picture and a rug, seen from 1 m height."""
    objects = [
        *_table(-0.7, 3.0, instance=0),
        *_table(0.9, 3.2, instance=1),
        SceneObject(Sphere((0.0, -0.25, 2.2), 0.25), class_id("ball"), 3, 2),
        SceneObject(Box((-1.6, -0.1, 2.5), (0.1, 0.1, 0.1)), IGNORE_INDEX, 3, 3),
    ]
    decals = (
        Decal(5, (-0.5, 0.5), (1.0, 1.6), class_id("picture"), 3),
        Decal(0, (-1.0, 1.0), (1.5, 2.5), class_id("rug"), 3),
    )
    pose = pose_matrix(np.eye(3), np.array([0.0, -1.0, 0.0]))
    scene = Scene(
        Room((-3.0, -3.0, -1.0), (3.0, 0.0, 10.0)),
        (_flat(0.5), _flat(0.5), _flat(0.8), _flat(0.3)),
        decals,
        tuple(objects),
        Light((0.0, -2.9, 5.0), (1.0, 1.0, 1.0), intensity=1.0, ambient=0.5),
        {-1: pose, 0: pose, 1: pose},
    )
    lut, labels = scene_instances(scene)
    # surfaces: 6 room faces, picture (6), rug (7), table 0 (8..12), table 1 (13..17), ball (18), clutter (19)
    assert lut.tolist() == [0] * 6 + [1, 0] + [2] * 5 + [3] * 5 + [4, 0]
    assert labels.tolist() == [class_id(n) for n in ("picture", "table", "table", "ball")]

    config = SyntheticConfig(image_noise=0.0)
    K = intrinsics(*SIZE, config.hfov_deg)
    view = render_view(scene, pose, K, SIZE, supersample=config.supersample, shadows=False)
    instance = render_group("instance", config, SIZE, 0, "val", 0, scene=scene)["instance"]
    semantic = render_group("target", config, SIZE, 0, "val", 0, scene=scene)["semantic"]
    for table, surfaces in ((2, range(8, 13)), (3, range(13, 18))):
        visible = set(np.unique(view.surface[instance == table]).tolist())
        assert visible <= set(surfaces)
        assert surfaces[0] in visible and len(visible - {surfaces[0]}) >= 2  # the top and at least two legs
        assert (instance[np.isin(view.surface, list(surfaces))] == table).all()
    assert set(np.unique(instance).tolist()) == {0, 1, 2, 3, 4}
    assert np.array_equal(instance > 0, np.isin(semantic, THING_CLASS_IDS))
    assert (instance[view.surface == 7] == 0).all() and (view.surface == 7).any()  # the rug is stuff


def test_generated_tables_are_one_instance_each():
    for index in range(6):
        scene = generate_scene(SyntheticConfig(), 0, "train", index)
        lut, labels = scene_instances(scene)
        first = 6 + len(scene.decals)
        groups: dict[int, set[int]] = {}
        for k, obj in enumerate(scene.objects):
            groups.setdefault(obj.instance, set()).add(int(lut[first + k]))
        for members in groups.values():
            assert len(members) == 1  # one id per object, whatever its number of primitives
        ids = [lut[first + k] for k, o in enumerate(scene.objects) if o.label != IGNORE_INDEX]
        assert len(set(ids)) == len({o.instance for o in scene.objects if o.label != IGNORE_INDEX})
        assert sorted(set(lut.tolist()) - {0}) == list(range(1, labels.size + 1))


def test_instance_is_opt_in_and_batches_with_the_detection_collate():
    ds = SyntheticScenes(split="val", size=(24, 32), num_samples=2)
    assert "instance" not in ds.modalities and "boxes" not in ds[0]
    ds = SyntheticScenes(split="val", size=(24, 32), num_samples=2, modalities=("image", "labels"))
    assert ds.modalities == ("image", "instance")  # a Sample key selects its modality
    batch = collate_detection([ds[0], ds[1]])
    assert batch["image"].shape == (2, 3, 24, 32) and batch["instance"].shape == (2, 24, 32)
    assert isinstance(batch["boxes"], list)
    assert [len(b) for b in batch["boxes"]] == [len(ds[i]["boxes"]) for i in (0, 1)]


def test_old_caches_gain_only_the_instance_file(tmp_path, monkeypatch):
    SyntheticScenes(split="val", size=(24, 32), num_samples=1, cache_dir=tmp_path, modalities=("image",))[0]
    assert sorted(p.name for p in tmp_path.rglob("*.npz")) == ["000000.target.npz"]  # a cache from before
    rendered: list[str] = []
    original = dataset_module.render_group
    monkeypatch.setattr(
        dataset_module, "render_group", lambda group, *a, **k: rendered.append(group) or original(group, *a, **k)
    )
    ds = SyntheticScenes(
        split="val", size=(24, 32), num_samples=1, cache_dir=tmp_path, modalities=("image", "instance")
    )
    first = ds[0]
    assert rendered == ["instance"]
    assert sorted(p.name for p in tmp_path.rglob("*.npz")) == ["000000.instance.npz", "000000.target.npz"]
    rendered.clear()
    again = ds[0]
    assert rendered == [] and torch.equal(again["instance"], first["instance"])


def test_a_bad_instance_cache_record_is_re_rendered(tmp_path, caplog):
    ds = SyntheticScenes(split="val", size=(24, 32), num_samples=1, cache_dir=tmp_path, modalities=("instance",))
    fresh = ds[0]
    (path,) = tmp_path.rglob("*.instance.npz")
    with np.load(path) as data:
        record = {k: data[k] for k in data.files}
    bad = record["instance"].copy()
    bad[0, 0] = record["instance_labels"].size + 5
    storage.write_record(path, {**record, "instance": bad})
    with caplog.at_level(logging.WARNING):
        again = ds[0]
    assert torch.equal(again["instance"], fresh["instance"])
    assert any(str(path) in r.getMessage() and "instance" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda inst, lab: {"instance": inst.astype(np.int64)}, "'instance' is int64"),
        (lambda inst, lab: {"instance": inst - 1}, "ids in [-1"),
        (lambda inst, lab: {"instance": np.full_like(inst, lab.size + 1)}, "the number of 'instance_labels'"),
        (lambda inst, lab: {"instance_labels": np.where(lab == lab[0], 0, lab).astype(np.uint8)}, "not thing class"),
        (lambda inst, lab: {"instance_labels": lab.astype(np.int64)}, "expected uint8 (M,)"),
        (lambda inst, lab: {"instance_labels": lab[None]}, "expected uint8 (M,)"),
    ],
)
def test_check_record_refuses_bad_instance_arrays(records, change, words):
    _, recs = records
    arrays = {k: recs[0][k] for k in GROUP_KEYS["instance"]}
    storage.check_record(arrays, SIZE, "rec.npz")  # the valid record passes
    with pytest.raises(DataError, match="rec.npz") as info:
        storage.check_record({**arrays, **change(arrays["instance"], arrays["instance_labels"])}, SIZE, "rec.npz")
    assert words in str(info.value)


def test_data_synth_records_hold_the_instance_group(tmp_path):
    synthesize(tmp_path, num_samples=1, split="val", size=(24, 32))
    on_disk = SyntheticScenes(split="val", root=tmp_path, modalities=("instance",))[0]
    rendered = SyntheticScenes(split="val", size=(24, 32), num_samples=1, modalities=("instance",))[0]
    for key in ("instance", "boxes", "labels", "instance_ids"):
        assert torch.equal(on_disk[key], rendered[key])
    # a record written before the instance group: readable without it, a DataError naming the file with it
    path = tmp_path / "val" / "000000.npz"
    with np.load(path) as data:
        old = {k: data[k] for k in data.files if k not in GROUP_KEYS["instance"]}
    storage.write_record(path, old)
    assert "semantic" in SyntheticScenes(split="val", root=tmp_path, modalities=("semantic",))[0]
    with pytest.raises(DataError, match="instance") as info:
        SyntheticScenes(split="val", root=tmp_path, modalities=("instance",))[0]
    assert str(path) in str(info.value)
    # `data synth` on the same directory renders the record again, with the instance group
    synthesize(tmp_path, num_samples=1, split="val", size=(24, 32))
    assert torch.equal(
        SyntheticScenes(split="val", root=tmp_path, modalities=("instance",))[0]["boxes"], rendered["boxes"]
    )
