"""Readers for the AU datasets in the layouts users have (DESIGN.md 3.1), and for folders of face
videos. numpy and OpenCV only; the tfds builders consume what these find.

`discover` reads every label and landmark file of a dataset into a `SourceIndex`. It raises
UserError only when nothing can be built; every other fault becomes a `Problem` (the file, what
is wrong, how many frames it cost) and the rest builds. `read_images` then decodes the pixels of
one sequence. A Problem reads as one line: f"{problem.path}: {problem.message}".

The first layout whose marker is in manual_dir is read, in this order:
  csv        frames.csv (the user's own table: the most explicit choice)
  lists      list/<DS>_{train,test}_img_path_fold<k>.txt (ME-GraphAU's; its DISFA folder also
             holds ActionUnit_Labels/, so the lists come before the raw layouts)
  bp4d_raw   AUCoding/AU_OCC/ (BP4D only)
  disfa_raw  ActionUnit_Labels/ (DISFA only)

Conventions: labels are int8, 1 present, 0 absent, -1 unknown; DISFA intensities are float32 0-5,
-1 where unknown; landmarks are float32 [68,2] source-image pixels, converted from 49 or 66 points
by `alignment.convert_to_68`, None for an empty row (or one of all zeros, which landmark tools
write when they fail).
"""
from __future__ import annotations

import collections
import concurrent.futures
import csv
import dataclasses
import os
import re
from typing import Callable, Iterator

import numpy as np

from data_pipeline import alignment, video_io
from data_pipeline.au_sets import AU_SETS
from data_pipeline.errors import UserError

# DESIGN.md 3.1: fold k tests on part 4-k and trains on the other two.
STANDARD_PARTS: dict[str, dict[str, tuple[str, ...]]] = {
    "bp4d": {
        "1": ("F001", "M007", "F018", "F008", "F002", "M004", "F010", "F009", "M012", "M001",
              "F016", "M014", "F023", "M008"),
        "2": ("M011", "F003", "M010", "M002", "F005", "F022", "M018", "M017", "F013", "M016",
              "F020", "F011", "M013", "M005"),
        "3": ("F007", "F015", "F006", "F019", "M006", "M009", "F012", "M003", "F004", "F021",
              "F017", "M015", "F014"),
    },
    "disfa": {
        "1": ("SN002", "SN010", "SN001", "SN026", "SN027", "SN032", "SN030", "SN009", "SN016"),
        "2": ("SN013", "SN018", "SN011", "SN028", "SN012", "SN006", "SN031", "SN021", "SN024"),
        "3": ("SN003", "SN029", "SN023", "SN025", "SN008", "SN005", "SN007", "SN017", "SN004"),
    },
}
DATASETS = ("bp4d", "disfa", "gft")
LANDMARK_POINTS = (68, 49, 66)
UNKNOWN = -1
DISFA_POSITIVE = 2  # DISFA occurrence: intensity >= 2.

_OCCURRENCE = {0: 0, 1: 1, 9: UNKNOWN, -1: UNKNOWN}
_TRAILING_NUMBER = re.compile(r"(\d+)$")
_PREFIX_NUMBER = re.compile(r"^(.*?)(\d+)$")
_AU_NAME = re.compile(r"^au0*(\d+)$", re.IGNORECASE)
_AU_HEADER = re.compile(r"^(?:au)?0*(\d+)$", re.IGNORECASE)
_LIST_NAME = re.compile(
    r"^(?P<ds>[A-Za-z0-9]+)_(?P<split>train|test)_img_path_fold(?P<fold>\d+)\.txt$")
_NO_LABELS = np.zeros([0], np.int8)  # Shared by every unlabelled frame.
_NO_LABELS.setflags(write=False)


