"""Tests for the raw dataset readers, on small trees in each layout (tests/raw_fixtures.py).

Each layout test checks the index against the fixture's ground truth frame by frame, and also
against hand-counted totals, so a fixture and reader that drift together still fail.
"""
import os
import re

import cv2
import numpy as np
import pytest

from data_pipeline import raw_sources as rs
from data_pipeline import video_io
from data_pipeline.au_sets import AU_SETS
from data_pipeline.errors import UserError
from tests import raw_fixtures as rf


def _problems(problems, root):
  return sorted((p.reason, os.path.relpath(p.path, root), p.frames) for p in problems)


def _counts(index):
  frames = [f for s in index.sequences for f in s.frames]
  return {"sequences": len(index.sequences), "frames": len(frames),
          "landmarks": sum(f.landmarks is not None for f in frames),
          "unknown labels": int(sum((f.labels == -1).sum() for f in frames))}


def _check_index(index, truth, dataset):
  """Every kept frame of the truth, once, with its subject, labels and landmarks."""
  assert index.aus == AU_SETS[dataset]
  found = {(s.sequence, f.frame): (s, f) for s in index.sequences for f in s.frames}
  assert sorted(found) == sorted((t.sequence, t.frame) for t in truth.kept())
  for t in truth.kept():
    seq, f = found[(t.sequence, t.frame)]
    assert seq.subject == t.subject
    assert f.labels.dtype == np.int8
    np.testing.assert_array_equal(f.labels, t.labels, err_msg=f"{t.sequence} {t.frame}")
    if t.intensity is None:
      assert f.intensity is None
    else:
      np.testing.assert_array_equal(f.intensity, t.intensity)
    if t.landmark_points:
      assert f.landmarks.shape == (68, 2) and f.landmarks.dtype == np.float32
      given = rf.POINT_INDEX[t.landmark_points]
      np.testing.assert_allclose(f.landmarks[given], t.landmarks[given], atol=1e-3)
    else:
      assert f.landmarks is None, (t.sequence, t.frame)
  for seq in index.sequences:
    assert [f.frame for f in seq.frames] == sorted(f.frame for f in seq.frames)
  assert index.subject_group == truth.subject_group
  assert _problems(index.problems, truth.root) == sorted(truth.problems)


def _check_images(index, truth):
  """read_images yields every frame in order: the written pixels, or None and the problems."""
  images, problems = {}, []
  for seq in index.sequences:
    yielded = list(rs.read_images(seq))
    assert [f.frame for f, _, _ in yielded] == [f.frame for f in seq.frames]
    for f, image, problem in yielded:
      images[(seq.sequence, f.frame)] = image
      problems += [problem] if problem else []
  for t in truth.kept():
    image = images[(t.sequence, t.frame)]
    if t.unreadable:
      assert image is None, (t.sequence, t.frame)
    else:
      assert image.shape == (rf.SIZE, rf.SIZE, 3) and image.dtype == np.uint8
      assert rf.frame_tag(image) == rf.frame_tag(t.rgb), (t.sequence, t.frame)
      assert np.abs(image.astype(float) - t.rgb).mean() < 6, (t.sequence, t.frame)  # Lossy.
  assert _problems(problems, truth.root) == sorted(truth.read_problems)
  return sum(image is not None for image in images.values())


def test_bp4d_raw(tmp_path):
  truth = rf.write_bp4d_raw(str(tmp_path))
  index = rs.discover("bp4d", str(tmp_path))
  assert index.layout == "bp4d_raw"
  assert _counts(index) == {"sequences": 7, "frames": 33, "landmarks": 25, "unknown labels": 7}
  _check_index(index, truth, "bp4d")
  assert _check_images(index, truth) == 32
  f001 = next(s for s in index.sequences if s.sequence == "F001/T1")
  assert f001.frames[1].labels[AU_SETS["bp4d"].index(2)] == -1  # The 9.
  assert f001.frames[0].image == os.path.join(str(tmp_path), "F001", "T1", "2440.jpg")
  assert f001.video is None and f001.frames[0].video_index is None


def test_image_gone_after_discovery_is_reported_by_read_images(tmp_path):
  rf.write_bp4d_raw(str(tmp_path))
  index = rs.discover("bp4d", str(tmp_path))
  seq = next(s for s in index.sequences if s.sequence == "F015/T1")
  os.remove(seq.frames[2].image)
  results = list(rs.read_images(seq))
  assert [image is None for _, image, _ in results] == [False, False, True, False, False]
  problem = results[2][2]
  assert (problem.reason, problem.path, problem.frames) == ("missing image", seq.frames[2].image, 1)


