"""`predict` on what users bring: a video of a real face, a folder of real portraits (with a
truncated one), a video without a face and a file that is not a video: one CSV per input with its
rows and columns, the error lines, the exit status, and no TensorFlow on the way."""
import csv
import json
import os
import shutil
import sys

import cv2
import numpy as np
import pytest

from data_pipeline.errors import UserError
from tests.helpers import ROOT, run_cli
from wsrtl_jax import face_geometry, predict_inputs
from wsrtl_jax.predict import au_columns, predict

DATA = os.path.join(ROOT, "tests", "data")
AUS = (1, 2, 4, 6, 7, 9, 10, 12, 14, 15, 17, 23, 24, 25, 26)
FACE_FRAMES, EMPTY_FRAMES, FPS = 20, 8, 10


def _photo(name):
  return cv2.imread(os.path.join(DATA, name))


def _write_video(path, frames):
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (320, 240))
  for frame in frames:
    writer.write(frame)
  writer.release()


def _face_video_frames():
  """The astronaut photo moving right and growing, then an empty grey scene."""
  face = _photo("astronaut_face.jpg")
  for t in range(FACE_FRAMES):
    frame = np.full((240, 320, 3), 128, np.uint8)
    patch = cv2.resize(face, None, fx=0.8 + 0.01 * t, fy=0.8 + 0.01 * t)
    x, y = 20 + 3 * t, 10
    frame[y:y + patch.shape[0], x:x + patch.shape[1]] = patch[:240 - y, :320 - x]
    yield frame
  for _ in range(EMPTY_FRAMES):
    yield np.full((240, 320, 3), 128, np.uint8)