@dataclasses.dataclass(slots=True)
class FrameSource:
  """One frame: its labels and landmarks, and where its pixels are."""
  frame: int                      # frame number as the dataset counts it
  labels: np.ndarray              # int8 [A], dataset AU order: 1 present, 0 absent, -1 unknown
  intensity: np.ndarray | None    # float32 [A] (DISFA intensities 0-5, -1 unknown), else None
  landmarks: np.ndarray | None    # float32 [68,2] source-image pixels, None if absent/empty
  image: str | None = None        # image file path; None when the frame comes from the video
  video_index: int | None = None  # 0-based index of the frame in `SequenceSource.video`


@dataclasses.dataclass
class SequenceSource:
  subject: str
  sequence: str                   # unique id, e.g. "F001/T1", "SN001"
  frames: list[FrameSource]       # sorted by frame
  video: str | None = None
  # True when the frames were listed from the container's frame count (discover_videos), which
  # is only a hint: read_images then ends quietly where the video really ends.
  frames_estimated: bool = False


@dataclasses.dataclass
class Problem:
  path: str                       # the file at fault
  message: str                    # what is wrong and what was expected, e.g. "line 7: expected ..."
  reason: str                     # short key for summaries: "missing image", "bad label row", ...
  frames: int                     # how many frames it cost (0 if none were lost)


@dataclasses.dataclass
class SourceIndex:
  layout: str                     # "bp4d_raw", "disfa_raw", "lists", "csv", "videos"
  aus: tuple[int, ...]
  sequences: list[SequenceSource]
  subject_group: dict[str, str]   # subject -> "1"/"2"/"3" (standard parts) or "train"/"test"
  problems: list[Problem]


# What a layout reader finds: sequences, subject -> group, problems.
_Found = tuple[list[SequenceSource], dict[str, str], list[Problem]]


# --------------------------------------------------------------------------------------------
# Small parsers
# --------------------------------------------------------------------------------------------

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


def _quote(text: str, limit: int = 60) -> str:
  return text if len(text) <= limit else text[:limit] + "..."


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
  with open(path, newline="") as f:
    for line_number, row in enumerate(csv.reader(f), 1):
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


# --------------------------------------------------------------------------------------------
# Images on disk
# --------------------------------------------------------------------------------------------

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


def _frame_folder(folder: str) -> dict[int, str]:
  """Frame number -> path if `folder` is a frame folder: at least 2 images named
  <prefix><number> with one prefix (the most common one; other images are ignored, so a stray
  'cover-01.jpg' is not a video); else {}."""
  by_prefix: dict[str, dict[int, str]] = collections.defaultdict(dict)
  for name in sorted(os.listdir(folder)):
    match = _PREFIX_NUMBER.match(os.path.splitext(name)[0])
    if match and video_io.has_extension(name, video_io.IMAGE_EXTENSIONS):
      by_prefix[match.group(1)].setdefault(int(match.group(2)), os.path.join(folder, name))
  largest = max(by_prefix.values(), key=len, default={})
  return largest if len(largest) >= 2 else {}


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


# --------------------------------------------------------------------------------------------
# Subject partitions
# --------------------------------------------------------------------------------------------

def standard_group(dataset: str, subject: str) -> str | None:
  """The standard part ("1", "2", "3") of a BP4D or DISFA subject; None if it has none."""
  for part, subjects in STANDARD_PARTS.get(dataset, {}).items():
    if subject in subjects:
      return part
  return None


def _outside_partition(dataset: str, subject: str, path: str, frames: int) -> Problem:
  return Problem(path, f"subject {subject} is not in the standard {dataset.upper()} partition "
                 f"(ME-GraphAU's 3 parts); its {frames} frames are skipped (give it a part in a "
                 "frames.csv to use it)", "subject not in the standard partition", frames)


