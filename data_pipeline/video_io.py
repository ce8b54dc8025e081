"""Decoding images and videos with OpenCV, as RGB uint8 arrays. No TensorFlow here.

Videos are read front to back once: frames that are not wanted are skipped with `grab` (no
decode), since seeking is slow and inexact in compressed streams.
"""
from __future__ import annotations

import os
from typing import Iterator

import cv2
import numpy as np

# FFmpeg's own lines about a broken file ("moov atom not found") stay quiet: the callers report
# every file they cannot read, with its path. OpenCV reads this when it opens a capture.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def has_extension(name: str, extensions: tuple[str, ...]) -> bool:
  """Whether `name` ends with one of `extensions`, in any case."""
  return os.path.splitext(name)[1].lower() in extensions


# Where a complete file ends: JPEG's end-of-image marker, PNG's IEND chunk. OpenCV decodes a
# truncated file without a word, filling what is missing with grey.
_END_MARKERS = ((b"\xff\xd8", b"\xff\xd9"), (b"\x89PNG", b"IEND"))
_TAIL = 1024  # Bytes after the end marker that are tolerated (some cameras pad their files).


def is_truncated(data: bytes) -> bool:
  """Whether `data`, a JPEG or PNG file's bytes, lacks its end marker (cut short by a copy or a
  full disk). Other formats are never called truncated."""
  for magic, end in _END_MARKERS:
    if data.startswith(magic):
      return end not in data[-_TAIL:]
  return False


def read_image(path: str) -> np.ndarray | None:
  """The image at `path` as RGB uint8 [H,W,3], or None if it is missing, truncated or cannot be
  decoded."""
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError:
    return None
  if is_truncated(data):
    return None
  image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
  return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def open_video(path: str) -> cv2.VideoCapture | None:
  """An open capture of `path`, or None if it is missing or no decoder accepts it."""
  capture = cv2.VideoCapture(path)
  if not capture.isOpened():
    capture.release()
    return None
  return capture


def frame_count(path: str) -> int | None:
  """How many frames `path` holds: the container's count when it gives one (a hint: a truncated
  file keeps its original count), else counted by grabbing every frame. None if unreadable."""
  capture = open_video(path)
  if capture is None:
    return None
  try:
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    if count <= 0:
      count = 0
      while capture.grab():
        count += 1
    return count
  finally:
    capture.release()


def iter_frames(capture: cv2.VideoCapture, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
  """(index, RGB frame) for each of the strictly increasing 0-based `indices`, decoding the
  stream once from its start; stops at the first index past the end of the decodable stream."""
  position = 0
  for index in indices:
    if index < position:
      raise ValueError(f"video frame indices must increase strictly, got {index} after "
                       f"{position - 1}")
    while position < index:
      if not capture.grab():
        return
      position += 1
    ok, frame = capture.read()
    if not ok:
      return
    position += 1
    yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
