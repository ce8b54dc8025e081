"""What the raw-source readers return (frames, sequences, problems, the index of a dataset) and
the standard subject partitions of BP4D and DISFA."""
from __future__ import annotations

import dataclasses

import numpy as np

# The standard partitions (docs/DATA.md, "Folds"): fold k tests on part 4-k and trains on the
# other two.
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
UNKNOWN = -1


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