# --------------------------------------------------------------------------------------------
# BP4D raw: <subject>/<task>/<frame>.jpg, AUCoding/AU_OCC/<subject>_<task>.csv
# --------------------------------------------------------------------------------------------

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
  0, 1, 9 (9 = unknown). A row without a frame number is skipped; a bad value is unknown."""
  with open(path, newline="") as f:
    rows = [[c.strip() for c in row] for row in csv.reader(f)]
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
    if frame is None or len(cells) < len(header):
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


# --------------------------------------------------------------------------------------------
# DISFA raw: Videos_LeftCamera/LeftVideoSN001_comp.avi or SN001/<i>.png,
# ActionUnit_Labels/SN001/SN001_au<k>.txt
# --------------------------------------------------------------------------------------------

def _read_disfa_au(path: str, problems: list[Problem]) -> dict[int, int]:
  """Frame -> intensity from lines `frame,intensity`; a bad line's frame gets -1 (unknown)."""
  intensities: dict[int, int] = {}
  with open(path) as f:
    for line_number, line in enumerate(f, 1):
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


# --------------------------------------------------------------------------------------------
# ME-GraphAU lists: list/<DS>_{train,test}_{img_path,label}_fold<k>.txt, images under img/
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class _ListFile:
  split: str
  fold: int
  paths: str
  labels: str


def _list_files(root: str, dataset: str) -> list[_ListFile]:
  folder = os.path.join(root, "list")
  if not os.path.isdir(folder):
    return []
  out = []
  for name in sorted(os.listdir(folder)):
    match = _LIST_NAME.match(name)
    if match and match["ds"] == dataset.upper():
      label_name = f"{match['ds']}_{match['split']}_label_fold{match['fold']}.txt"
      out.append(_ListFile(match["split"], int(match["fold"]), os.path.join(folder, name),
                           os.path.join(folder, label_name)))
  return out


def _read_lines(path: str) -> list[str]:
  """The file's lines, stripped, without the blank lines at its end."""
  with open(path) as f:
    lines = [line.strip() for line in f.read().splitlines()]
  while lines and not lines[-1]:
    lines.pop()
  return lines


def _parse_list_path(text: str) -> tuple[str, str, int] | None:
  """(subject, sequence, frame) of an image path relative to img/: 'F001/T1/2440.jpg' ->
  ('F001', 'F001/T1', 2440); None if it is not <subject>/.../<number>.<ext>."""
  rel = text.replace("\\", "/")
  while rel.startswith("./"):
    rel = rel[2:]
  parts = rel.split("/")
  if rel.startswith("/") or len(parts) < 2 or not all(parts):
    return None
  frame = _frame_number(parts[-1])
  return None if frame is None else (parts[0], "/".join(parts[:-1]), frame)


def _parse_list_labels(text: str, count: int) -> np.ndarray | None:
  tokens = text.replace(",", " ").split()
  values = [_occurrence(t) for t in tokens]
  if len(values) != count or None in values:
    return None
  return np.array(values, np.int8)


def _list_groups(dataset: str, subjects: set[str], test_lists: dict[int, tuple[str, set[str]]],
                 problems: list[Problem]) -> dict[str, str]:
  """Fold k's test list holds part 4-k. GFT with fold 1 only: its test subjects are 'test' and the
  rest 'train'. Other subjects fall back on the standard partition."""
  train_test = dataset == "gft" and set(test_lists) == {1}
  groups: dict[str, str] = {}
  for fold in sorted(test_lists):
    path, members = test_lists[fold]
    if not 1 <= fold <= 3:
      continue
    for subject in sorted(members):
      group = "test" if train_test else str(4 - fold)
      if groups.setdefault(subject, group) != group:
        problems.append(Problem(path, f"subject {subject} is also in the test list of another "
                                f"fold (part {groups[subject]}); part {groups[subject]} is kept",
                                "subject in several test lists", 0))
  for subject in sorted(subjects - set(groups)):
    group = "train" if train_test else standard_group(dataset, subject)
    if group is not None:
      groups[subject] = group
  return groups


