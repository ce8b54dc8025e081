"""What the raw-source readers share: small parsers, landmark files, images on disk, frames
grouped into sequences."""
from __future__ import annotations

import collections
import csv
import os
import re
from typing import Callable

import numpy as np

from data_pipeline import alignment, video_io
from data_pipeline.errors import UserError
from data_pipeline.raw_sources.records import UNKNOWN, FrameSource, Problem, SequenceSource

LANDMARK_POINTS = (68, 49, 66)

_OCCURRENCE = {0: 0, 1: 1, 9: UNKNOWN, -1: UNKNOWN}
_TRAILING_NUMBER = re.compile(r"(\d+)$")


def _parse_int(text: str) -> int | None:
  """'12' or '12.0' -> 12; anything else -> None."""
  try:
    value = float(text)
  except ValueError:
    return None
  return int(value) if value.is_integer() else None


def _occurrence(text: str) -> int | None:
  """0 or 1, -1 for the unknown codes 9 and -1, None for anything else."""
  value = _parse_int(text)
  return None if value is None else _OCCURRENCE.get(value)


def _frame_number(name: str) -> int | None:
  """The number that ends a file name's stem: '2440.jpg' -> 2440, 'frame_0007.png' -> 7."""
  match = _TRAILING_NUMBER.search(os.path.splitext(name)[0])
  return int(match.group(1)) if match else None


def _filled_length(cells: list[str]) -> int:
  """How many cells a row has up to its last non-empty one (trailing commas do not count)."""
  while cells and not cells[-1]:
    cells = cells[:-1]
  return len(cells)


def _quote(text: str, limit: int = 60) -> str:
  return text if len(text) <= limit else text[:limit] + "..."


def text_lines(path: str, problems: list[Problem], frames_per_line: int = 1) -> list[str]:
  """The lines of a text file (UTF-8, an optional BOM), without their endings. A line that is not
  UTF-8 is reported with its number and read as an empty line, so it costs that row alone and
  the other lines keep their numbers; `frames_per_line` is what such a row costs."""
  with open(path, "rb") as f:
    raw = f.read()
  if raw.startswith(b"\xef\xbb\xbf"):
    raw = raw[3:]
  lines = []
  for number, line in enumerate(raw.splitlines(), 1):
    try:
      lines.append(line.decode("utf-8"))
    except UnicodeDecodeError:
      problems.append(Problem(path, f"line {number}: not UTF-8 text; row skipped",
                              "undecodable line", frames_per_line))
      lines.append("")
  return lines


def _landmarks_from_cells(cells: list[str]) -> np.ndarray | None:
  """68 landmarks from the cells x0..x(N-1), y0..y(N-1), N = 68, 49 or 66; None when they are
  all empty or all zero. Raises ValueError, saying what was expected, on anything else."""
  if len(cells) % 2 and cells[-1] == "":  # A trailing comma.
    cells = cells[:-1]
  if not any(cells):
    return None
  if len(cells) % 2 or len(cells) // 2 not in LANDMARK_POINTS:
    raise ValueError(f"expected 2N coordinates x0..x(N-1), y0..y(N-1) with N = 68, 49 or 66, "
                     f"got {len(cells)} values")
  try:
    values = np.array([float(c) for c in cells], np.float64)
  except ValueError:
    raise ValueError(f"expected numeric coordinates, got '{_quote(','.join(cells))}'") from None
  n = len(values) // 2
  points = np.stack([values[:n], values[n:]], axis=1)
  if not np.any(points):
    return None
  return alignment.convert_to_68(points)


def _read_landmark_file(path: str, problems: list[Problem]) -> dict[int, np.ndarray | None]:
  """Frame -> landmarks from rows `frame,x0..x(N-1),y0..y(N-1)` (header row optional). A
  malformed row is reported and gives that frame no landmarks."""
  out: dict[int, np.ndarray | None] = {}
  for line_number, row in enumerate(csv.reader(text_lines(path, problems, 0)), 1):
    cells = [c.strip() for c in row]
    if not any(cells):
      continue
    frame = _parse_int(cells[0])
    if frame is None:
      if line_number > 1:  # Line 1 may be a header.
        problems.append(Problem(path, f"line {line_number}: expected a frame number in the "
                                f"first column, got '{_quote(cells[0])}'", "bad landmark row", 0))
      continue
    try:
      out[frame] = _landmarks_from_cells(cells[1:])
    except ValueError as e:
      problems.append(Problem(path, f"line {line_number}: {e}; frame {frame} has no landmarks",
                              "bad landmark row", 0))
      out[frame] = None
  return out


