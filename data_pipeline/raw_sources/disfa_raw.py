"""DISFA as distributed: left-camera videos Videos_LeftCamera/LeftVideoSN001_comp.avi or frame
folders SN001/<i>.png, labels ActionUnit_Labels/SN001/SN001_au<k>.txt, optional landmarks
landmarks/SN001.csv."""
from __future__ import annotations

import os

import numpy as np

from data_pipeline.au_sets import AU_SETS
from data_pipeline.raw_sources.common import (_attach_images, _attach_landmarks, _numbered_images,
                                              _parse_int, _quote, text_lines)
from data_pipeline.raw_sources.records import (UNKNOWN, FrameSource, Problem, SequenceSource,
                                               _Found, _outside_partition, standard_group)

DISFA_POSITIVE = 2  # DISFA occurrence: intensity >= 2.


def _read_disfa_au(path: str, problems: list[Problem]) -> dict[int, int]:
  """Frame -> intensity from lines `frame,intensity`; a bad line's frame gets -1 (unknown)."""
  intensities: dict[int, int] = {}
  for line_number, line in enumerate(text_lines(path, problems, 0), 1):
    text = line.strip()
    if not text:
      continue
    parts = [p.strip() for p in text.split(",")]
    frame = _parse_int(parts[0])
    value = _parse_int(parts[1]) if len(parts) == 2 else None
    if frame is not None and frame >= 1 and value is not None and 0 <= value <= 5:
      intensities[frame] = value
      continue
    known = frame is not None and frame >= 1
    problems.append(Problem(path, f"line {line_number}: expected 'frame,intensity' with integers "
                            f"(frame from 1, intensity 0-5), got '{_quote(text)}'"
                            + (f"; unknown (-1) for frame {frame}" if known else ""),
                            "bad label row", 0))
    if known:
      intensities[frame] = UNKNOWN
  return intensities


def _read_disfa_labels(folder: str, subject: str, aus: tuple[int, ...],
                       problems: list[Problem]) -> list[FrameSource]:
  """The frames of one subject: every frame some AU file names; -1 where an AU file lacks it."""
  paths = [os.path.join(folder, f"{subject}_au{au}.txt") for au in aus]
  per_au = [_read_disfa_au(p, problems) if os.path.isfile(p) else None for p in paths]
  if all(d is None for d in per_au):
    problems.append(Problem(folder, f"no label file {subject}_au<k>.txt (k = "
                            f"{', '.join(map(str, aus))}); subject skipped", "missing AU file", 0))
    return []
  numbers = sorted(set().union(*(d for d in per_au if d is not None)))
  for au, path, d in zip(aus, paths, per_au):
    if d is None:
      problems.append(Problem(path, f"missing: AU{au} is unknown (-1) for the {len(numbers)} "
                              f"frames of {subject}", "missing AU file", 0))
      continue
    lacking = [n for n in numbers if n not in d]
    if lacking:
      problems.append(Problem(path, f"no line for {len(lacking)} frames the other AU files have "
                              f"(first: {lacking[0]}); AU{au} is unknown (-1) there",
                              "incomplete label file", 0))
  frames = []
  for n in numbers:
    intensity = np.array([UNKNOWN if d is None else d.get(n, UNKNOWN) for d in per_au], np.float32)
    labels = np.where(intensity < 0, UNKNOWN, intensity >= DISFA_POSITIVE).astype(np.int8)
    frames.append(FrameSource(frame=n, labels=labels, intensity=intensity, landmarks=None))
  return frames


def _disfa_video(root: str, subject: str) -> str:
  """Path of the subject's left-camera video (matched in any case; the usual name if absent)."""
  folder = os.path.join(root, "Videos_LeftCamera")
  name = f"LeftVideo{subject}_comp.avi"
  try:
    names = {n.lower(): n for n in os.listdir(folder)}
  except (FileNotFoundError, NotADirectoryError):
    names = {}
  return os.path.join(folder, names.get(name.lower(), name))


def _read_disfa_raw(root: str) -> _Found:
  """Labels count frames from 1 and video frame index 0 is label frame 1. A frame folder
  SN001/ (used when present) is numbered like the video (from 0) if it has a file numbered 0,
  else from 1 like the labels."""
  aus = AU_SETS["disfa"]
  label_dir = os.path.join(root, "ActionUnit_Labels")
  sequences, groups, problems = [], {}, []
  for subject in sorted(os.listdir(label_dir)):
    folder = os.path.join(label_dir, subject)
    if not os.path.isdir(folder):
      continue
    frames = _read_disfa_labels(folder, subject, aus, problems)
    if not frames:
      continue
    group = standard_group("disfa", subject)
    if group is None:
      problems.append(_outside_partition("disfa", subject, folder, len(frames)))
      continue
    video = None
    images = _numbered_images(os.path.join(root, subject))
    if images:
      shift = 1 if 0 in images else 0
      frames = _attach_images(frames, os.path.join(root, subject), lambda n: n - shift, folder,
                              problems)
    else:
      video = _disfa_video(root, subject)
      if not os.path.isfile(video):
        problems.append(Problem(video, f"missing, and there is no frame folder {subject}/ either; "
                                f"the {len(frames)} labelled frames of {subject} are skipped",
                                "missing video", len(frames)))
        continue
      for f in frames:
        f.video_index = f.frame - 1
    _attach_landmarks(frames, os.path.join(root, "landmarks", f"{subject}.csv"), problems)
    sequences.append(SequenceSource(subject=subject, sequence=subject, frames=frames, video=video))
    groups[subject] = group
  return sequences, groups, problems
