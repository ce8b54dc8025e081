"""Decoding images and videos with OpenCV, as RGB uint8 arrays. No TensorFlow here.

Videos are read front to back once: frames that are not wanted are skipped with `grab` (no
decode), since seeking is slow and inexact in compressed streams.
"""
from __future__ import annotations

import os
from typing import Iterator

import cv2
import numpy as np

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def has_extension(name: str, extensions: tuple[str, ...]) -> bool:
  """Whether `name` ends with one of `extensions`, in any case."""
  return os.path.splitext(name)[1].lower() in extensions


def read_image(path: str) -> np.ndarray | None:
  """The image at `path` as RGB uint8 [H,W,3], or None if it is missing or cannot be decoded."""
  image = cv2.imread(path, cv2.IMREAD_COLOR)
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
