"""How many frames of real footage have a face: OpenCV's frontal cascade alone against frontal
then profile (`data_pipeline.face_detection.detect_faces`), per frame and after tracking the main
face as `prepare` does, with the time per frame. Prints a markdown table.

  python benchmarks/face_detection_coverage.py VIDEO_OR_IMAGE ...
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import cv2

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data_pipeline import face_detection, video_io  # noqa: E402


def _frames(path: str) -> list:
  if video_io.has_extension(path, video_io.IMAGE_EXTENSIONS):
    image = video_io.read_image(path)
    return [] if image is None else [image]
  capture = video_io.open_video(path)
  if capture is None:
    return []
  frames = []
  while True:
    ok, frame = capture.read()
    if not ok:
      break
    frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
  capture.release()
  return frames


def coverage(frames: list, profiles: bool) -> tuple[int, int, float]:
  """(frames with a detection, frames the tracker gives a box, ms per frame)."""
  start = time.perf_counter()
  detected = sum(len(face_detection.detect_faces(f, profiles=profiles)) > 0 for f in frames)
  seconds = time.perf_counter() - start
  tracker = face_detection.FaceTracker(
      detect=functools.partial(face_detection.detect_faces, profiles=profiles))
  tracked = sum(tracker.update(f) is not None for f in frames)
  return detected, tracked, 1000 * seconds / max(1, len(frames))


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("inputs", nargs="+", help="videos or images")
  args = parser.parse_args(argv)
  print("| input | frames | frontal: detected / tracked | + profile: detected / tracked | "
        "ms per frame (frontal / + profile) |")
  print("|---|---:|---:|---:|---:|")
  for path in args.inputs:
    frames = _frames(path)
    before, after = coverage(frames, False), coverage(frames, True)
    print(f"| {os.path.basename(path)} | {len(frames)} | {before[0]} / {before[1]} | "
          f"{after[0]} / {after[1]} | {before[2]:.0f} / {after[2]:.0f} |", flush=True)


if __name__ == "__main__":
  main()