class _ListMerger:
  """Reads ME-GraphAU lists into one set of frames: every image once, whatever lists hold it;
  labels that differ between lists become -1."""

  def __init__(self, root: str, aus: tuple[int, ...]):
    self.root, self.aus = root, aus
    self.problems: list[Problem] = []
    self.entries: dict[tuple[str, int], tuple[str, FrameSource]] = {}  # (sequence, frame) -> ...
    self.test_lists: dict[int, tuple[str, set[str]]] = {}  # fold -> (test list, its subjects)
    self._lost: list[tuple[Problem, set[tuple[str, int]]]] = []  # The frames each may cost.

  def add(self, lists: _ListFile) -> None:
    paths = _read_lines(lists.paths)
    if not os.path.isfile(lists.labels):
      self._report(Problem(lists.labels, f"missing, so the {len(paths)} images of "
                           f"{os.path.basename(lists.paths)} have no labels from it",
                           "missing label list", 0), paths)
      return
    labels = _read_lines(lists.labels)
    if len(paths) != len(labels):
      longer = lists.paths if len(paths) > len(labels) else lists.labels
      self._report(Problem(longer, f"{len(paths)} lines in {os.path.basename(lists.paths)} but "
                           f"{len(labels)} in {os.path.basename(lists.labels)}; the last "
                           f"{abs(len(paths) - len(labels))} lines of this file are ignored",
                           "list length mismatch", 0), paths[len(labels):])
    if lists.split == "test":
      self.test_lists.setdefault(lists.fold, (lists.paths, set()))
    conflicts = [c for n, (text, label_text) in enumerate(zip(paths, labels), 1)
                 if (c := self._add_line(lists, n, text, label_text))]
    if conflicts:
      line_number, text, differ = conflicts[0]
      self.problems.append(Problem(lists.labels, f"the labels of {len(conflicts)} images differ "
                                   f"from an earlier list (first: line {line_number}, {text}, AU "
                                   f"{', '.join(map(str, differ))}); those AUs are unknown (-1)",
                                   "conflicting labels", 0))

  def _add_line(self, lists: _ListFile, line_number: int, text: str,
                label_text: str) -> tuple[int, str, list[int]] | None:
    """Adds one image; returns (line, path, AUs) if its labels conflict with an earlier list's."""
    parsed = _parse_list_path(text)
    if parsed is None:
      self.problems.append(Problem(lists.paths, f"line {line_number}: expected an image path "
                                   f"<subject>/.../<frame number>.<ext> relative to img/, got "
                                   f"'{_quote(text)}'", "bad path line", 1))
      return None
    subject, sequence, frame = parsed
    if lists.split == "test":
      self.test_lists[lists.fold][1].add(subject)
    row = _parse_list_labels(label_text, len(self.aus))
    if row is None:
      self._report(Problem(lists.labels, f"line {line_number}: expected {len(self.aus)} values 0 "
                           f"or 1 separated by spaces, got '{_quote(label_text)}'",
                           "bad label row", 0), [text])
      return None
    if (sequence, frame) not in self.entries:
      image = os.path.join(self.root, "img", *text.replace("\\", "/").split("/"))
      self.entries[(sequence, frame)] = (subject, FrameSource(
          frame=frame, labels=row, intensity=None, landmarks=None, image=image))
      return None
    known = self.entries[(sequence, frame)][1].labels
    differ = (known != row) & (known != UNKNOWN)
    if not np.any(differ):
      return None
    known[differ] = UNKNOWN
    return line_number, text, [self.aus[j] for j in np.flatnonzero(differ)]

  def _report(self, problem: Problem, paths: list[str]) -> None:
    """A problem that costs the listed images unless another list holds them too."""
    self.problems.append(problem)
    self._lost.append((problem, {p[1:] for p in map(_parse_list_path, paths) if p}))

  def count_lost(self) -> None:
    for problem, keys in self._lost:
      problem.frames = len(keys - set(self.entries))


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


