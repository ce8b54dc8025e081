"""BP4D as distributed: frames <subject>/<task>/<frame>.jpg, labels
AUCoding/AU_OCC/<subject>_<task>.csv, optional landmarks landmarks/<subject>_<task>.csv."""
from __future__ import annotations

import csv
import os
import re

import numpy as np

from data_pipeline.au_sets import AU_SETS
from data_pipeline.raw_sources.common import (_attach_images, _attach_landmarks, _filled_length,
                                              _occurrence, _parse_int, _quote, text_lines)
from data_pipeline.raw_sources.records import (UNKNOWN, FrameSource, Problem, SequenceSource,
                                               _Found, _outside_partition, standard_group)

_AU_HEADER = re.compile(r"^(?:au)?0*(\d+)$", re.IGNORECASE)


def _au_columns(header: list[str]) -> dict[int, int]:
  """AU number -> column index for header cells such as '12' or 'AU12' (first column skipped)."""
  columns: dict[int, int] = {}
  for i, cell in enumerate(header[1:], 1):
    match = _AU_HEADER.match(cell)
    if match:
      columns.setdefault(int(match.group(1)), i)
  return columns


def _read_bp4d_labels(path: str, aus: tuple[int, ...],
                      problems: list[Problem]) -> list[FrameSource]:
  """The frames of one AU_OCC file: header row of AU numbers, rows `frame,v,v,...` with v in
  0, 1, 9 (9 = unknown). A row without a frame number, or with fewer or more values than the
  header has columns, is skipped; a bad value is unknown."""
  rows = [[c.strip() for c in row] for row in csv.reader(text_lines(path, problems))]
  if not rows:
    problems.append(Problem(path, "empty file: expected a header row of AU numbers, then one row "
                            "per frame", "bad label file", 0))
    return []
  header = rows[0]
  columns = _au_columns(header)
  frames: dict[int, FrameSource] = {}
  for line_number, cells in enumerate(rows[1:], 2):
    if not any(cells):
      continue
    frame = _parse_int(cells[0])
    if frame is None or len(cells) < len(header) or _filled_length(cells) > len(header):
      problems.append(Problem(path, f"line {line_number}: expected a frame number and "
                              f"{len(header) - 1} values 0, 1 or 9, got '{_quote(','.join(cells))}'"
                              "; row skipped", "bad label row", 1))
      continue
    if frame in frames:
      problems.append(Problem(path, f"line {line_number}: frame {frame} again; the first row is "
                              "kept", "duplicate frame", 0))
      continue
    labels = np.full(len(aus), UNKNOWN, np.int8)
    bad = []
    for j, au in enumerate(aus):
      if au in columns:
        value = _occurrence(cells[columns[au]])
        if value is None:
          bad.append(f"AU{au} is '{_quote(cells[columns[au]], 12)}'")
        else:
          labels[j] = value
    if bad:
      problems.append(Problem(path, f"line {line_number}: {', '.join(bad)}, expected 0, 1 or 9; "
                              f"unknown (-1) for frame {frame}", "bad label row", 0))
    frames[frame] = FrameSource(frame=frame, labels=labels, intensity=None, landmarks=None)
  missing = [au for au in aus if au not in columns]
  if missing:
    problems.append(Problem(path, f"the header has no column for AU {', '.join(map(str, missing))}"
                            f"; unknown (-1) for its {len(frames)} frames", "missing AU column", 0))
  return [frames[k] for k in sorted(frames)]


def _read_bp4d_raw(root: str) -> _Found:
  aus = AU_SETS["bp4d"]
  label_dir = os.path.join(root, "AUCoding", "AU_OCC")
  sequences, groups, problems = [], {}, []
  for name in sorted(os.listdir(label_dir)):
    path = os.path.join(label_dir, name)
    if not name.lower().endswith(".csv"):
      continue
    subject, sep, task = os.path.splitext(name)[0].partition("_")
    if not (subject and sep and task):
      problems.append(Problem(path, "expected a file named <subject>_<task>.csv, e.g. "
                              "F001_T1.csv; skipped", "bad label file name", 0))
      continue
    frames = _read_bp4d_labels(path, aus, problems)
    if not frames:
      continue
    group = standard_group("bp4d", subject)
    if group is None:
      problems.append(_outside_partition("bp4d", subject, path, len(frames)))
      continue
    frames = _attach_images(frames, os.path.join(root, subject, task), lambda n: n, path, problems)
    _attach_landmarks(frames, os.path.join(root, "landmarks", f"{subject}_{task}.csv"), problems)
    sequences.append(SequenceSource(subject=subject, sequence=f"{subject}/{task}", frames=frames))
    groups[subject] = group
  return sequences, groups, problems
