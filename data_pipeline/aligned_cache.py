"""Aligned face crops of a raw source, cached one file per sequence.

Aligning is the slow part of preparing a store (decoding videos, warping, encoding), so it is done
once per sequence and kept: preparing can stop and restart without redoing finished sequences, and
every fold config of a dataset reuses the same crops. Each file is written under a temporary name
and renamed when complete, so an interrupted run never leaves a half-written sequence.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import re
import sys
from typing import Callable

import cv2
import numpy as np

from data_pipeline import alignment, face_detection, raw_sources

CACHE_VERSION = 1
LANDMARK_SOURCES = ("given", "neighbour", "detected")
MAX_NEIGHBOUR_GAP = 5  # A frame without landmarks borrows those of a frame at most this far away.
JPEG_QUALITY = 95


@dataclasses.dataclass
class AlignedSequence:
  """The aligned frames of one sequence, with what was lost on the way."""
  sequence: str
  frames: np.ndarray           # int32 [N]
  jpeg: list[bytes]            # N encoded aligned crops
  landmarks: np.ndarray        # float32 [N, 68, 2], aligned-image pixels
  landmark_source: np.ndarray  # int8 [N], index into LANDMARK_SOURCES
  labels: np.ndarray           # int8 [N, A]
  intensity: np.ndarray        # float32 [N, A], -1 where not given
  skipped: dict[str, int]      # reason -> frames lost while aligning


def cache_dir(root: str, dataset: str, manual_dir: str, image_size: int, enlarge: float) -> str:
  """A folder per (dataset, source folder, crop geometry): another source never reuses it."""
  key = json.dumps([CACHE_VERSION, os.path.abspath(manual_dir), image_size, enlarge])
  return os.path.join(root, f"{dataset}-aligned-{hashlib.sha1(key.encode()).hexdigest()[:12]}")


def _file_name(sequence: str) -> str:
  safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", sequence)
  return f"{safe}-{hashlib.sha1(sequence.encode()).hexdigest()[:8]}.npz"


def save(aligned: AlignedSequence, path: str) -> None:
  """Writes `aligned` to `path` atomically (temporary file, then rename)."""
  offsets = np.cumsum([0] + [len(b) for b in aligned.jpeg]).astype(np.int64)
  info = json.dumps({"sequence": aligned.sequence, "skipped": aligned.skipped})
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "wb") as f:
    np.savez(f, frames=aligned.frames, landmarks=aligned.landmarks,
             landmark_source=aligned.landmark_source, labels=aligned.labels,
             intensity=aligned.intensity, jpeg_offsets=offsets, info=np.array(info),
             jpeg_data=np.frombuffer(b"".join(aligned.jpeg), np.uint8))
  os.replace(tmp, path)


def load(path: str, with_images: bool = True) -> AlignedSequence:
  with np.load(path) as f:
    info = json.loads(str(f["info"]))
    jpeg = []
    if with_images:
      data, offsets = f["jpeg_data"].tobytes(), f["jpeg_offsets"]
      jpeg = [data[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
    return AlignedSequence(sequence=info["sequence"],
                           frames=f["frames"], jpeg=jpeg, landmarks=f["landmarks"],
                           landmark_source=f["landmark_source"], labels=f["labels"],
                           intensity=f["intensity"], skipped=info["skipped"])


def _borrowed_landmarks(frames: list[raw_sources.FrameSource]) -> list[np.ndarray | None]:
  """Each frame's own landmarks, else those of the nearest frame (by number, within
  MAX_NEIGHBOUR_GAP) of the same sequence that has them, else None."""
  known = [(f.frame, f.landmarks) for f in frames if f.landmarks is not None]
  if not known:
    return [None] * len(frames)
  numbers = np.array([n for n, _ in known])
  out = []
  for f in frames:
    if f.landmarks is not None:
      out.append(f.landmarks)
      continue
    nearest = int(np.argmin(np.abs(numbers - f.frame)))
    out.append(known[nearest][1] if abs(numbers[nearest] - f.frame) <= MAX_NEIGHBOUR_GAP else None)
  return out


def _encode(image: np.ndarray) -> bytes:
  ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                         [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
  assert ok
  return buf.tobytes()


def _warn(message: str) -> None:
  print(f"warning: {message}", file=sys.stderr, flush=True)


class _Tracker:
  """Tracks the main face over frames handed in one at a time (track_main_face pulls them)."""

  def __init__(self):
    self._frame = None
    self._boxes = face_detection.track_main_face(self._frames())

  def _frames(self):
    while True:
      yield self._frame

  def update(self, image: np.ndarray) -> np.ndarray | None:
    self._frame = image
    return next(self._boxes)


def align_sequence(seq: raw_sources.SequenceSource, num_aus: int, image_size: int,
                   enlarge: float) -> AlignedSequence:
  """Decodes, aligns and encodes every frame of `seq`, one frame in memory at a time.

  Landmarks come from the source; a frame without them borrows a near frame's; the rest are
  placed as the mean template in the box of the main face, tracked through those frames.
  Frames whose image is missing, or where no face is found, are skipped and counted.
  """
  tracker = _Tracker()
  skipped: dict[str, int] = collections.Counter()
  kept, jpeg, points_out, sources = [], [], [], []
  reason = "missing image"
  for (frame, image, problem), points in zip(raw_sources.read_images(seq),
                                             _borrowed_landmarks(seq.frames)):
    if problem is not None:
      _warn(f"{problem.path}: {problem.message}")
      reason = problem.reason
    if image is None:
      skipped[reason] += 1
      continue
    source = "given" if frame.landmarks is not None else "neighbour"
    if points is None:
      box = tracker.update(image)
      if box is None:
        skipped["no face found"] += 1
        continue
      points, source = face_detection.template_landmarks(box), "detected"
    crop, crop_points = alignment.align_face(image, points, image_size, enlarge)
    kept.append(frame)
    jpeg.append(_encode(crop))
    points_out.append(crop_points)
    sources.append(LANDMARK_SOURCES.index(source))
  n = len(kept)
  intensity = np.full((n, num_aus), -1.0, np.float32)
  for i, frame in enumerate(kept):
    if frame.intensity is not None:
      intensity[i] = frame.intensity
  return AlignedSequence(
      sequence=seq.sequence,
      frames=np.array([f.frame for f in kept], np.int32), jpeg=jpeg,
      landmarks=np.array(points_out, np.float32).reshape(n, 68, 2),
      landmark_source=np.array(sources, np.int8),
      labels=np.array([f.labels for f in kept], np.int8).reshape(n, num_aus),
      intensity=intensity, skipped=dict(skipped))


def prepare(index: raw_sources.SourceIndex, directory: str, image_size: int, enlarge: float,
            progress: Callable[[int, int, str], None] | None = None) -> list[str]:
  """Aligns and writes every sequence of `index` not yet in `directory` (OpenCV spreads its
  decoding and warping over the cores itself); returns the files of all of them."""
  os.makedirs(directory, exist_ok=True)
  paths = []
  for i, seq in enumerate(index.sequences):
    path = os.path.join(directory, _file_name(seq.sequence))
    if not os.path.exists(path):
      save(align_sequence(seq, len(index.aus), image_size, enlarge), path)
    paths.append(path)
    if progress:
      progress(i + 1, len(index.sequences), seq.sequence)
  return paths


def summarize(index: raw_sources.SourceIndex, paths: list[str]) -> dict:
  """What went into the store and what was left out: subjects, sequences and frames kept,
  frames per subject, positives and unknown labels per AU, frames without landmarks, frames
  skipped and why, the subjects that lost every frame (with why) and the problems found (one
  line each)."""
  cached = [(seq, load(path, with_images=False)) for seq, path in zip(index.sequences, paths)]
  kept = [(seq, aligned) for seq, aligned in cached if len(aligned.frames)]
  labels = np.concatenate([a.labels for _, a in kept] or [np.zeros((0, len(index.aus)), np.int8)])
  sources = np.concatenate([a.landmark_source for _, a in kept] or [np.zeros(0, np.int8)])
  skipped = collections.Counter()
  per_subject: dict[str, int] = collections.Counter({s: 0 for s in index.subject_group})
  lost_why: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
  for seq, aligned in cached:
    skipped.update(aligned.skipped)
    per_subject[seq.subject] += len(aligned.frames)
    lost_why[seq.subject].update(aligned.skipped)
  for problem in index.problems:
    if problem.frames:
      skipped[problem.reason] += problem.frames
  return {
      "subjects": len({seq.subject for seq, _ in kept}), "sequences": len(kept),
      "frames": int(labels.shape[0]),
      "frames_per_subject": dict(sorted(per_subject.items())),
      "positives_per_au": {f"AU{a}": int((labels[:, i] == 1).sum())
                           for i, a in enumerate(index.aus)},
      "unknown_per_au": {f"AU{a}": int((labels[:, i] < 0).sum()) for i, a in enumerate(index.aus)},
      "frames_without_landmarks": {source: int((sources == k).sum())
                                   for k, source in enumerate(LANDMARK_SOURCES) if k},
      "frames_skipped": dict(sorted(skipped.items())),
      "subjects_without_frames": {s: dict(sorted(lost_why[s].items()))
                                  for s, n in sorted(per_subject.items()) if not n},
      "problems": [f"{p.path}: {p.message}" for p in index.problems]}


def describe_lost(lost: dict[str, dict[str, int]], subjects: list[str] | None = None) -> str:
  """`subjects` (default: all of `lost`, a summary's `subjects_without_frames`) with why each
  has no frames, e.g. "F007 (5 no face found), M011 (4 no face found, 1 unreadable image)"."""
  def reasons(subject: str) -> str:
    why = lost.get(subject, {})
    return ", ".join(f"{n} {reason}" for reason, n in why.items()) or "no frames in the source"
  return ", ".join(f"{s} ({reasons(s)})" for s in (lost if subjects is None else subjects))