def _read_lists(dataset: str, root: str) -> _Found:
  merger = _ListMerger(root, AU_SETS[dataset])
  for lists in _list_files(root, dataset):
    merger.add(lists)
  merger.count_lost()
  problems = merger.problems
  frames = _keep_existing([f for _, f in merger.entries.values()],
                          f"a list in {os.path.join(root, 'list')}", problems)
  sequences = _sequences(merger.entries, frames)
  subjects = {s.subject for s in sequences}
  groups = _list_groups(dataset, subjects, merger.test_lists, problems)
  for subject in sorted(subjects - set(groups)):
    count = sum(len(s.frames) for s in sequences if s.subject == subject)
    problems.append(Problem(os.path.join(root, "list"), f"subject {subject} is in no test list "
                            f"and not in a standard partition; its {count} frames are skipped",
                            "subject in no test list", count))
  return [s for s in sequences if s.subject in groups], groups, problems


# --------------------------------------------------------------------------------------------
# frames.csv: path, subject, sequence, frame, AU<k>..., [part], [x0..x(N-1), y0..y(N-1)]
# --------------------------------------------------------------------------------------------

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
  if len(cells) < columns.width:
    return {}, f"expected {columns.width} cells, got {len(cells)}"
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
    with open(self.path, newline="", encoding="utf-8-sig") as f:
      reader = csv.reader(f)
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


# --------------------------------------------------------------------------------------------
# discover
# --------------------------------------------------------------------------------------------

_RAW_MARKERS = {"bp4d": ("bp4d_raw", os.path.join("AUCoding", "AU_OCC")),
                "disfa": ("disfa_raw", "ActionUnit_Labels")}


def _check_folder(path: str, what: str) -> str:
  path = os.path.expanduser(path)
  if not os.path.exists(path):
    raise UserError(f"{what} {path} does not exist")
  if not os.path.isdir(path):
    raise UserError(f"{what} {path} is not a directory")
  return path


def _detect_layout(dataset: str, root: str) -> str:
  if os.path.isfile(os.path.join(root, "frames.csv")):
    return "csv"
  if _list_files(root, dataset):
    return "lists"
  if dataset in _RAW_MARKERS and os.path.isdir(os.path.join(root, _RAW_MARKERS[dataset][1])):
    return _RAW_MARKERS[dataset][0]
  looked = ["frames.csv", f"list/{dataset.upper()}_{{train,test}}_img_path_fold<k>.txt"]
  if dataset in _RAW_MARKERS:
    looked.append(_RAW_MARKERS[dataset][1] + "/")
  other = [f"{marker}/ (a {name.upper()} layout)" for name, (_, marker) in _RAW_MARKERS.items()
           if name != dataset and os.path.isdir(os.path.join(root, marker))]
  found = f"; found only {', '.join(other)}" if other else ""
  raise UserError(f"no {dataset.upper()} layout in {root}: looked for {', '.join(looked)}{found}")


_READERS = {"csv": _read_frames_csv, "lists": _read_lists,
            "bp4d_raw": lambda dataset, root: _read_bp4d_raw(root),
            "disfa_raw": lambda dataset, root: _read_disfa_raw(root)}


def _no_frames_error(root: str, layout: str, problems: list[Problem]) -> UserError:
  if not problems:
    return UserError(f"no labelled frame in {root} ({layout} layout): its label files are empty")
  cost = collections.Counter()
  for p in problems:
    cost[p.reason] += p.frames
  reason = cost.most_common(1)[0][0]
  example = next(p for p in problems if p.reason == reason)
  return UserError(f"no usable frame in {root} ({layout} layout): {len(problems)} problems, most "
                   f"frames lost to '{reason}', e.g. {example.path}: {example.message}")