@pytest.fixture(scope="module")
def run(tiny_run):
  """A finished tiny supervised run on SynthAU/tiny."""
  return tiny_run[0]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
  root = tmp_path_factory.mktemp("inputs")
  _write_video(root / "talk.mp4", _face_video_frames())
  rng = np.random.default_rng(0)
  _write_video(root / "empty_room.mp4",
               (rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(10)))
  portraits = root / "portraits"
  portraits.mkdir()
  cv2.imwrite(str(portraits / "a_astronaut.jpg"), _photo("astronaut_face.jpg"))
  cv2.imwrite(str(portraits / "b_cameraman.jpg"), _photo("cameraman_profile.jpg"))
  cv2.imwrite(str(portraits / "c_mirrored.png"), cv2.flip(_photo("astronaut_face.jpg"), 1))
  whole = open(portraits / "a_astronaut.jpg", "rb").read()
  (portraits / "d_truncated.jpg").write_bytes(whole[:len(whole) // 2])
  (root / "broken.mp4").write_bytes(b"not a video at all" * 64)
  return root


def _rows(path):
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def predicted(run, inputs, tmp_path_factory):
  """One `predict` over every kind of input, in a process that asserts it never loads
  TensorFlow."""
  out = tmp_path_factory.mktemp("predicted")
  args = ["predict", "--workdir", str(run), str(inputs / "talk.mp4"), str(inputs / "portraits"),
          str(inputs / "empty_room.mp4"), str(inputs / "broken.mp4"), "--out", str(out)]
  code = ("import sys\nfrom wsrtl_jax import cli\nsys.argv = ['wsrtl_jax'] + sys.argv[1:]\n"
          "try:\n  cli.main()\nfinally:\n  assert 'tensorflow' not in sys.modules, 'TF loaded'\n")
  result = run_cli([sys.executable, "-c", code] + args)
  return result, out


def test_exit_status_and_error_lines_name_the_unreadable_files(predicted, inputs):
  result, out = predicted
  assert result.returncode == 2, result.stderr[-3000:]
  assert "TF loaded" not in result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert errors[:2] == [
      f"error: '{inputs / 'portraits' / 'd_truncated.jpg'}' is missing, truncated or not a "
      "decodable image",
      f"error: '{inputs / 'broken.mp4'}' cannot be opened as a video (not a video, or no decoder "
      "for it)"], result.stderr
  assert errors[2].startswith("error: 2 of 4 inputs had files that could not be read")
  assert "moov atom" not in result.stderr  # FFmpeg's own complaint stays quiet.
  assert sorted(os.listdir(out)) == ["empty_room.csv", "empty_room_timeline.png", "portraits.csv",
                                     "predict.json", "talk.csv", "talk_timeline.png"]
  summary = json.loads((out / "predict.json").read_text())
  assert summary["frames"] == FACE_FRAMES + EMPTY_FRAMES + 3 + 10
  assert summary["failed"] == 2 and summary["frames_per_sec"] > 0


def _check_au_columns(row, found):
  probabilities = [row[c] for c in au_columns(AUS)[:len(AUS)]]
  decisions = [row[c] for c in au_columns(AUS)[len(AUS):]]
  if not found:
    assert set(probabilities + decisions + [row["face_x"]]) == {""}
    return
  p = np.array(probabilities, float)
  assert np.all((0 <= p) & (p <= 1))
  assert decisions == [str(int(v >= 0.5)) for v in p]  # The run's eval.threshold.


def test_video_rows_follow_the_face_and_leave_faceless_frames_empty(predicted):
  rows = _rows(predicted[1] / "talk.csv")
  assert list(rows[0]) == (["frame", "timestamp", "face_found", "face_x", "face_y", "face_w",
                            "face_h"] + au_columns(AUS))
  assert [int(r["frame"]) for r in rows] == list(range(FACE_FRAMES + EMPTY_FRAMES))
  np.testing.assert_allclose([float(r["timestamp"]) for r in rows],
                             np.arange(len(rows)) / FPS, atol=1e-3)
  found = [r["face_found"] == "1" for r in rows]
  assert sum(found[:FACE_FRAMES]) >= FACE_FRAMES - 2 and not any(found[FACE_FRAMES:])
  x = [float(r["face_x"]) for r in rows[:FACE_FRAMES] if r["face_found"] == "1"]
  assert x[-1] - x[0] > 30  # The photo moved 57 px right; the box follows it.
  for row, face in zip(rows, found):
    _check_au_columns(row, face)
  assert (predicted[1] / "talk_timeline.png").read_bytes()[:4] == b"\x89PNG"


def test_folder_rows_are_its_readable_images_in_name_order(predicted):
  rows = _rows(predicted[1] / "portraits.csv")
  assert list(rows[0])[:3] == ["frame", "file", "face_found"]
  assert [(r["frame"], r["file"], r["face_found"]) for r in rows] == [
      ("0", "a_astronaut.jpg", "1"), ("1", "b_cameraman.jpg", "1"), ("2", "c_mirrored.png", "1")]
  for row in rows:
    _check_au_columns(row, True)
  # The same face mirrored: the box mirrors too (the photo is 192 px wide).
  a, c = rows[0], rows[2]
  assert abs(float(a["face_x"]) + float(a["face_w"]) + float(c["face_x"]) - 192) < 6


def test_a_video_without_a_face_has_a_row_per_frame_and_no_predictions(predicted):
  rows = _rows(predicted[1] / "empty_room.csv")
  assert [r["frame"] for r in rows] == [str(i) for i in range(10)]
  for row in rows:
    assert row["face_found"] == "0"
    _check_au_columns(row, False)


def test_face_json_records_the_store_frame(run):
  geometry = face_geometry.read(str(run))
  assert geometry == face_geometry.FaceGeometry(64, 3.85, AUS)  # SynthAU/tiny: 64 px frames.


def test_a_run_without_face_json_says_how_to_get_one(run, inputs, tmp_path):
  copy = tmp_path / "run"
  shutil.copytree(run, copy)
  os.remove(copy / "face.json")
  with pytest.raises(UserError, match="face.json' is missing.*run `train` once more"):
    predict(str(copy), [str(inputs / "talk.mp4")], str(tmp_path / "out"))
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("make, expected", [
    (lambda d: [str(d / "nothing_here.mp4")], "nothing_here.mp4' does not exist"),
    (lambda d: [str(d / "notes.txt")], "notes.txt': expected a folder, an image"),
    (lambda d: [str(d / "empty")], "empty' holds no images"),
    (lambda d: [str(d / "a" / "clip.mp4"), str(d / "b" / "clip.mp4")],
     "would both write clip.csv"),
    (lambda d: [], "predict needs one or more INPUTs"),
])
def test_bad_inputs_are_refused_before_anything_is_read(tmp_path, make, expected):
  (tmp_path / "notes.txt").write_text("x")
  (tmp_path / "empty").mkdir()
  for folder in ("a", "b"):
    (tmp_path / folder).mkdir()
    (tmp_path / folder / "clip.mp4").write_bytes(b"")
  with pytest.raises(UserError, match=expected):
    predict_inputs.discover(make(tmp_path))