def test_disfa_raw(tmp_path):
  truth = rf.write_disfa_raw(str(tmp_path))
  index = rs.discover("disfa", str(tmp_path))
  assert index.layout == "disfa_raw"
  assert _counts(index) == {"sequences": 6, "frames": 48, "landmarks": 39, "unknown labels": 9}
  _check_index(index, truth, "disfa")
  assert _check_images(index, truth) == 48 - 3 - 8
  by_name = {s.sequence: s for s in index.sequences}
  sn001 = by_name["SN001"]
  assert sn001.video.endswith(os.path.join("Videos_LeftCamera", "LeftVideoSN001_comp.avi"))
  assert [f.video_index for f in sn001.frames] == list(range(8))  # Label frame 1 = video index 0.
  assert [f.frame for f in sn001.frames] == list(range(1, 9))
  # Frame folders: numbered from 0 like the video when a 0 exists, else from 1 like the labels.
  assert os.path.basename(by_name["SN002"].frames[0].image) == "0.png"
  assert os.path.basename(by_name["SN006"].frames[0].image) == "1.jpg"
  assert by_name["SN002"].video is None and by_name["SN002"].frames[0].video_index is None
  bad_row = next(p for p in index.problems if p.reason == "bad label row")
  assert bad_row.message.startswith("line 4: expected 'frame,intensity' with integers")
  assert "got '4,x'" in bad_row.message
  # DISFA occurrence is intensity >= 2; the unknowns are -1 in both.
  frames = [f for s in index.sequences for f in s.frames]
  for f in frames:
    np.testing.assert_array_equal(f.labels, np.where(f.intensity < 0, -1, f.intensity >= 2))
  assert any(f.labels.max() == 1 for f in frames) and any(f.labels.min() == 0 for f in frames)


def test_bp4d_lists(tmp_path):
  truth = rf.write_bp4d_lists(str(tmp_path))
  index = rs.discover("bp4d", str(tmp_path))
  assert index.layout == "lists"
  assert _counts(index) == {"sequences": 7, "frames": 27, "landmarks": 0, "unknown labels": 1}
  _check_index(index, truth, "bp4d")
  assert _check_images(index, truth) == 27
  mismatch = next(p for p in index.problems if p.reason == "list length mismatch")
  assert "BP4D_train_img_path_fold3.txt" in mismatch.message
  assert "BP4D_train_label_fold3.txt" in mismatch.message


def test_gft_lists_with_one_fold_split_train_and_test(tmp_path):
  truth = rf.write_gft_lists(str(tmp_path))
  index = rs.discover("gft", str(tmp_path))
  assert (index.layout, index.aus) == ("lists", AU_SETS["gft"])
  assert _counts(index) == {"sequences": 5, "frames": 15, "landmarks": 0, "unknown labels": 0}
  assert index.subject_group == {"001A": "train", "002B": "train", "003C": "train",
                                 "004A": "test", "005B": "test"}
  _check_index(index, truth, "gft")


def test_gft_csv(tmp_path):
  truth = rf.write_gft_csv(str(tmp_path))
  index = rs.discover("gft", str(tmp_path))
  assert index.layout == "csv"
  assert _counts(index) == {"sequences": 6, "frames": 23, "landmarks": 22, "unknown labels": 3}
  _check_index(index, truth, "gft")
  assert _check_images(index, truth) == 23
  bad_row = next(p for p in index.problems if p.reason == "bad row")
  assert bad_row.message.startswith("line 26: frame 'x9' is not an integer")


def test_csv_layout_wins_over_raw_and_falls_back_on_the_standard_partition(tmp_path):
  root = str(tmp_path)
  rf.write_bp4d_raw(root)
  image = np.full((rf.SIZE, rf.SIZE, 3), 128, np.uint8)
  for rel in ("mine/a/1.jpg", "mine/b/1.jpg", "mine/c/1.jpg"):
    os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
    cv2.imwrite(os.path.join(root, rel), image)
  aus = ",".join(f"AU{au}" for au in AU_SETS["bp4d"][:-1])  # No AU24 column.
  with open(os.path.join(root, "frames.csv"), "w") as f:
    f.write(f"path,subject,sequence,frame,{aus}\n"
            f"mine/a/1.jpg,M007,T8,1,{','.join(['1'] * 11)}\n"
            f"mine/b/1.jpg,F014,T8,1,{','.join(['0'] * 11)}\n"
            f"mine/c/1.jpg,X999,T8,1,{','.join(['0'] * 11)}\n")
  index = rs.discover("bp4d", root)
  assert index.layout == "csv"
  assert [s.sequence for s in index.sequences] == ["F014/T8", "M007/T8"]
  assert index.subject_group == {"F014": "3", "M007": "1"}
  assert index.sequences[1].frames[0].labels.tolist() == [1] * 11 + [-1]
  assert _problems(index.problems, root) == [
      ("missing AU column", "frames.csv", 0),
      ("subject not in the standard partition", "frames.csv", 1)]