def discover(dataset: str, manual_dir: str) -> SourceIndex:
  """Finds the layout of `manual_dir` and reads every label and landmark file of `dataset`
  ("bp4d", "disfa" or "gft"). Per-file faults are listed in `problems`; raises UserError if the
  folder is missing, holds no known layout, or yields no usable frame."""
  if dataset not in DATASETS:
    raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
  root = _check_folder(manual_dir, "manual_dir")
  layout = _detect_layout(dataset, root)
  sequences, groups, problems = _READERS[layout](dataset, root)
  sequences = sorted((s for s in sequences if s.frames), key=lambda s: s.sequence)
  if not sequences:
    raise _no_frames_error(root, layout, problems)
  subjects = {s.subject for s in sequences}
  return SourceIndex(layout=layout, aus=AU_SETS[dataset], sequences=sequences,
                     subject_group={s: g for s, g in sorted(groups.items()) if s in subjects},
                     problems=problems)


# --------------------------------------------------------------------------------------------
# Unlabelled face videos
# --------------------------------------------------------------------------------------------

def _video_sequence(path: str, count: int, subject: str, sequence: str) -> SequenceSource:
  frames = [FrameSource(frame=i, labels=_NO_LABELS, intensity=None, landmarks=None, video_index=i)
            for i in range(count)]
  return SequenceSource(subject=subject, sequence=sequence, frames=frames, video=path,
                        frames_estimated=True)


def discover_videos(root: str, identity_from_top_folder: bool) -> SourceIndex:
  """Every video (.mp4 .avi .mov .mkv, any case) and frame folder (see _frame_folder) under
  `root`, at any depth, as one unlabelled sequence each, named by its path relative to `root`
  without extension. The subject is the top-level folder when identity_from_top_folder
  (VoxCeleb: <id>/<youtube_id>/<clip>.mp4), else the sequence itself. A video's frames are listed
  from its container's frame count, a hint (see SequenceSource.frames_estimated)."""
  root = _check_folder(root, "video folder")
  videos, folders = [], []
  for folder, dirs, files in os.walk(root, followlinks=True):
    dirs.sort()
    videos += [os.path.join(folder, n) for n in sorted(files)
               if video_io.has_extension(n, video_io.VIDEO_EXTENSIONS)]
    images = _frame_folder(folder)
    if images:
      folders.append((folder, images))
  with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
    counts = list(pool.map(video_io.frame_count, videos))
  problems, named = [], []
  for path, count in zip(videos, counts):
    if not count:
      state = "cannot be opened or decoded as a video" if count is None else "holds no frame"
      problems.append(Problem(path, f"{state}; skipped", "unreadable video", 0))
    else:
      named.append((os.path.splitext(os.path.relpath(path, root))[0], path, count))
  named += [(os.path.relpath(folder, root) if folder != root else os.path.basename(root), folder,
             images) for folder, images in folders]
  sequences, used = [], set()
  for name, path, content in sorted(named, key=lambda item: item[1]):
    name = name.replace(os.sep, "/")
    if name in used:  # a.mp4 next to a.avi: the second keeps its extension.
      name = os.path.relpath(path, root).replace(os.sep, "/")
    used.add(name)
    top = name.split("/")[0]
    subject = top if identity_from_top_folder and "/" in name else name
    if isinstance(content, int):
      sequences.append(_video_sequence(path, content, subject, name))
    else:
      frames = [FrameSource(frame=n, labels=_NO_LABELS, intensity=None, landmarks=None, image=p)
                for n, p in sorted(content.items())]
      sequences.append(SequenceSource(subject=subject, sequence=name, frames=frames))
  if not sequences:
    raise UserError(f"no video ({', '.join(video_io.VIDEO_EXTENSIONS)}) or frame folder (images "
                    f"named by frame number) under {root}"
                    + (f"; {len(problems)} videos could not be read" if problems else ""))
  return SourceIndex(layout="videos", aus=(), sequences=sorted(sequences, key=lambda s: s.sequence),
                     subject_group={}, problems=problems)


# --------------------------------------------------------------------------------------------
# Pixels
# --------------------------------------------------------------------------------------------

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
      yield f, None, Problem(f.image, "cannot be decoded as an image", "unreadable image", 1)
    else:
      yield f, None, Problem(f.image, "missing (it was there when the dataset was listed)",
                             "missing image", 1)
