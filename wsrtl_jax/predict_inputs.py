"""What `predict` reads: the user's images, folders of images and videos, each turned into a
stream of frames with the main face found and cropped for the network (OpenCV, no TensorFlow)."""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Iterator

import cv2
import numpy as np

from data_pipeline import face_detection, video_io
from data_pipeline.errors import UserError


@dataclasses.dataclass(frozen=True)
class Input:
  """One INPUT: a video, or images (a folder's, in name order, or one image file)."""
  path: str
  name: str  # Its outputs are OUT/<name>.csv (and OUT/<name>_timeline.png for a video).
  images: tuple[str, ...] = ()  # Empty for a video.

  @property
  def is_video(self) -> bool:
    return not self.images


@dataclasses.dataclass
class Frame:
  """One frame (or image) of an input, as the host hands it to the network."""
  input: int  # Index into the inputs.
  frame: int  # 0-based frame of a video, or image of a folder.
  timestamp: float | None = None  # Seconds into a video.
  file: str | None = None  # The image's path relative to its folder.
  box: np.ndarray | None = None  # The face (x, y, w, h) in the frame; None: no face found.
  crop: np.ndarray | None = None
  au_centres: np.ndarray | None = None
  error: str | None = None  # Why this frame (or the whole input) could not be read.


def _kind(path: str) -> str | None:
  if os.path.isdir(path):
    return "folder"
  for kind, extensions in (("video", video_io.VIDEO_EXTENSIONS),
                           ("image", video_io.IMAGE_EXTENSIONS)):
    if video_io.has_extension(path, extensions):
      return kind
  return None


def discover(paths: list[str]) -> list[Input]:
  """The inputs named on the command line. UserError, before anything is read, for a path that
  does not exist, is of no known kind, a folder without images, or two inputs whose outputs
  would have the same name."""
  if not paths:
    raise UserError("predict needs one or more INPUTs: image files, folders of images, videos")
  inputs, owners = [], {}
  for path in paths:
    if not os.path.exists(path):
      raise UserError(f"'{path}' does not exist")
    kind = _kind(path)
    if kind is None:
      raise UserError(f"'{path}': expected a folder, an image "
                      f"({' '.join(video_io.IMAGE_EXTENSIONS)}) or a video "
                      f"({' '.join(video_io.VIDEO_EXTENSIONS)})")
    name = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
    if kind == "folder":
      images = tuple(sorted(f for f in os.listdir(path)
                            if video_io.has_extension(f, video_io.IMAGE_EXTENSIONS)))
      if not images:
        raise UserError(f"'{path}' holds no images ({' '.join(video_io.IMAGE_EXTENSIONS)})")
      inputs.append(Input(path, name, tuple(os.path.join(path, f) for f in images)))
    else:
      inputs.append(Input(path, name, (path,) if kind == "image" else ()))
    if name in owners:
      raise UserError(f"'{owners[name]}' and '{path}' would both write {name}.csv; rename one "
                      "or predict them into different --out folders")
    owners[name] = path
  return inputs


def num_frames(inp: Input) -> int:
  """How many frames `inp` holds (a video's container count; 0 if it cannot be opened)."""
  return len(inp.images) if inp.images else video_io.frame_count(inp.path) or 0


Crop = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _with_face(frame: Frame, image: np.ndarray, box: np.ndarray | None, crop: Crop) -> Frame:
  if box is not None:
    frame.box = box
    frame.crop, frame.au_centres = crop(image, box)
  return frame


def _video_frames(index: int, inp: Input, crop: Crop) -> Iterator[Frame]:
  capture = video_io.open_video(inp.path)
  if capture is None:
    yield Frame(index, 0, error=f"'{inp.path}' cannot be opened as a video (not a video, or "
                                "no decoder for it)")
    return
  fps = capture.get(cv2.CAP_PROP_FPS)
  # A frame counts as having a face only where the detector finds one (no box held over misses).
  tracker = face_detection.FaceTracker(max_missed=0)
  try:
    position = 0
    while True:
      ok, bgr = capture.read()
      if not ok:
        break
      image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
      timestamp = position / fps if fps > 0 else capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
      yield _with_face(Frame(index, position, timestamp=timestamp), image,
                       tracker.update(image), crop)
      position += 1
  finally:
    capture.release()
  if position == 0:
    yield Frame(index, 0, error=f"'{inp.path}': no frame of it could be decoded")


def _image_frames(index: int, inp: Input, crop: Crop) -> Iterator[Frame]:
  folder = inp.path if os.path.isdir(inp.path) else os.path.dirname(inp.path)
  for position, path in enumerate(inp.images):
    frame = Frame(index, position, file=os.path.relpath(path, folder))
    image = video_io.read_image(path)
    if image is None:
      frame.error = f"'{path}' is missing, truncated or not a decodable image"
      yield frame
      continue
    boxes = face_detection.detect_faces(image)
    yield _with_face(frame, image, boxes[0] if len(boxes) else None, crop)


def frames(inputs: list[Input], crop: Crop) -> Iterator[Frame]:
  """Every frame of every input in order, its main face (a video's tracked, an image's largest)
  cropped by `crop(image, box)`; unreadable inputs or images come as frames with an `error`."""
  for index, inp in enumerate(inputs):
    yield from (_video_frames if inp.is_video else _image_frames)(index, inp, crop)
