"""ME-GraphAU's lists: list/<DS>_{train,test}_{img_path,label}_fold<k>.txt, images under img/.
Every image is read once whatever lists hold it; a subject's part is the one whose fold's test
list holds it."""
from __future__ import annotations

import dataclasses
import os
import re

import numpy as np

from data_pipeline.au_sets import AU_SETS
from data_pipeline.raw_sources.common import (_frame_number, _keep_existing, _occurrence, _quote,
                                              _sequences, text_lines)
from data_pipeline.raw_sources.records import (UNKNOWN, FrameSource, Problem, _Found,
                                               standard_group)

_LIST_NAME = re.compile(
    r"^(?P<ds>[A-Za-z0-9]+)_(?P<split>train|test)_img_path_fold(?P<fold>\d+)\.txt$")


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


def _read_lines(path: str, problems: list[Problem]) -> list[str]:
  """The file's lines, stripped, without the blank lines at its end; a line that is not UTF-8
  is reported and read as empty, so the lines of the paired file stay aligned."""
  lines = [line.strip() for line in text_lines(path, problems, 0)]
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
    paths = _read_lines(lists.paths, self.problems)
    if not os.path.isfile(lists.labels):
      self._report(Problem(lists.labels, f"missing, so the {len(paths)} images of "
                           f"{os.path.basename(lists.paths)} have no labels from it",
                           "missing label list", 0), paths)
      return
    labels = _read_lines(lists.labels, self.problems)
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
