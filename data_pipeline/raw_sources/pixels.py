"""The pixels of a sequence: its image files, or its video decoded once, front to back."""
from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from data_pipeline import video_io
from data_pipeline.raw_sources.records import FrameSource, Problem, SequenceSource


def _read_video_frames(seq: SequenceSource) -> Iterator[tuple[FrameSource, np.ndarray | None,
                                                              Problem | None]]:
  capture = video_io.open_video(seq.video)
  if capture is None:
    for i, f in enumerate(seq.frames):
      yield f, None, (Problem(seq.video, f"cannot be opened or decoded as a video; its "
                              f"{len(seq.frames)} frames are skipped", "unreadable video",
                              len(seq.frames)) if i == 0 else None)
    return
  try:
    decoded = video_io.iter_frames(capture, [f.video_index for f in seq.frames])
    for i, f in enumerate(seq.frames):
      got = next(decoded, None)
      if got is not None:
        yield f, got[1], None
        continue
      if seq.frames_estimated:
        return
      rest = seq.frames[i:]
      problem = Problem(seq.video, f"the video ends before frame index {f.video_index}; "
                        f"{len(rest)} labelled frames (video indices {f.video_index}-"
                        f"{rest[-1].video_index}) are missing", "frame missing from video",
                        len(rest))
      for j, g in enumerate(rest):
        yield g, None, problem if j == 0 else None
      return
  finally:
    capture.release()


def read_images(seq: SequenceSource) -> Iterator[tuple[FrameSource, np.ndarray | None,
                                                        Problem | None]]:
  """(frame, RGB uint8 image, None) for each frame of `seq`, in order; (frame, None, problem) when
  its pixels cannot be had. One problem covers all the frames it costs (problem.frames): the
  frames after it that it also cost come as (frame, None, None). A video is decoded once, front to
  back. For frames_estimated sequences the iteration just ends where the video does."""
  if seq.video is not None:
    yield from _read_video_frames(seq)
    return
  for f in seq.frames:
    image = video_io.read_image(f.image)
    if image is not None:
      yield f, image, None
    elif os.path.isfile(f.image):
      yield f, None, Problem(f.image, "is truncated or cannot be decoded as an image",
                             "unreadable image", 1)
    else:
      yield f, None, Problem(f.image, "missing (it was there when the dataset was listed)",
                             "missing image", 1)
