"""Haar face detection, the template in a box, and tracking the main face through a video.

tests/data: astronaut_face.jpg is a crop of NASA's portrait of Eileen Collins (public domain);
cameraman_profile.jpg a crop of scikit-image's `camera` photograph (CC0, Lav Varshney), a man
seen almost in profile, looking into a camera.
"""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from data_pipeline import face_detection
from data_pipeline.face_detection import (box_iou, detect_faces, template_landmarks,
                                          track_main_face)

FACE_PATH = os.path.join(os.path.dirname(__file__), "data", "astronaut_face.jpg")
TURNED_PATH = os.path.join(os.path.dirname(__file__), "data", "cameraman_profile.jpg")


@pytest.fixture(scope="module")
def face() -> np.ndarray:
  return cv2.cvtColor(cv2.imread(FACE_PATH), cv2.COLOR_BGR2RGB)


def _canvas(height=300, width=400) -> np.ndarray:
  return np.full((height, width, 3), 128, np.uint8)


def _paste(canvas: np.ndarray, face: np.ndarray, x: int, y: int, scale: float = 1.0) -> np.ndarray:
  """The canvas with the face photo, resized by `scale`, pasted with its top-left at (x, y)."""
  out = canvas.copy()
  patch = cv2.resize(face, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
  out[y:y + patch.shape[0], x:x + patch.shape[1]] = patch
  return out


def test_detects_the_astronaut_face_large_and_centred(face):
  boxes = detect_faces(face)
  assert boxes.shape == (1, 4) and boxes.dtype == np.float32
  x, y, w, h = boxes[0]
  assert w > 0.4 * face.shape[1] and h > 0.4 * face.shape[0]
  assert abs(x + w / 2 - face.shape[1] / 2) < 0.1 * face.shape[1]
  assert abs(y + h / 2 - face.shape[0] / 2) < 0.1 * face.shape[0]


@pytest.mark.parametrize("image", [
    np.full((240, 320, 3), 128, np.uint8),
    np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8),
], ids=["grey", "noise"])
def test_no_face_in_flat_grey_or_noise(image):
  assert detect_faces(image).shape == (0, 4)


@pytest.fixture(scope="module")
def turned() -> np.ndarray:
  return cv2.cvtColor(cv2.imread(TURNED_PATH), cv2.COLOR_BGR2RGB)


def test_a_turned_face_the_frontal_cascade_misses_is_found(turned):
  assert detect_faces(turned, profiles=False).shape == (0, 4)
  boxes = detect_faces(turned)
  assert boxes.shape == (1, 4)
  x, y, w, h = boxes[0]
  # The head spans x 65-175, y 25-160 of the 256 px photo.
  assert 65 < x + w / 2 < 175 and 25 < y + h / 2 < 160
  assert 0.3 * 256 < w == h < 0.6 * 256


def test_faces_turned_either_way_are_found_in_mirrored_places(turned):
  box = detect_faces(turned)[0]
  mirrored = detect_faces(np.ascontiguousarray(turned[:, ::-1]))
  assert len(mirrored) == 1
  np.testing.assert_allclose(mirrored[0], [turned.shape[1] - box[0] - box[2], *box[1:]], atol=1)


def _two_faces(face):
  """A face on the left and a larger one on the right."""
  return _paste(_paste(_canvas(360, 640), face, 10, 80), face, 320, 20, 1.6)


@pytest.mark.parametrize("image", [np.zeros((40, 40, 3), np.float32),
                                   np.zeros((40, 40, 4), np.uint8)], ids=["float", "four-channel"])
def test_bad_image_is_refused_clearly(image):
  with pytest.raises(ValueError, match=r"expected uint8 \[H, W, 3\] RGB"):
    detect_faces(image)


def test_boxes_come_largest_first(face):
  boxes = detect_faces(_two_faces(face))
  assert len(boxes) == 2
  assert boxes[0, 2] > boxes[1, 2] and boxes[0, 0] > 300 > boxes[1, 0]


def test_large_frames_are_searched_downscaled_with_boxes_in_full_size_pixels(face):
  small = _paste(_canvas(300, 400), face, 100, 50)
  large = cv2.resize(small, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)  # 1200 x 900
  expected = detect_faces(small)[0] * 3
  found = detect_faces(large)
  assert len(found) == 1
  assert box_iou(expected, found)[0] > 0.8


class _FakeCascade:
  """Stands in for the Haar cascade: records what it was asked, answers fixed boxes."""

  def __init__(self, boxes):
    self.boxes, self.calls = np.array(boxes), []

  def detectMultiScale(self, grey, **kwargs):  # noqa: N802 (OpenCV's name)
    self.calls.append((grey.shape, kwargs["minSize"]))
    return self.boxes