def test_gft_csv_without_part_column_is_fatal(tmp_path):
  rf.write_gft_csv(str(tmp_path), with_part=False)
  with pytest.raises(UserError, match="part") as error:
    rs.discover("gft", str(tmp_path))
  assert os.path.join(str(tmp_path), "frames.csv") in str(error.value)


@pytest.mark.parametrize("header, rows, message", [
    ("path,subject,frame,AU1", [], "no column sequence"),
    ("path,subject,sequence,frame,AU1,x0,y0", [], "found 1 x and 1 y columns"),
    ("path,subject,sequence,frame", [], "no AU column; expected AU1, AU2, AU4"),
    ("path,subject,sequence,frame,part,AU1", ["a/1.jpg,F001,T1,1,train,1", "b/1.jpg,M011,T1,1,,0"],
     "mix 1/2/3 with train/test"),
])
def test_frames_csv_fatal_errors(tmp_path, header, rows, message):
  image = np.zeros((8, 8, 3), np.uint8)
  for rel in ("a/1.jpg", "b/1.jpg"):
    os.makedirs(tmp_path / os.path.dirname(rel), exist_ok=True)
    cv2.imwrite(str(tmp_path / rel), image)
  (tmp_path / "frames.csv").write_text("\n".join([header] + rows) + "\n")
  with pytest.raises(UserError, match=message) as error:
    rs.discover("bp4d", str(tmp_path))
  assert str(tmp_path / "frames.csv") in str(error.value)


def test_disfa_label_file_short_of_frames_leaves_them_unknown(tmp_path):
  rf.write_disfa_raw(str(tmp_path))
  path = tmp_path / "ActionUnit_Labels" / "SN002" / "SN002_au25.txt"
  path.write_text("".join(path.read_text().splitlines(keepends=True)[:6]))
  index = rs.discover("disfa", str(tmp_path))
  sn002 = next(s for s in index.sequences if s.sequence == "SN002")
  column = AU_SETS["disfa"].index(25)
  assert [f.labels[column] == -1 and f.intensity[column] == -1 for f in sn002.frames] == \
      [False] * 6 + [True] * 2
  assert ("incomplete label file", str(path), 0) in [(p.reason, p.path, p.frames)
                                                     for p in index.problems]


def test_fatal_errors_name_the_path(tmp_path):
  missing = str(tmp_path / "nowhere")
  with pytest.raises(UserError, match=re.escape(f"{missing} does not exist")):
    rs.discover("bp4d", missing)
  a_file = tmp_path / "file.txt"
  a_file.write_text("x")
  with pytest.raises(UserError, match="is not a directory"):
    rs.discover("bp4d", str(a_file))
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(UserError) as error:
    rs.discover("bp4d", str(empty))
  message = str(error.value)
  assert str(empty) in message and "\n" not in message
  for marker in ("frames.csv", "list/BP4D_", "AUCoding/AU_OCC/"):
    assert marker in message
  rf.write_disfa_raw(str(tmp_path / "disfa"))
  with pytest.raises(UserError, match="ActionUnit_Labels/ \\(a DISFA layout\\)"):
    rs.discover("bp4d", str(tmp_path / "disfa"))
  with pytest.raises(ValueError, match="dataset"):
    rs.discover("ckplus", str(tmp_path / "disfa"))


def test_no_usable_frame_is_fatal_and_says_why(tmp_path):
  root = str(tmp_path)
  rf.write_bp4d_raw(root)
  for subject in ("F001", "M007", "M011", "F003", "F007", "F015"):
    os.rename(os.path.join(root, subject), os.path.join(root, subject.lower()))
  with pytest.raises(UserError, match="no usable frame .*'missing image folder'") as error:
    rs.discover("bp4d", root)
  assert os.path.join(root, "F001", "T1") in str(error.value)


@pytest.mark.parametrize("by_top_folder", [True, False])
def test_discover_videos(tmp_path, by_top_folder):
  truths, unreadable = rf.write_face_videos(str(tmp_path))
  index = rs.discover_videos(str(tmp_path), identity_from_top_folder=by_top_folder)
  assert (index.layout, index.aus, index.subject_group) == ("videos", (), {})
  assert [s.sequence for s in index.sequences] == sorted(t.sequence for t in truths)
  assert _problems(index.problems, str(tmp_path)) == [("unreadable video", unreadable[0], 0)]
  by_name = {s.sequence: s for s in index.sequences}
  for t in truths:
    seq = by_name[t.sequence]
    assert seq.subject == (t.subject if by_top_folder else t.sequence)
    assert all(f.labels.shape == (0,) and f.landmarks is None and f.intensity is None
               for f in seq.frames)
    yielded = list(rs.read_images(seq))
    # The truncated video lists 8 frames (its header) but ends after 5, quietly.
    assert len(yielded) == t.frames and all(p is None for *_, p in yielded)
    for (f, image, _), rgb in zip(yielded, t.rgb):
      assert rf.frame_tag(image) == rf.frame_tag(rgb)
      assert np.abs(image.astype(float) - rgb).mean() < 8
  assert len(by_name["id00015/stuVWX012/00003"].frames) == 8
  folder = by_name["id00012/ghiJKL456/00002"]
  assert folder.video is None and [f.frame for f in folder.frames] == [1, 2, 3, 4, 5]
  video = by_name["id00012/abcDEF123/00001"]
  assert video.video.endswith("00001.mp4")
  assert [f.video_index for f in video.frames] == list(range(6))


