"""KITTI raw loader, calibration and velodyne ground truth on a tiny tree in the real on-disk formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from freqdense.data import create_dataset
from freqdense.data.kitti import (
    STEREO_SCALE_FACTOR,
    KittiFrame,
    KittiRaw,
    generate_split_files,
    read_split_file,
    write_split_file,
)
from freqdense.data.kitti_calib import load_calibration, read_calib_file, read_velodyne, velodyne_depth_map
from freqdense.errors import ConfigError, DataError
from freqdense.metrics.depth import DepthMetrics, crop_mask

H, W = 8, 16
DATE = "2011_09_26"
DRIVE1 = f"{DATE}/{DATE}_drive_0001_sync"
DRIVE2 = f"{DATE}/{DATE}_drive_0002_sync"


def calib_line(key: str, *values: float) -> str:
    """One line as KITTI writes it: ``key: 1.000000e+01 0.000000e+00 ...``."""
    return f"{key}: " + " ".join(f"{v:.6e}" for v in values)


EYE = (1, 0, 0, 0, 1, 0, 0, 0, 1)
# Real key names and number formatting of calib_cam_to_cam.txt; K = [[10, 0, 8], [0, 10, 4]], camera 2 at
# t_x = 0.06 (P[0, 3] = 0.6), camera 3 at t_x = -0.48 (P[0, 3] = -4.8): baseline (0.6 + 4.8) / 10 = 0.54 m.
CAM_TO_CAM = "\n".join(
    [
        "calib_time: 09-Jan-2012 13:57:47",
        calib_line("corner_dist", 9.95e-02),
        calib_line("S_00", 1392, 512),
        calib_line("K_00", 984.2439, 0, 690, 0, 980.8141, 233.1966, 0, 0, 1),
        calib_line("R_rect_00", *EYE),
        calib_line("P_rect_00", 10, 0, 8, 0, 0, 10, 4, 0, 0, 0, 1, 0),
        calib_line("S_rect_02", 16, 8),
        calib_line("R_rect_02", *EYE),
        calib_line("P_rect_02", 10, 0, 8, 0.6, 0, 10, 4, 0, 0, 0, 1, 0),
        calib_line("S_rect_03", 16, 8),
        calib_line("P_rect_03", 10, 0, 8, -4.8, 0, 10, 4, 0, 0, 0, 1, 0),
    ]
)
# Velodyne (x fwd, y left, z up) -> camera 0 (x right, y down, z fwd): cam = (-y, -z, x) + T, T = (0, -0.08, -0.27).
VELO_TO_CAM = "\n".join(
    [
        "calib_time: 15-Mar-2012 11:37:16",
        calib_line("R", 0, -1, 0, 0, 0, -1, 1, 0, 0),
        calib_line("T", 0, -0.08, -0.27),
        calib_line("delta_f", 0, 0),
        calib_line("delta_c", 0, 0),
    ]
)
# Hand projection into camera 2 (P = P_rect_02 @ I @ [R|T]):
#   a (10, 0.5, -0.3): cam0 = (-0.5, 0.22, 9.73); u = (-5 + 77.84 + 0.6) / 9.73 = 7.548 -> round 8 - 1 = 7;
#     v = (2.2 + 38.92) / 9.73 = 4.226 -> 4 - 1 = 3; camera z 9.73, velodyne x 10.
#   b (20, 1.0, -0.6): cam0 = (-1.0, 0.52, 19.73); u = 148.44 / 19.73 = 7.524 -> 7; v = 84.12 / 19.73 = 4.264 -> 3:
#     same pixel as a, farther -> a wins.
#   c (-5, 0, 0): behind the scanner (x < 0) -> dropped.  d (10, -20, 0): u = 278.44 / 9.73 = 28.6 >= W -> dropped.
# Camera 3 (P[0, 3] = -4.8): a gives u = (-5 + 77.84 - 4.8) / 9.73 = 6.993 -> 7 - 1 = 6, v -> 3.
POINTS = np.array([[10, 0.5, -0.3, 0.1], [20, 1.0, -0.6, 0.2], [-5, 0, 0, 0.3], [10, -20, 0, 0.4]], np.float32)


def colour(frame: int, cam: int) -> np.ndarray:
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0] = frame * 40 + cam
    img[..., 1] = np.arange(W, dtype=np.uint8)[None] * 10
    img[..., 2] = 200
    return img


def make_drive(root: Path, folder: str, frames: range, ext: str = "png") -> None:
    drive = root / folder
    for cam in (2, 3):
        (drive / f"image_0{cam}" / "data").mkdir(parents=True, exist_ok=True)
        for f in frames:
            path = drive / f"image_0{cam}" / "data" / f"{f:010d}.{ext}"
            Image.fromarray(colour(f, cam)).save(path, **({"quality": 100} if ext == "jpg" else {}))
    (drive / "velodyne_points" / "data").mkdir(parents=True, exist_ok=True)
    for f in frames:
        POINTS.astype("<f4").tofile(drive / "velodyne_points" / "data" / f"{f:010d}.bin")


@pytest.fixture()
def kitti_root(tmp_path: Path) -> Path:
    root = tmp_path / "kitti_data"
    (root / DATE).mkdir(parents=True)
    (root / DATE / "calib_cam_to_cam.txt").write_text(CAM_TO_CAM)
    (root / DATE / "calib_velo_to_cam.txt").write_text(VELO_TO_CAM)
    make_drive(root, DRIVE1, range(4))
    make_drive(root, DRIVE2, range(3))
    gt = np.zeros((H, W), np.uint16)
    gt[2, 5] = 2560  # 2560 / 256 = 10 m
    gt[6, 1] = 128  # 0.5 m
    gt_dir = root / DRIVE1 / "proj_depth" / "groundtruth" / "image_02"
    gt_dir.mkdir(parents=True)
    Image.fromarray(gt).save(gt_dir / "0000000001.png")
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "train_files.txt").write_text(f"{DRIVE1} 1 l\n# comment\n\n{DRIVE1} 2 r\n")
    (splits / "test_files.txt").write_text(f"{DRIVE1} 0000000001 l\n")
    return root


def test_calibration_parsing_and_baseline(kitti_root: Path) -> None:
    raw = read_calib_file(kitti_root / DATE / "calib_cam_to_cam.txt")
    assert "calib_time" not in raw and raw["S_rect_02"].tolist() == [16.0, 8.0]
    calib = load_calibration(kitti_root / DATE)
    assert calib.image_size == {2: (8, 16), 3: (8, 16)}
    np.testing.assert_allclose(calib.intrinsics(2), [[10, 0, 8], [0, 10, 4], [0, 0, 1]])
    assert calib.baseline == pytest.approx(0.54)
    # monodepth2's stereo factor is this baseline over its 0.1 training baseline.
    assert calib.baseline / 0.1 == pytest.approx(STEREO_SCALE_FACTOR)


def test_calibration_errors_name_the_file(kitti_root: Path) -> None:
    path = kitti_root / DATE / "calib_cam_to_cam.txt"
    path.write_text(CAM_TO_CAM.replace("P_rect_03", "P_rect_99"))
    with pytest.raises(DataError, match=r"calib_cam_to_cam\.txt.*'P_rect_03'"):
        load_calibration(kitti_root / DATE)
    with pytest.raises(DataError, match="calib_velo_to_cam.txt"):
        load_calibration(kitti_root / "2011_09_28")


def test_velodyne_projection_hand_computed(kitti_root: Path) -> None:
    calib = load_calibration(kitti_root / DATE)
    points = read_velodyne(kitti_root / DRIVE1 / "velodyne_points" / "data" / "0000000001.bin")
    np.testing.assert_array_equal(points, POINTS)
    cam2 = velodyne_depth_map(points, calib, 2)
    assert cam2.shape == (H, W) and cam2.dtype == np.float32
    assert np.count_nonzero(cam2) == 1 and cam2[3, 7] == pytest.approx(9.73, abs=1e-5)
    assert velodyne_depth_map(points, calib, 2, forward_depth=True)[3, 7] == pytest.approx(10.0)
    cam3 = velodyne_depth_map(points, calib, 3)
    assert np.count_nonzero(cam3) == 1 and cam3[3, 6] == pytest.approx(9.73, abs=1e-5)


def test_truncated_velodyne_names_file(tmp_path: Path) -> None:
    path = tmp_path / "0000000000.bin"
    path.write_bytes(b"\0" * 20)
    with pytest.raises(DataError, match=r"0000000000\.bin.*multiple of 16"):
        read_velodyne(path)


def test_split_file_parsing_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "test_files.txt"
    path.write_text(
        "2011_09_26/2011_09_26_drive_0002_sync 0000000069 l\n\n2011_09_26/2011_09_26_drive_0022_sync 473 r\n"
    )
    assert read_split_file(path) == [
        KittiFrame("2011_09_26/2011_09_26_drive_0002_sync", 69, "l"),
        KittiFrame("2011_09_26/2011_09_26_drive_0022_sync", 473, "r"),
    ]
    write_split_file(tmp_path / "copy.txt", read_split_file(path))
    assert read_split_file(tmp_path / "copy.txt") == read_split_file(path)
    path.write_text("2011_09_26/2011_09_26_drive_0002_sync 69 l\n2011_09_26_drive_0022_sync 473 x\n")
    with pytest.raises(DataError, match=r"test_files\.txt' line 2"):
        read_split_file(path)


def test_sample_left_with_stereo_temporal_and_velodyne(kitti_root: Path) -> None:
    ds = KittiRaw(root=kitti_root, split="train", split_dir=kitti_root.parent / "splits", stereo=True, depth="velodyne")
    assert len(ds) == 2
    s = ds[0]
    assert s["image"].shape == (3, H, W) and s["image"].dtype == torch.float32
    assert round(float(s["image"][0, 0, 0]) * 255) == 1 * 40 + 2  # frame 1, camera 2
    assert round(float(s["image_prev"][0, 0, 0]) * 255) == 0 * 40 + 2
    assert round(float(s["image_next"][0, 0, 0]) * 255) == 2 * 40 + 2
    assert round(float(s["image_right"][0, 0, 0]) * 255) == 1 * 40 + 3
    torch.testing.assert_close(s["intrinsics"], torch.tensor([[10.0, 0, 8], [0, 10, 4], [0, 0, 1]]))
    assert float(s["baseline"]) == pytest.approx(0.54)
    expected_pose = torch.eye(4)
    expected_pose[0, 3] = -0.54  # a left-camera point is 0.54 m further left seen from the right camera
    torch.testing.assert_close(s["pose_right"], expected_pose)
    assert s["depth"].shape == (1, H, W) and float(s["depth"][0, 3, 7]) == pytest.approx(9.73, abs=1e-5)
    assert s["depth_valid"].dtype == torch.bool and int(s["depth_valid"].sum()) == 1
    assert s["meta"] == {"id": f"{DRIVE1} 0000000001 l", "index": 0, "split": "train"}


def test_sample_right_side_flips_the_stereo_pair(kitti_root: Path) -> None:
    ds = create_dataset("kitti", root=kitti_root, split_dir=kitti_root.parent / "splits", stereo=True, depth="velodyne")
    s = ds[1]  # frame 2, side r: target is camera 3, partner camera 2
    assert round(float(s["image"][0, 0, 0]) * 255) == 2 * 40 + 3
    assert round(float(s["image_right"][0, 0, 0]) * 255) == 2 * 40 + 2
    assert float(s["baseline"]) == pytest.approx(-0.54) and float(s["pose_right"][0, 3]) == pytest.approx(0.54)
    assert float(s["depth"][0, 3, 6]) == pytest.approx(9.73, abs=1e-5)  # projected into camera 3


def test_improved_ground_truth_and_monodepth2_intrinsics(kitti_root: Path) -> None:
    ds = KittiRaw(
        root=kitti_root,
        split_file=kitti_root.parent / "splits" / "test_files.txt",
        temporal=False,
        depth="improved",
        intrinsics="monodepth2",
    )
    s = ds[0]
    assert set(s) == {"image", "intrinsics", "depth", "depth_valid", "meta"}
    assert float(s["depth"][0, 2, 5]) == 10.0 and float(s["depth"][0, 6, 1]) == 0.5
    assert int(s["depth_valid"].sum()) == 2
    torch.testing.assert_close(s["intrinsics"], torch.tensor([[0.58 * 16, 0, 8], [0, 1.92 * 8, 4], [0, 0, 1]]))


def test_missing_files_raise_with_hints(kitti_root: Path, tmp_path: Path) -> None:
    split = tmp_path / "edge.txt"
    split.write_text(f"{DRIVE2} 2 l\n")  # frame 3 does not exist
    with pytest.raises(DataError, match=r"0000000003.*temporal"):
        KittiRaw(root=kitti_root, split_file=split)[0]
    split.write_text(f"{DRIVE2} 1 l\n")
    with pytest.raises(DataError, match=r"proj_depth.*data_depth_annotated"):
        KittiRaw(root=kitti_root, split_file=split, depth="improved")[0]
    with pytest.raises(ConfigError, match="generate_split_files"):
        KittiRaw(root=kitti_root)


def test_jpg_images_found_with_auto_extension(tmp_path: Path) -> None:
    root = tmp_path / "kitti"
    (root / DATE).mkdir(parents=True)
    (root / DATE / "calib_cam_to_cam.txt").write_text(CAM_TO_CAM)
    (root / DATE / "calib_velo_to_cam.txt").write_text(VELO_TO_CAM)
    make_drive(root, DRIVE1, range(3), ext="jpg")
    (tmp_path / "s.txt").write_text(f"{DRIVE1} 1 l\n")
    s = KittiRaw(root=root, split_file=tmp_path / "s.txt")[0]
    assert abs(float(s["image"][2].mean()) * 255 - 200) < 2  # lossy, but the right file
    with pytest.raises(DataError, match=r"\.png"):
        KittiRaw(root=root, split_file=tmp_path / "s.txt", image_ext="png")[0]


def test_generate_split_files_excludes_test_drives(kitti_root: Path, tmp_path: Path) -> None:
    test = tmp_path / "eigen_test.txt"
    test.write_text(f"{DRIVE2} 0000000001 l\n")
    paths = generate_split_files(kitti_root, tmp_path / "gen", exclude_split_file=test, val_fraction=0.25, seed=3)
    train, val = read_split_file(paths["train"]), read_split_file(paths["val"])
    # drive 0001 has frames 0..3: frames 1 and 2 have both neighbours, for each side -> 4 lines, 1 to val.
    assert len(train) == 3 and len(val) == 1
    assert sorted(train + val) == sorted(KittiFrame(DRIVE1, f, s) for f in (1, 2) for s in "lr")
    again = generate_split_files(kitti_root, tmp_path / "gen2", exclude_split_file=test, val_fraction=0.25, seed=3)
    assert read_split_file(again["val"]) == val
    every = generate_split_files(kitti_root, tmp_path / "gen3", val_fraction=0.0)
    assert len(read_split_file(every["train"])) == 6  # + drive 0002 frame 1, both sides


def test_kitti_protocol_on_loaded_ground_truth(kitti_root: Path) -> None:
    ds = KittiRaw(root=kitti_root, split_file=kitti_root.parent / "splits" / "test_files.txt", depth="improved")
    gt = ds[0]["depth"][None]
    # Mono protocol without the Garg crop (flag): a prediction off by a constant factor is perfect after median
    # scaling; both valid pixels (10 m, 0.5 m) are inside the 1e-3..80 cap.
    m = DepthMetrics.from_protocol("kitti_eigen_mono", crop=None)
    m.update(torch.where(gt > 0, gt * 3.0, torch.ones_like(gt)), gt)
    out = m.compute()
    assert out["abs_rel"] == pytest.approx(0.0, abs=1e-12) and out["median_ratio_mean"] == pytest.approx(1 / 3)
    # The Garg crop at 8x16 keeps rows int(0.408 * 8) = 3 .. int(0.992 * 8) = 7: the pixel at row 2 is cut.
    assert not bool(crop_mask(H, W, "garg")[2, 5]) and bool(crop_mask(H, W, "garg")[6, 1])
