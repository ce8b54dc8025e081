"""The user's own table, frames.csv: path, subject, sequence, frame, AU<k>..., [part],
[x0..x(N-1), y0..y(N-1)]."""
from __future__ import annotations

import csv
import dataclasses
import os
import re

import numpy as np

from data_pipeline.au_sets import AU_SETS
from data_pipeline.errors import UserError
from data_pipeline.raw_sources.common import (LANDMARK_POINTS, _filled_length, _keep_existing,
                                              _landmarks_from_cells, _occurrence, _parse_int,
                                              _quote, _sequences, text_lines)
from data_pipeline.raw_sources.records import (UNKNOWN, FrameSource, Problem, _Found,
                                               _outside_partition, standard_group)

_AU_NAME = re.compile(r"^au0*(\d+)$", re.IGNORECASE)


_REQUIRED_COLUMNS = ("path", "subject", "sequence", "frame")
_PARTS = ("1", "2", "3", "train", "test")


@dataclasses.dataclass
class _CsvColumns:
  index: dict[str, int]           # path, subject, sequence, frame, [part] -> column
  aus: dict[int, int]             # AU -> column, for the dataset's AUs present
  landmarks: list[int]            # x0..x(N-1), y0..y(N-1) columns, or []
  width: int


def _au_names(aus) -> str:
  return "AU" + ", AU".join(map(str, aus))


def _landmark_columns(names: list[str], path: str) -> list[int]:
  """The columns x0..x(N-1), y0..y(N-1) (also x_0, y_0 as OpenFace names them), or []."""
  coordinates = {}
  for i, name in enumerate(names):
    match = re.match(r"^([xy])_?(\d+)$", name)
    if match:
      coordinates.setdefault((match.group(1), int(match.group(2))), i)
  n = sum(1 for axis, _ in coordinates if axis == "x")
  wanted = [(axis, k) for axis in "xy" for k in range(n)]
  if coordinates and (n not in LANDMARK_POINTS or sorted(wanted) != sorted(coordinates)):
    raise UserError(f"{path}: landmark columns must be x0..x(N-1) and y0..y(N-1) with N = 68, "
                    f"49 or 66; found {n} x and {len(coordinates) - n} y columns")
  return [coordinates[key] for key in wanted]


def _csv_columns(header: list[str], dataset: str, path: str) -> _CsvColumns:
  """The columns of frames.csv; UserError when the table as a whole cannot be read."""
  names = [h.strip() for h in header]
  lower = {}
  for i, name in enumerate(names):
    lower.setdefault(name.lower(), i)
  missing = [c for c in _REQUIRED_COLUMNS if c not in lower]
  if missing:
    raise UserError(f"{path}: no column {', '.join(missing)}; expected columns path, subject, "
                    f"sequence, frame, then {_au_names(AU_SETS[dataset])}")
  if dataset == "gft" and "part" not in lower:
    raise UserError(f"{path}: GFT needs a 'part' column (train or test per subject): no standard "
                    "GFT partition is built in")
  au_columns: dict[int, int] = {}
  for i, name in enumerate(names):
    match = _AU_NAME.match(name)
    if match and int(match.group(1)) in AU_SETS[dataset]:
      au_columns.setdefault(int(match.group(1)), i)
  if not au_columns:
    raise UserError(f"{path}: no AU column; expected {_au_names(AU_SETS[dataset])}")
  index = {c: lower[c] for c in _REQUIRED_COLUMNS + ("part",) if c in lower}
  return _CsvColumns(index=index, aus=au_columns, landmarks=_landmark_columns(names, path),
                     width=len(names))


def _csv_sequence_id(subject: str, sequence: str) -> str:
  """'F001', 'T1' -> 'F001/T1'; a sequence already named after its subject is kept as it is."""
  if sequence == subject or sequence.startswith(subject + "/"):
    return sequence
  return f"{subject}/{sequence}"


def _csv_row(cells: list[str], columns: _CsvColumns, dataset: str) -> tuple[dict, str | None]:
  """(fields, None) for a good row, ({}, what is wrong) for a bad one."""
  if len(cells) < columns.width or _filled_length(cells) > columns.width:
    return {}, f"expected {columns.width} cells, got {_filled_length(cells)}"
  fields = {c: cells[i] for c, i in columns.index.items()}
  empty = [c for c in _REQUIRED_COLUMNS if not fields[c]]
  if empty:
    return {}, f"empty {', '.join(empty)}"
  frame = _parse_int(fields["frame"])
  if frame is None:
    return {}, f"frame '{_quote(fields['frame'], 20)}' is not an integer"
  aus = AU_SETS[dataset]
  labels = np.full(len(aus), UNKNOWN, np.int8)
  for j, au in enumerate(aus):
    if au in columns.aus:
      text = cells[columns.aus[au]]
      value = UNKNOWN if text == "" else _occurrence(text)
      if value is None:
        return {}, f"AU{au} is '{_quote(text, 12)}', expected 1, 0, or 9, -1 or empty for unknown"
      labels[j] = value
  part = fields.get("part", "").lower()
  if part not in _PARTS + ("",) or (dataset == "gft" and part not in ("train", "test")):
    expected = "train or test" if dataset == "gft" else "1, 2, 3, train, test or empty"
    return {}, f"part is '{_quote(part, 12)}', expected {expected}"
  return dict(fields, frame=frame, labels=labels, part=part), None