def test_discover_videos_fatal_errors(tmp_path):
  with pytest.raises(UserError, match="does not exist"):
    rs.discover_videos(str(tmp_path / "nowhere"), True)
  (tmp_path / "notes.txt").write_text("no videos here")
  with pytest.raises(UserError, match=f"no video .* under {re.escape(str(tmp_path))}"):
    rs.discover_videos(str(tmp_path), True)


def test_standard_parts_are_design_3_1():
  design = {  # Copied from DESIGN.md 3.1, in its order.
      "bp4d": {"1": "F001 M007 F018 F008 F002 M004 F010 F009 M012 M001 F016 M014 F023 M008",
               "2": "M011 F003 M010 M002 F005 F022 M018 M017 F013 M016 F020 F011 M013 M005",
               "3": "F007 F015 F006 F019 M006 M009 F012 M003 F004 F021 F017 M015 F014"},
      "disfa": {"1": "SN002 SN010 SN001 SN026 SN027 SN032 SN030 SN009 SN016",
                "2": "SN013 SN018 SN011 SN028 SN012 SN006 SN031 SN021 SN024",
                "3": "SN003 SN029 SN023 SN025 SN008 SN005 SN007 SN017 SN004"}}
  assert rs.STANDARD_PARTS == {ds: {part: tuple(names.split()) for part, names in parts.items()}
                               for ds, parts in design.items()}
  assert rs.standard_group("bp4d", "F014") == "3" and rs.standard_group("disfa", "SN014") is None


def test_a_bad_label_line_or_a_truncated_image_costs_that_frame_alone(tmp_path):
  """A label line that is not UTF-8 or has more values than the header has columns, and a JPEG
  cut to a third (which OpenCV would decode with a grey lower half): each is reported with its
  file (and line) and costs its own frame; every other frame is read as before."""
  rf.write_bp4d_raw(str(tmp_path))
  before = {(s.sequence, f.frame) for s in rs.discover("bp4d", str(tmp_path)).sequences
            for f in s.frames}
  labels = tmp_path / "AUCoding" / "AU_OCC" / "F001_T1.csv"
  lines = labels.read_bytes().split(b"\n")
  lines[2] = lines[2].replace(b",", b",\xe9", 1)  # Line 3, frame 2441: Latin-1, not UTF-8.
  lines[3] += b",1"                                # Line 4, frame 2442: one value too many.
  labels.write_bytes(b"\n".join(lines))
  jpeg = tmp_path / "F001" / "T1" / "2444.jpg"
  jpeg.write_bytes(jpeg.read_bytes()[:jpeg.stat().st_size // 3])
  assert cv2.imread(str(jpeg)) is not None  # OpenCV alone would take it.

  index = rs.discover("bp4d", str(tmp_path))
  after = {(s.sequence, f.frame) for s in index.sequences for f in s.frames}
  assert before - after == {("F001/T1", 2441), ("F001/T1", 2442)}
  assert after <= before
  ours = sorted((p.reason, p.message[:40], p.frames) for p in index.problems
                if p.path == str(labels))
  assert ours == [("bad label row", "line 4: expected a frame number and 22 v", 1),
                  ("undecodable line", "line 3: not UTF-8 text; row skipped", 1)]
  f001 = next(s for s in index.sequences if s.sequence == "F001/T1")
  read = {f.frame: (image, problem) for f, image, problem in rs.read_images(f001)}
  assert read[2444][0] is None
  assert (read[2444][1].reason, read[2444][1].path) == ("unreadable image", str(jpeg))
  assert all(image is not None for frame, (image, _) in read.items() if frame != 2444)


def test_a_truncated_png_is_unreadable(tmp_path):
  path = str(tmp_path / "1.png")
  cv2.imwrite(path, np.full((32, 32, 3), 128, np.uint8))
  assert video_io.read_image(path).shape == (32, 32, 3)
  data = open(path, "rb").read()
  open(path, "wb").write(data[:-12])  # Without its IEND chunk.
  assert video_io.read_image(path) is None
