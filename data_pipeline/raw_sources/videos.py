"""Unlabelled face videos: every video and frame folder under a root, one sequence each."""
from __future__ import annotations

import collections
import concurrent.futures
import os
import re

import numpy as np

from data_pipeline import video_io
from data_pipeline.errors import UserError
from data_pipeline.raw_sources.common import _check_folder
from data_pipeline.raw_sources.records import FrameSource, Problem, SequenceSource, SourceIndex

_PREFIX_NUMBER = re.compile(r"^(.*?)(\d+)$")
_NO_LABELS = np.zeros([0], np.int8)  # Shared by every unlabelled frame.
_NO_LABELS.setflags(write=False)


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