def _attach_landmarks(frames: list[FrameSource], path: str, problems: list[Problem]) -> None:
  """Sets the frames' landmarks from `path`, when the dataset has a landmarks folder at all."""
  if not os.path.isdir(os.path.dirname(path)):
    return
  if not os.path.isfile(path):
    problems.append(Problem(path, f"missing: the {len(frames)} frames of this sequence have no "
                            "landmarks", "missing landmarks file", 0))
    return
  landmarks = _read_landmark_file(path, problems)
  for f in frames:
    f.landmarks = landmarks.get(f.frame)


def _numbered_images(folder: str) -> dict[int, str] | None:
  """Frame number -> path of the images in `folder` named by number; None if no such folder."""
  try:
    names = sorted(os.listdir(folder))
  except (FileNotFoundError, NotADirectoryError):
    return None
  images: dict[int, str] = {}
  for name in names:
    number = _frame_number(name)
    if number is not None and video_io.has_extension(name, video_io.IMAGE_EXTENSIONS):
      images.setdefault(number, os.path.join(folder, name))
  return images


def _attach_images(frames: list[FrameSource], folder: str, file_number: Callable[[int], int],
                   label_file: str, problems: list[Problem]) -> list[FrameSource]:
  """The labelled frames whose image (numbered file_number(frame)) is in `folder`, with that image
  set; the others are reported missing. Images without labels are not frames of the dataset and
  pass silently: BP4D codes only a segment of each task, and its folders hold every frame."""
  images = _numbered_images(folder)
  if not images:
    state = "missing" if images is None else "holds no image named by frame number"
    problems.append(Problem(folder, f"folder {state}; {os.path.basename(label_file)} labels "
                            f"{len(frames)} frames in it", "missing image folder", len(frames)))
    return []
  extension = os.path.splitext(next(iter(images.values())))[1]
  kept = []
  for f in frames:
    path = images.get(file_number(f.frame))
    if path is None:
      problems.append(Problem(os.path.join(folder, f"{file_number(f.frame)}{extension}"),
                              f"missing: frame {f.frame} of {os.path.basename(label_file)} has no "
                              "image", "missing image", 1))
      continue
    f.image = path
    kept.append(f)
  return kept


class _FileCheck:
  """Which of many listed image files exist, one directory listing per folder."""

  def __init__(self):
    self._listings: dict[str, set[str] | None] = {}

  def folder_exists(self, folder: str) -> bool:
    return self._listing(folder) is not None

  def exists(self, path: str) -> bool:
    listing = self._listing(os.path.dirname(path))
    return listing is not None and os.path.basename(path) in listing

  def _listing(self, folder: str) -> set[str] | None:
    if folder not in self._listings:
      try:
        self._listings[folder] = set(os.listdir(folder))
      except (FileNotFoundError, NotADirectoryError):
        self._listings[folder] = None
    return self._listings[folder]


def _keep_existing(frames: list[FrameSource], origin: str,
                   problems: list[Problem]) -> list[FrameSource]:
  """The frames whose image file exists; one problem per missing image, or per missing folder."""
  check = _FileCheck()
  by_folder: dict[str, list[FrameSource]] = collections.defaultdict(list)
  for f in frames:
    by_folder[os.path.dirname(f.image)].append(f)
  kept = []
  for folder, members in by_folder.items():
    if not check.folder_exists(folder):
      problems.append(Problem(folder, f"folder missing; {origin} names {len(members)} images in "
                              "it", "missing image folder", len(members)))
      continue
    for f in members:
      if check.exists(f.image):
        kept.append(f)
      else:
        problems.append(Problem(f.image, f"missing; {origin} names it", "missing image", 1))
  return kept


def _sequences(entries: dict[tuple[str, int], tuple[str, FrameSource]],
               kept: list[FrameSource]) -> list[SequenceSource]:
  """Groups the `kept` frames of `entries` ((sequence, frame) -> (subject, frame)) by sequence."""
  kept_ids = {id(f) for f in kept}
  by_sequence: dict[str, tuple[str, list[FrameSource]]] = {}
  for (sequence, _), (subject, f) in sorted(entries.items()):
    if id(f) in kept_ids:
      by_sequence.setdefault(sequence, (subject, []))[1].append(f)
  return [SequenceSource(subject=subject, sequence=sequence, frames=frames)
          for sequence, (subject, frames) in by_sequence.items()]


def _check_folder(path: str, what: str) -> str:
  path = os.path.expanduser(path)
  if not os.path.exists(path):
    raise UserError(f"{what} {path} does not exist")
  if not os.path.isdir(path):
    raise UserError(f"{what} {path} is not a directory")
  return path