class _CsvTable:
  """The rows of frames.csv as frames, and the part each subject was given."""

  def __init__(self, dataset: str, root: str):
    self.dataset, self.root = dataset, root
    self.path = os.path.join(root, "frames.csv")
    self.problems: list[Problem] = []
    self.frames: dict[tuple[str, int], tuple[str, FrameSource]] = {}  # (sequence, frame) -> ...
    self.parts: dict[str, tuple[str, int]] = {}  # subject -> (part, line it was given on)
    self.columns: _CsvColumns | None = None

  def read(self) -> None:
    reader = csv.reader(text_lines(self.path, self.problems))
    header = next(reader, None)
    if header is None:
      raise UserError(f"{self.path} is empty: expected a header row (path, subject, sequence, "
                      "frame, AU columns), then one row per frame")
    self.columns = _csv_columns(header, self.dataset, self.path)
    for row in reader:
      cells = [c.strip() for c in row]
      if any(cells):
        self._add_row(reader.line_num, cells)
    missing = [au for au in AU_SETS[self.dataset] if au not in self.columns.aus]
    if missing:
      self.problems.append(Problem(self.path, f"no column {_au_names(missing)}; unknown (-1) for "
                                   f"all {len(self.frames)} frames", "missing AU column", 0))

  def _add_row(self, line: int, cells: list[str]) -> None:
    fields, error = _csv_row(cells, self.columns, self.dataset)
    subject, part = fields.get("subject"), fields.get("part")
    if error is None and part and self.parts.setdefault(subject, (part, line))[0] != part:
      first, first_line = self.parts[subject]
      error = f"part '{part}' for subject {subject}, but '{first}' on line {first_line}"
    if error is not None:
      self.problems.append(Problem(self.path, f"line {line}: {error}; row skipped", "bad row", 1))
      return
    key = (_csv_sequence_id(subject, fields["sequence"]), fields["frame"])
    if key in self.frames:
      self.problems.append(Problem(self.path, f"line {line}: frame {key[1]} of {key[0]} again; "
                                   "the first row is kept", "duplicate frame", 0))
      return
    try:
      landmarks = _landmarks_from_cells([cells[i] for i in self.columns.landmarks])
    except ValueError as e:
      self.problems.append(Problem(self.path, f"line {line}: {e}; frame {key[1]} of {key[0]} has "
                                   "no landmarks", "bad landmark row", 0))
      landmarks = None
    self.frames[key] = (subject, FrameSource(frame=key[1], labels=fields["labels"],
                                             intensity=None, landmarks=landmarks,
                                             image=os.path.join(self.root, fields["path"])))

  def groups(self, subjects: list[str]) -> dict[str, str]:
    """Each subject's part: the one given, else its standard one; subjects with neither are
    reported."""
    groups = {}
    for subject in sorted(subjects):
      given = self.parts.get(subject)
      group = given[0] if given else standard_group(self.dataset, subject)
      if group is not None:
        groups[subject] = group
    if not (set(groups.values()) <= {"1", "2", "3"} or set(groups.values()) <= {"train", "test"}):
      raise UserError(f"{self.path}: the subjects' parts mix 1/2/3 with train/test "
                      f"({', '.join(sorted(set(groups.values())))}); use one scheme (subjects "
                      "without a part get their standard part 1, 2 or 3)")
    return groups


def _read_frames_csv(dataset: str, root: str) -> _Found:
  table = _CsvTable(dataset, root)
  table.read()
  problems = table.problems
  sequences = _sequences(table.frames, _keep_existing([f for _, f in table.frames.values()],
                                                      "frames.csv", problems))
  groups = table.groups([s.subject for s in sequences])
  for subject in sorted({s.subject for s in sequences} - set(groups)):
    count = sum(len(s.frames) for s in sequences if s.subject == subject)
    problems.append(_outside_partition(dataset, subject, table.path, count))
  return [s for s in sequences if s.subject in groups], groups, problems