def test_boxes_are_sorted_by_area_and_mapped_back_from_the_downscaled_search(monkeypatch):
  cascade = _FakeCascade([[0, 0, 10, 10], [50, 40, 30, 30], [100, 10, 20, 20]])
  monkeypatch.setattr(face_detection, "_cascade", lambda: cascade)
  boxes = detect_faces(np.zeros((720, 1280, 3), np.uint8), min_size_fraction=0.1)
  assert cascade.calls == [((360, 640), (36, 36))]  # searched at half size
  np.testing.assert_array_equal(boxes, [[100, 80, 60, 60], [200, 20, 40, 40], [0, 0, 20, 20]])


def test_min_size_fraction_drops_small_faces(face):
  frame = _paste(_canvas(480, 640), face, 20, 20)  # a face box about 95 px of 480
  assert len(detect_faces(frame, min_size_fraction=0.1)) == 1
  assert len(detect_faces(frame, min_size_fraction=0.25)) == 0


def test_template_sits_inside_the_box_as_an_upright_face(face):
  box = detect_faces(face)[0]
  points = template_landmarks(box)
  x, y, w, h = box
  assert points.shape == (68, 2) and points.dtype == np.float32
  assert (points[:, 0] >= x).all() and (points[:, 0] <= x + w).all()
  assert (points[:, 1] >= y).all() and (points[:, 1] <= y + h).all()
  left_eye, right_eye = points[36:42].mean(0), points[42:48].mean(0)
  assert left_eye[1] == pytest.approx(right_eye[1], abs=1e-3)
  assert y < left_eye[1] < y + h / 2 < points[51, 1]  # eyes in the upper half, mouth lower
  assert abs(points[30, 0] - (x + w / 2)) < 0.05 * w  # nose tip near the middle


def test_template_scales_with_the_box():
  small = template_landmarks([10, 20, 100, 100])
  large = template_landmarks([10, 20, 200, 200])
  np.testing.assert_allclose(large - [10, 20], 2 * (small - [10, 20]), rtol=1e-5)


def test_box_iou():
  np.testing.assert_allclose(box_iou([0, 0, 10, 10], [[0, 0, 10, 10], [5, 0, 10, 10],
                                                      [20, 20, 5, 5]]), [1, 1 / 3, 0])


def _video(face):
  """Face moving and growing, one blank frame, the face again, three blank frames, then the face
  somewhere else."""
  blank = _canvas()
  return [_paste(blank, face, 40, 30), _paste(blank, face, 52, 34),
          _paste(blank, face, 60, 30, 1.1), blank, _paste(blank, face, 64, 36, 1.1),
          blank, blank, blank, _paste(blank, face, 200, 90)]


def test_tracking_smooths_holds_loses_and_reacquires(face):
  frames = _video(face)
  detections = [detect_faces(frame) for frame in frames]
  assert [len(d) for d in detections] == [1, 1, 1, 0, 1, 0, 0, 0, 1]
  track = list(track_main_face(frames, max_missed=2, smoothing=0.5))
  assert len(track) == len(frames)

  def centre_size(box):
    return np.concatenate([box[:2] + box[2:] / 2, box[2:]])

  np.testing.assert_allclose(track[0], detections[0][0])  # first face: the detection itself
  for t in (1, 2, 4):  # half the previous box, half the detection (centre and size)
    expected = 0.5 * centre_size(track[t - 1]) + 0.5 * centre_size(detections[t][0])
    np.testing.assert_allclose(centre_size(track[t]), expected, atol=1e-4)
  np.testing.assert_array_equal(track[3], track[2])  # one missed frame: box held
  np.testing.assert_array_equal(track[5], track[4])  # up to max_missed = 2 frames held
  np.testing.assert_array_equal(track[6], track[4])
  assert track[7] is None  # the third missed frame: lost
  np.testing.assert_allclose(track[8], detections[8][0])  # re-acquired, not smoothed with old


def test_tracking_without_smoothing_follows_the_detections(face):
  frames = _video(face)[:3]
  track = list(track_main_face(frames, smoothing=0.0))
  for frame, box in zip(frames, track):
    np.testing.assert_allclose(box, detect_faces(frame)[0])


def test_tracking_keeps_the_main_face_when_a_larger_one_appears(face):
  first = _paste(_canvas(360, 640), face, 10, 80)
  second = _two_faces(face)
  track = list(track_main_face([first, second, second], smoothing=0.0))
  assert all(box[0] < 300 for box in track)
  assert box_iou(track[2], detect_faces(second)[1:])[0] == pytest.approx(1.0)


def test_tracking_does_not_jump_to_a_face_elsewhere_until_the_main_face_is_lost(face):
  left = _paste(_canvas(360, 640), face, 10, 80)
  right = _paste(_canvas(360, 640), face, 400, 80)
  track = list(track_main_face([left, right, right, right], max_missed=1, smoothing=0.0))
  np.testing.assert_array_equal(track[1], track[0])  # no overlap with the right face: held
  for box in track[2:]:  # lost after one missed frame, and the right face taken at once
    np.testing.assert_allclose(box, detect_faces(right)[0])


def test_tracking_a_video_with_no_face_yields_none():
  assert list(track_main_face([_canvas()] * 3)) == [None, None, None]
